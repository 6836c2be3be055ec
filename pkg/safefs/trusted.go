package safefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinkHops bounds the symlinks OpenTrusted resolves in one path (the kernel's MAXSYMLINKS).
const maxSymlinkHops = 40

// OpenTrusted opens the absolute directory path, following a symlink only where nobody but root
// could have made it: in a directory owned by root and writable by nobody else. Admins do link
// /home to /nfs/home or /run to /var/run; a user can plant a symlink only in a directory the user
// can write, and there none is followed (ErrSymlink). Without any symlink in the path this is
// OpenDir. It is how root opens the roots the configuration names (runtime_dir, temp_dir, the
// X dir, a home from NSS), below which everything is opened with OpenDirAt.
func OpenTrusted(path string) (*os.File, error) {
	f, err := OpenDir(path)
	if err == nil || !errors.Is(err, ErrSymlink) {
		return f, err
	}
	clean := filepath.Clean(path)
	fd, err := openat(unix.AT_FDCWD, "/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("safefs: open /: %w", err)
	}
	todo := splitPath(clean)
	walked := "/"
	hops := 0
	fail := func(err error) (*os.File, error) {
		closeFD(fd)
		return nil, err
	}
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c == ".." {
			next, err := openat(fd, "..", dirFlags, 0)
			if err != nil {
				return fail(fmt.Errorf("safefs: open %s: %s/..: %w", clean, walked, err))
			}
			closeFD(fd)
			fd, walked = next, filepath.Dir(walked)
			continue
		}
		st, err := statAt(fd, c, 0)
		if err == nil && st.isSymlink() {
			dst, err := fstat(fd)
			if err != nil {
				return fail(fmt.Errorf("safefs: stat %s: %w", walked, err))
			}
			if dst.uid != 0 || dst.mode&0o022 != 0 {
				return fail(fmt.Errorf("safefs: open %s: %s is a symlink in a directory not solely root's (owner uid %d, mode %#o): %w",
					clean, join(walked, c), dst.uid, dst.mode&0o7777, ErrSymlink))
			}
			if hops++; hops > maxSymlinkHops {
				return fail(fmt.Errorf("safefs: open %s: too many symlinks: %w", clean, unix.ELOOP))
			}
			target, err := readlinkat(fd, c)
			if err != nil {
				return fail(fmt.Errorf("safefs: readlink %s: %w", join(walked, c), err))
			}
			if filepath.IsAbs(target) {
				root, err := openat(unix.AT_FDCWD, "/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fail(fmt.Errorf("safefs: open /: %w", err))
				}
				closeFD(fd)
				fd, walked = root, "/"
			}
			todo = append(splitPath(target), todo...)
			continue
		}
		var next int
		if err == nil {
			next, err = openat(fd, c, dirFlags, 0)
		}
		if err != nil {
			if err == unix.ELOOP {
				err = fmt.Errorf("%w: %w", ErrSymlink, err)
			}
			return fail(fmt.Errorf("safefs: open %s: %s: %w", clean, join(walked, c), err))
		}
		closeFD(fd)
		fd, walked = next, join(walked, c)
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
