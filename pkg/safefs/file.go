package safefs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces name in dir with data so that a reader (or a crash) sees either the
// old file or the complete new one, never a torn state file: a temp file is created in dir with
// O_EXCL|O_NOFOLLOW (a planted symlink cannot redirect the write) and exactly perm (umask
// ignored), written, fsynced, renamed over name, and dir is fsynced. On any error the temp file
// is removed. If name is a symlink, the symlink itself is replaced.
func WriteFileAtomic(dir *os.File, name string, data []byte, perm os.FileMode) error {
	return writeFile(dir, name, data, perm, true)
}

// ReplaceFile is WriteFileAtomic without the two fsyncs: atomic for readers and against a
// SIGKILL of the writer, but not durable across a power loss. It is for files that a reboot makes
// meaningless anyway (a session's state on the node, its password, its profile defaults), where
// fsync would only add milliseconds to every session start on a busy or networked filesystem.
func ReplaceFile(dir *os.File, name string, data []byte, perm os.FileMode) error {
	return writeFile(dir, name, data, perm, false)
}

func writeFile(dir *os.File, name string, data []byte, perm os.FileMode, durable bool) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("safefs: write below %s: %w", dir.Name(), err)
	}
	path := join(dir.Name(), name)
	if perm&0o777 != perm {
		return fmt.Errorf("safefs: write %s: mode %v has non-permission bits: %w", path, perm, ErrBadMode)
	}
	return withFD(dir, func(dfd int) (retErr error) {
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return fmt.Errorf("safefs: write %s: %w", path, err)
		}
		tmp := "." + name + ".tmp-" + hex.EncodeToString(rnd[:])
		if len(tmp) > 255 { // NAME_MAX: keep the random part, shorten the readable part
			tmp = ".ffl.tmp-" + hex.EncodeToString(rnd[:])
		}
		tmpPath := join(dir.Name(), tmp)
		fd, err := openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm))
		if err != nil {
			return fmt.Errorf("safefs: create %s: %w", tmpPath, err)
		}
		renamed := false
		defer func() {
			if fd >= 0 {
				closeFD(fd)
			}
			if retErr != nil && !renamed {
				_ = unix.Unlinkat(dfd, tmp, 0) // best effort; the error that matters is retErr
			}
		}()
		if err := unix.Fchmod(fd, uint32(perm)); err != nil {
			return fmt.Errorf("safefs: chmod %s: %w", tmpPath, err)
		}
		if err := writeAll(fd, data); err != nil {
			return fmt.Errorf("safefs: write %s: %w", tmpPath, err)
		}
		if durable {
			if err := unix.Fsync(fd); err != nil {
				return fmt.Errorf("safefs: fsync %s: %w", tmpPath, err)
			}
		}
		err = unix.Close(fd)
		fd = -1
		if err != nil {
			return fmt.Errorf("safefs: close %s: %w", tmpPath, err)
		}
		if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
			return fmt.Errorf("safefs: rename %s to %s: %w", tmpPath, path, err)
		}
		renamed = true
		if !durable {
			return nil
		}
		if err := unix.Fsync(dfd); err != nil {
			return fmt.Errorf("safefs: fsync %s: %w", dir.Name(), err)
		}
		return nil
	})
}

// writeAll writes data fully, retrying short writes and EINTR.
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("short write: %w", unix.EIO)
		}
		data = data[n:]
	}
	return nil
}

// ReadFileCapped reads the regular file name in dir, at most max bytes: a state file in a
// user-writable directory may be a FIFO (O_NONBLOCK: opening and checking it cannot block), a
// symlink (O_NOFOLLOW: refused with ErrSymlink), a device (refused before it is opened, with
// ErrNotRegular) or huge (ErrTooLarge, without reading it all).
func ReadFileCapped(dir *os.File, name string, max int64) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("safefs: read below %s: %w", dir.Name(), err)
	}
	path := join(dir.Name(), name)
	if max < 0 {
		return nil, fmt.Errorf("safefs: read %s: negative cap %d: %w", path, max, os.ErrInvalid)
	}
	var out []byte
	err := withFD(dir, func(dfd int) error {
		// Look first so a device or FIFO is refused without being opened at all.
		fi, err := statAt(dfd, name, 0)
		if err != nil {
			return fmt.Errorf("safefs: stat %s: %w", path, err)
		}
		if fi.isSymlink() {
			return fmt.Errorf("safefs: read %s: %w", path, ErrSymlink)
		}
		if !fi.isRegular() {
			return fmt.Errorf("safefs: read %s: file type %#o: %w", path, fi.mode&unix.S_IFMT, ErrNotRegular)
		}
		fd, err := openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return openErr("open", dfd, name, path, err)
		}
		defer closeFD(fd)
		// The name may have been swapped since the look: the descriptor is the truth.
		if fi, err = fstat(fd); err != nil {
			return fmt.Errorf("safefs: stat %s: %w", path, err)
		}
		if !fi.isRegular() {
			return fmt.Errorf("safefs: read %s: file type %#o: %w", path, fi.mode&unix.S_IFMT, ErrNotRegular)
		}
		if fi.size > max {
			return fmt.Errorf("safefs: read %s: %d bytes, cap %d: %w", path, fi.size, max, ErrTooLarge)
		}
		// Read at most max+1 bytes: the file may grow after fstat.
		buf := make([]byte, 0, min(fi.size, max)+1)
		for int64(len(buf)) <= max {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			room := buf[len(buf):min(int64(cap(buf)), max+1)]
			n, err := unix.Read(fd, room)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("safefs: read %s: %w", path, err)
			}
			if n == 0 {
				break
			}
			buf = buf[:len(buf)+n]
		}
		if int64(len(buf)) > max {
			return fmt.Errorf("safefs: read %s: more than %d bytes: %w", path, max, ErrTooLarge)
		}
		out = buf
		return nil
	})
	return out, err
}
