// Package safefs is the only way ffl touches user-writable directories while running as root
// (ffl-epilog, ffl-prolog): every open refuses symlinks, every removal is relative to a directory
// file descriptor and never crosses a mount point, state files are written atomically and read
// with a size cap.
//
// Why not the standard library: os.RemoveAll follows symlinks in the ancestors of the path it is
// given and crosses mount points; os.Root follows symlinks that stay inside the root. A user who
// owns the directory being cleaned can plant a symlink or swap a directory at any moment, so here
// every path component is opened with O_NOFOLLOW (or openat2 RESOLVE_NO_SYMLINKS) and every
// directory that is descended into is verified by (st_dev, st_ino) through its file descriptor.
package safefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Sentinel errors, compared with errors.Is (every returned error wraps one of them or an errno,
// and names the path it is about).
var (
	// ErrNotOwned means a file or directory is not owned by the expected uid (or, for
	// CheckOwner with forbidGroupOtherWrite, others could write to it): root must not act on it.
	ErrNotOwned = errors.New("not owned by the expected user")
	// ErrBadMode means a directory's permission bits are not the requested ones.
	ErrBadMode = errors.New("unexpected permission bits")
	// ErrNotRegular means a file that must be a regular file is a FIFO, socket, device,
	// directory or symlink.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge means a file is larger than the cap its reader set.
	ErrTooLarge = errors.New("file too large")
	// ErrDeadline means a removal stopped because RemoveOptions.Deadline passed.
	ErrDeadline = errors.New("deadline exceeded")
	// ErrSymlink means a symlink was found where a real file or directory was required.
	ErrSymlink = errors.New("symlink refused")
	// ErrMountPoint means a removal met a different file system (a mount point) and left it alone.
	ErrMountPoint = errors.New("mount point not crossed")
	// ErrRaced means a directory was renamed while it was being removed; its subtree was left alone
	// because it no longer was where the walk found it.
	ErrRaced = errors.New("directory moved during removal")
	// ErrInvalidName means a name given to an *At function is empty, ".", ".." or contains '/'
	// or NUL: those would let a single-component API walk somewhere else.
	ErrInvalidName = errors.New("invalid file name")
)

// dirFlags opens a directory for reading without following a symlink in the last component.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// checkName refuses names that are not exactly one path component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q: %w", name, ErrInvalidName)
	}
	return nil
}

// join builds a path for error messages only; it is never used to open anything.
func join(dir, name string) string {
	if dir == "" {
		return name
	}
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// withFD runs fn with f's descriptor while holding a reference on it, so a concurrent Close
// cannot recycle the number under us (f.Fd() gives no such guarantee).
func withFD(f *os.File, fn func(fd int) error) error {
	if f == nil {
		return fmt.Errorf("safefs: nil directory: %w", os.ErrInvalid)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("safefs: %s: %w", f.Name(), err)
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("safefs: %s: %w", f.Name(), err)
	}
	return fnErr
}

// openat retries on EINTR, which open(2) may return on some file systems (NFS, FUSE).
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// closeFD closes a descriptor we own; errors on close of a read-only directory carry no
// information we could act on.
func closeFD(fd int) {
	_ = unix.Close(fd)
}

// fileInfo is the part of statx we act on.
type fileInfo struct {
	dev    uint64
	ino    uint64
	mnt    uint64 // mount id, when hasMnt (Linux 5.8+): catches bind mounts of the same device
	hasMnt bool
	mode   uint32 // full st_mode (type and permission bits)
	uid    uint32
	size   int64
	mtime  unix.Timespec
}

func (i fileInfo) isDir() bool     { return i.mode&unix.S_IFMT == unix.S_IFDIR }
func (i fileInfo) isRegular() bool { return i.mode&unix.S_IFMT == unix.S_IFREG }
func (i fileInfo) isSymlink() bool { return i.mode&unix.S_IFMT == unix.S_IFLNK }

// sameFile reports whether two stats describe the same inode.
func (i fileInfo) sameFile(o fileInfo) bool { return i.dev == o.dev && i.ino == o.ino }

// sameMount reports whether two stats are on the same mount: same device and, when the kernel
// reports mount ids for both, the same mount id.
func (i fileInfo) sameMount(o fileInfo) bool {
	if i.dev != o.dev {
		return false
	}
	return !i.hasMnt || !o.hasMnt || i.mnt == o.mnt
}

// statAt stats name below dirfd without following a symlink and without triggering an
// automount; with name "" and AT_EMPTY_PATH in flags it stats dirfd itself.
func statAt(dirfd int, name string, flags int) (fileInfo, error) {
	flags |= unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT
	var stx unix.Statx_t
	mask := unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_UID | unix.STATX_INO | unix.STATX_SIZE | unix.STATX_MTIME | unix.STATX_MNT_ID
	err := unix.Statx(dirfd, name, flags|unix.AT_STATX_SYNC_AS_STAT, mask, &stx)
	if err == nil {
		return fileInfo{
			dev:    unix.Mkdev(stx.Dev_major, stx.Dev_minor),
			ino:    stx.Ino,
			mnt:    stx.Mnt_id,
			hasMnt: stx.Mask&unix.STATX_MNT_ID != 0,
			mode:   uint32(stx.Mode),
			uid:    stx.Uid,
			size:   int64(stx.Size),
			mtime:  unix.Timespec{Sec: stx.Mtime.Sec, Nsec: int64(stx.Mtime.Nsec)},
		}, nil
	}
	if err != unix.ENOSYS {
		return fileInfo{}, err
	}
	// statx appeared in Linux 4.11; fall back for older kernels and seccomp filters.
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, flags); err != nil {
		return fileInfo{}, err
	}
	return fileInfo{dev: st.Dev, ino: st.Ino, mode: st.Mode, uid: st.Uid, size: st.Size, mtime: st.Mtim}, nil
}

// fstat stats an open descriptor.
func fstat(fd int) (fileInfo, error) {
	return statAt(fd, "", unix.AT_EMPTY_PATH)
}

// openErr turns a failed no-follow open of name below dirfd into an error naming path; a
// symlink (ELOOP, or ENOTDIR because O_DIRECTORY is checked first) wraps ErrSymlink too.
func openErr(op string, dirfd int, name, path string, err error) error {
	if err == unix.ELOOP {
		return fmt.Errorf("safefs: %s %s: %w: %w", op, path, ErrSymlink, err)
	}
	if err == unix.ENOTDIR {
		if fi, serr := statAt(dirfd, name, 0); serr == nil && fi.isSymlink() {
			return fmt.Errorf("safefs: %s %s: %w: %w", op, path, ErrSymlink, err)
		}
	}
	return fmt.Errorf("safefs: %s %s: %w", op, path, err)
}

// OpenDir opens an absolute directory path refusing a symlink at ANY component, so a user who
// controls part of the path cannot redirect root somewhere else. It uses openat2 with
// RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS and, where openat2 is unavailable, walks from "/" one
// component at a time with O_NOFOLLOW. The path is cleaned lexically first (".." never meets a
// symlink, since none is followed).
func OpenDir(path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("safefs: open %q: path is not absolute: %w", path, os.ErrInvalid)
	}
	clean := filepath.Clean(path)
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat2(unix.AT_FDCWD, clean, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), clean), nil
		case err == unix.EINTR || (err == unix.EAGAIN && attempt < 16):
			continue // EAGAIN: a concurrent rename elsewhere in the mount; retry as documented
		case err == unix.ENOSYS || err == unix.EPERM:
			// ENOSYS: kernel < 5.6. EPERM: container seccomp profiles that predate openat2
			// (old Docker) answer EPERM instead of ENOSYS. The walk is just as strict.
			return openDirWalk(clean)
		case err == unix.ELOOP:
			return nil, fmt.Errorf("safefs: open %s: %w: %w", clean, ErrSymlink, err)
		default:
			return nil, fmt.Errorf("safefs: open %s: %w", clean, err)
		}
	}
}

// openDirWalk is OpenDir without openat2: open "/" and then each component with O_NOFOLLOW,
// holding at most two descriptors.
func openDirWalk(clean string) (*os.File, error) {
	if !filepath.IsAbs(clean) {
		return nil, fmt.Errorf("safefs: open %q: path is not absolute: %w", clean, os.ErrInvalid)
	}
	fd, err := openat(unix.AT_FDCWD, "/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("safefs: open /: %w", err)
	}
	walked := "/"
	for _, comp := range strings.Split(strings.TrimPrefix(clean, "/"), "/") {
		if comp == "" {
			continue // clean == "/"
		}
		next, err := openat(fd, comp, dirFlags, 0)
		if err != nil {
			err = openErr("open", fd, comp, join(walked, comp), err)
			closeFD(fd)
			return nil, err
		}
		closeFD(fd)
		fd = next
		walked = join(walked, comp)
	}
	return os.NewFile(uintptr(fd), clean), nil
}

// OpenDirAt opens ONE name (no '/', not "." or "..") below dir as a directory without following
// a symlink, so a walk built from it can never leave the tree it started in.
func OpenDirAt(dir *os.File, name string) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("safefs: open below %s: %w", dir.Name(), err)
	}
	path := join(dir.Name(), name)
	var out *os.File
	err := withFD(dir, func(dfd int) error {
		fd, err := openat(dfd, name, dirFlags, 0)
		if err != nil {
			return openErr("open", dfd, name, path, err)
		}
		out = os.NewFile(uintptr(fd), path)
		return nil
	})
	return out, err
}

// CheckOwner fstat()s f and fails (wrapping ErrNotOwned) unless its owner is uid and, when
// forbidGroupOtherWrite, neither group nor others may write to it: root only acts in a directory
// that nobody but the expected user could have prepared. The group/other-writable case wraps
// ErrBadMode as well.
func CheckOwner(f *os.File, uid int, forbidGroupOtherWrite bool) error {
	if uid < 0 || uid > int(^uint32(0)) {
		return fmt.Errorf("safefs: check owner of %s: uid %d: %w", f.Name(), uid, os.ErrInvalid)
	}
	var fi fileInfo
	err := withFD(f, func(fd int) error {
		var err error
		fi, err = fstat(fd)
		return err
	})
	if err != nil {
		return fmt.Errorf("safefs: stat %s: %w", f.Name(), err)
	}
	if fi.uid != uint32(uid) {
		return fmt.Errorf("safefs: %s: owner uid %d, want %d: %w", f.Name(), fi.uid, uid, ErrNotOwned)
	}
	if forbidGroupOtherWrite && fi.mode&0o022 != 0 {
		return fmt.Errorf("safefs: %s: mode %#o is writable by group or others: %w: %w",
			f.Name(), fi.mode&0o7777, ErrNotOwned, ErrBadMode)
	}
	return nil
}
