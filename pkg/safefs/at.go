package safefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Info is what a no-follow stat says about one entry: enough to decide whether root may act on
// it (type, permission bits, owner) and how recently it was used (mtime).
type Info struct {
	// Mode is the full st_mode: type (unix.S_IFMT bits) and permission bits.
	Mode uint32
	// UID is the owner.
	UID int
	// Size is the size in bytes.
	Size int64
	// Mtime is the last modification time.
	Mtime time.Time
	// Dev and Ino identify the inode (the X display code matches sockets by them).
	Dev, Ino uint64
}

// IsDir, IsSymlink, IsSocket and IsRegular test the entry's type.
func (i Info) IsDir() bool     { return i.Mode&unix.S_IFMT == unix.S_IFDIR }
func (i Info) IsSymlink() bool { return i.Mode&unix.S_IFMT == unix.S_IFLNK }
func (i Info) IsSocket() bool  { return i.Mode&unix.S_IFMT == unix.S_IFSOCK }
func (i Info) IsRegular() bool { return i.Mode&unix.S_IFMT == unix.S_IFREG }

// Perm is the permission part of Mode, set-id and sticky bits included.
func (i Info) Perm() uint32 { return i.Mode & 0o7777 }

func (i fileInfo) export() Info {
	return Info{Mode: i.mode, UID: int(i.uid), Size: i.size, Mtime: time.Unix(i.mtime.Unix()), Dev: i.dev, Ino: i.ino}
}

// LstatAt stats ONE name below dir without following a symlink or triggering an automount.
// The error wraps the errno (use IsNotExist for a missing entry).
func LstatAt(dir *os.File, name string) (Info, error) {
	if err := checkName(name); err != nil {
		return Info{}, fmt.Errorf("safefs: stat below %s: %w", dir.Name(), err)
	}
	var fi fileInfo
	err := withFD(dir, func(fd int) error {
		var err error
		fi, err = statAt(fd, name, 0)
		return err
	})
	if err != nil {
		return Info{}, fmt.Errorf("safefs: stat %s: %w", join(dir.Name(), name), err)
	}
	return fi.export(), nil
}

// Fstat stats an open file.
func Fstat(f *os.File) (Info, error) {
	var fi fileInfo
	err := withFD(f, func(fd int) error {
		var err error
		fi, err = fstat(fd)
		return err
	})
	if err != nil {
		return Info{}, fmt.Errorf("safefs: stat %s: %w", f.Name(), err)
	}
	return fi.export(), nil
}

// UnlinkAt removes ONE non-directory entry below dir (flags 0) or an empty directory
// (unix.AT_REMOVEDIR). Nothing is followed: unlinkat removes the name itself.
func UnlinkAt(dir *os.File, name string, flags int) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("safefs: remove below %s: %w", dir.Name(), err)
	}
	err := withFD(dir, func(fd int) error { return unix.Unlinkat(fd, name, flags) })
	if err != nil {
		return fmt.Errorf("safefs: remove %s: %w", join(dir.Name(), name), err)
	}
	return nil
}

// ReadDirNames returns up to max entry names of the directory f (without "." and ".."), and
// whether there were more: a user can fill a directory, so every listing root makes is capped.
func ReadDirNames(f *os.File, max int) (names []string, more bool, err error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, false, fmt.Errorf("safefs: rewind %s: %w", f.Name(), err)
	}
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
			return names, false, fmt.Errorf("safefs: read directory %s: %w", f.Name(), err)
		}
	}
}

// OpenDirAtOwned is OpenDirAt followed by CheckOwner(uid, no group/other write): root enters
// only directories nobody but the expected user could have prepared.
func OpenDirAtOwned(dir *os.File, name string, uid int) (*os.File, error) {
	f, err := OpenDirAt(dir, name)
	if err != nil {
		return nil, err
	}
	if err := CheckOwner(f, uid, true); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenTrustedOwned is OpenTrusted followed by the owner check of OpenDirAtOwned.
func OpenTrustedOwned(path string, uid int) (*os.File, error) {
	f, err := OpenTrusted(path)
	if err != nil {
		return nil, err
	}
	if err := CheckOwner(f, uid, true); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// IsNotExist reports a missing file through any wrapping (os.IsNotExist does not unwrap).
func IsNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT)
}

// Refused reports whether err is one of the reasons to leave a directory alone on principle (a
// symlink, a foreign owner, a writable-by-others mode) rather than an I/O problem: callers
// count these as refused.
func Refused(err error) bool {
	return errors.Is(err, ErrSymlink) || errors.Is(err, ErrNotOwned) || errors.Is(err, ErrBadMode)
}
