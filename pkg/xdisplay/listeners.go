package xdisplay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Layout of linux/unix_diag.h, which x/sys/unix does not define.
const (
	unixDiagReqLen = 24 // struct unix_diag_req
	unixDiagMsgLen = 16 // struct unix_diag_msg
	udiagShowVFS   = 0x2
	unixDiagVFS    = 1 // UNIX_DIAG_VFS attribute: struct unix_diag_vfs {u32 ino; u32 dev}
	tcpListen      = 10
	// maxListenerBytes bounds one dump (a node has at most some thousands of listeners).
	maxListenerBytes = 16 << 20
	// diagTimeout bounds each receive: the kernel answers a dump at once, but root code waits
	// for nothing without a deadline.
	diagTimeout = time.Second
	// acceptCon is __SO_ACCEPTCON in /proc/net/unix's Flags column: a listening socket.
	acceptCon = 0x10000
	// maxProcNetUnix caps the /proc/net/unix read of the fallback.
	maxProcNetUnix = 64 << 20
)

// vfsKey is a bound socket file as sock_diag names it: the inode and the kernel's device
// number of the file system (both 32 bits there).
type vfsKey struct{ ino, dev uint32 }

// listeners is the set of listening unix sockets of this network namespace, read once.
type listeners struct {
	vfs   map[vfsKey]bool // from sock_diag
	paths map[string]bool // from /proc/net/unix, when sock_diag is missing
	err   error           // neither could be read
}

// readListeners asks sock_diag for the listening unix sockets and the inode their path is bound
// to; where the kernel has no unix_diag, it falls back to the paths in /proc/net/unix.
func readListeners() *listeners {
	vfs, err := diagListeners()
	if err == nil {
		return &listeners{vfs: vfs}
	}
	paths, perr := procNetUnixListeners("/proc/net/unix")
	if perr == nil {
		return &listeners{paths: paths}
	}
	return &listeners{err: fmt.Errorf("sock_diag: %v; /proc/net/unix: %v", err, perr)}
}

// bound reports whether a listening socket is bound to the socket file fi (at path).
func (l *listeners) bound(fi safefs.Info, path string) (bool, error) {
	switch {
	case l.err != nil:
		return false, l.err
	case l.vfs != nil:
		dev := unix.Major(fi.Dev)<<20 | unix.Minor(fi.Dev) // the kernel's internal dev_t
		return l.vfs[vfsKey{ino: uint32(fi.Ino), dev: dev}], nil
	default:
		return l.paths[path], nil
	}
}

// diagListeners dumps the listening unix sockets with their VFS inode over NETLINK_SOCK_DIAG.
func diagListeners() (map[vfsKey]bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("receive timeout: %w", err)
	}
	req := make([]byte, unix.NLMSG_HDRLEN+unixDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:4], uint32(len(req)))
	ne.PutUint16(req[4:6], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:12], 1)
	body := req[unix.NLMSG_HDRLEN:]
	body[0] = unix.AF_UNIX
	ne.PutUint32(body[4:8], 1<<tcpListen)
	ne.PutUint32(body[12:16], udiagShowVFS)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	out := map[vfsKey]bool{}
	buf := make([]byte, 64<<10)
	total := 0
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		if total += n; total > maxListenerBytes {
			return nil, fmt.Errorf("reply larger than %d bytes", maxListenerBytes)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(ne.Uint32(m.Data[:4])); code < 0 {
						return nil, fmt.Errorf("kernel: %w", unix.Errno(-code))
					}
				}
				return nil, errors.New("kernel: error reply")
			}
			if len(m.Data) < unixDiagMsgLen || m.Data[2] != tcpListen {
				continue
			}
			attrs := m.Data[unixDiagMsgLen:]
			for len(attrs) >= unix.SizeofRtAttr {
				alen := int(ne.Uint16(attrs[0:2]))
				atype := ne.Uint16(attrs[2:4])
				if alen < unix.SizeofRtAttr || alen > len(attrs) {
					break
				}
				if atype == unixDiagVFS && alen >= unix.SizeofRtAttr+8 {
					v := attrs[unix.SizeofRtAttr:]
					out[vfsKey{ino: ne.Uint32(v[0:4]), dev: ne.Uint32(v[4:8])}] = true
				}
				step := (alen + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
				if step > len(attrs) {
					break
				}
				attrs = attrs[step:]
			}
		}
	}
}

// procNetUnixListeners returns the paths of the listening unix sockets in /proc/net/unix
// ("Num RefCount Protocol Flags Type St Inode Path"). A path there is the path at bind time, so
// this is weaker than the inode match; it only ever keeps more.
func procNetUnixListeners(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseProcNetUnix(io.LimitReader(f, maxProcNetUnix))
}

// parseProcNetUnix parses /proc/net/unix; see procNetUnixListeners.
func parseProcNetUnix(r io.Reader) (map[string]bool, error) {
	out := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			first = false
			if !bytes.HasPrefix(line, []byte("Num")) {
				return nil, errors.New("no header line")
			}
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 8 {
			continue // unbound socket: no path
		}
		var flags uint64
		if _, err := fmt.Sscanf(f[3], "%x", &flags); err != nil {
			continue
		}
		if flags&acceptCon != 0 {
			out[strings.Join(f[7:], " ")] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
