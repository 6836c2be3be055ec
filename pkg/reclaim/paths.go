package reclaim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// maxSymlinkHops bounds the symlinks openTrusted resolves in one path (the kernel's MAXSYMLINKS).
const maxSymlinkHops = 40

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openTrusted opens the absolute directory path, following a symlink only where nobody but root
// could have made it: in a directory owned by root and writable by nobody else. Admins do link
// /home to /nfs/home or /run to /var/run; a user can plant a symlink only in a directory the user
// can write, and there none is followed (safefs.ErrSymlink). Without any symlink in the path this
// is safefs.OpenDir.
func openTrusted(path string) (*os.File, error) {
	f, err := safefs.OpenDir(path)
	if err == nil || !errors.Is(err, safefs.ErrSymlink) {
		return f, err
	}
	clean := filepath.Clean(path)
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /: %w", err)
	}
	todo := splitPath(clean)
	walked := "/"
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		var next int
		if c == ".." {
			next, err = unix.Openat(fd, "..", dirFlags, 0)
		} else {
			var st unix.Stat_t
			if err = unix.Fstatat(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				var dst unix.Stat_t
				if err := unix.Fstat(fd, &dst); err != nil {
					unix.Close(fd)
					return nil, fmt.Errorf("stat %s: %w", walked, err)
				}
				if dst.Uid != 0 || dst.Mode&0o022 != 0 {
					unix.Close(fd)
					return nil, fmt.Errorf("open %s: %s is a symlink in a directory not solely root's (owner uid %d, mode %#o): %w",
						clean, filepath.Join(walked, c), dst.Uid, dst.Mode&0o7777, safefs.ErrSymlink)
				}
				if hops++; hops > maxSymlinkHops {
					unix.Close(fd)
					return nil, fmt.Errorf("open %s: too many symlinks: %w", clean, unix.ELOOP)
				}
				target, err := readlinkat(fd, c)
				if err != nil {
					unix.Close(fd)
					return nil, fmt.Errorf("readlink %s: %w", filepath.Join(walked, c), err)
				}
				if filepath.IsAbs(target) {
					root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
					if err != nil {
						unix.Close(fd)
						return nil, fmt.Errorf("open /: %w", err)
					}
					unix.Close(fd)
					fd, walked = root, "/"
				}
				todo = append(splitPath(target), todo...)
				continue
			}
			if err == nil {
				next, err = unix.Openat(fd, c, dirFlags, 0)
			}
		}
		if err != nil {
			unix.Close(fd)
			if err == unix.ELOOP {
				err = fmt.Errorf("%w: %w", safefs.ErrSymlink, err)
			}
			return nil, fmt.Errorf("open %s: %s: %w", clean, filepath.Join(walked, c), err)
		}
		unix.Close(fd)
		fd = next
		walked = filepath.Join(walked, c)
	}
	return os.NewFile(uintptr(fd), clean), nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	if n >= len(buf) {
		return "", fmt.Errorf("symlink target too long: %w", unix.ENAMETOOLONG)
	}
	return string(buf[:n]), nil
}

// listNames returns up to max entry names of the directory f (without "." and ".."), and
// whether there were more. Reading a directory does not follow anything.
func listNames(f *os.File, max int) ([]string, bool, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, false, fmt.Errorf("rewind %s: %w", f.Name(), err)
	}
	var names []string
	for {
		batch, err := f.Readdirnames(256)
		names = append(names, batch...)
		if len(names) > max {
			return names[:max], true, nil
		}
		if err == io.EOF {
			return names, false, nil
		}
		if err != nil {
			return names, false, fmt.Errorf("read directory %s: %w", f.Name(), err)
		}
	}
}

// entryInfo is what lstat says about one directory entry.
type entryInfo struct {
	mode  uint32
	uid   int
	mtime time.Time
}

func (e entryInfo) isDir() bool     { return e.mode&unix.S_IFMT == unix.S_IFDIR }
func (e entryInfo) isSymlink() bool { return e.mode&unix.S_IFMT == unix.S_IFLNK }
func (e entryInfo) isSocket() bool  { return e.mode&unix.S_IFMT == unix.S_IFSOCK }
func (e entryInfo) isRegular() bool { return e.mode&unix.S_IFMT == unix.S_IFREG }

// lstatAt stats name below dir without following a symlink or triggering an automount.
func lstatAt(dir *os.File, name string) (entryInfo, error) {
	var st unix.Stat_t
	var err error
	ctl := func(fd uintptr) {
		err = unix.Fstatat(int(fd), name, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT)
	}
	rc, cerr := dir.SyscallConn()
	if cerr != nil {
		return entryInfo{}, cerr
	}
	if cerr := rc.Control(ctl); cerr != nil {
		return entryInfo{}, cerr
	}
	if err != nil {
		return entryInfo{}, err
	}
	return entryInfo{mode: st.Mode, uid: int(st.Uid), mtime: time.Unix(st.Mtim.Unix())}, nil
}

// fstatFile stats an open file.
func fstatFile(f *os.File) (entryInfo, error) {
	var st unix.Stat_t
	var err error
	rc, cerr := f.SyscallConn()
	if cerr != nil {
		return entryInfo{}, cerr
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.Fstat(int(fd), &st) }); cerr != nil {
		return entryInfo{}, cerr
	}
	if err != nil {
		return entryInfo{}, err
	}
	return entryInfo{mode: st.Mode, uid: int(st.Uid), mtime: time.Unix(st.Mtim.Unix())}, nil
}

// unlinkAt removes one non-directory entry (flags 0) or an empty directory (AT_REMOVEDIR).
func unlinkAt(dir *os.File, name string, flags int) error {
	var err error
	rc, cerr := dir.SyscallConn()
	if cerr != nil {
		return cerr
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.Unlinkat(int(fd), name, flags) }); cerr != nil {
		return cerr
	}
	return err
}

// isNotExist reports a missing file through any wrapping (os.IsNotExist does not unwrap).
func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT)
}
