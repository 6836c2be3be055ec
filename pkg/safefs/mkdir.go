package safefs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MkdirAt creates name below dir with exactly mode (umask ignored: fchmod after create) if it is
// missing, opens it without following a symlink and verifies that it is owned by the caller's
// euid (or by wantUID when >= 0) and that its permission bits are exactly mode (else ErrBadMode).
// An existing directory is accepted only if it passes the same checks: root must not adopt a
// directory a user prepared in advance.
//
// When the caller creates the directory and wantUID differs from its euid (root preparing a
// user's directory), the new directory is chowned to wantUID (group unchanged) before the mode
// is set. mode may only hold permission bits (mode&0o777 == mode), else ErrBadMode.
func MkdirAt(dir *os.File, name string, mode os.FileMode, wantUID int) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("safefs: mkdir below %s: %w", dir.Name(), err)
	}
	path := join(dir.Name(), name)
	if mode&0o777 != mode {
		return nil, fmt.Errorf("safefs: mkdir %s: mode %v has non-permission bits: %w", path, mode, ErrBadMode)
	}
	if wantUID > int(^uint32(0)) {
		return nil, fmt.Errorf("safefs: mkdir %s: uid %d: %w", path, wantUID, os.ErrInvalid)
	}
	euid := unix.Geteuid()
	owner := euid
	if wantUID >= 0 {
		owner = wantUID
	}
	var out *os.File
	err := withFD(dir, func(dfd int) error {
		fd, err := mkdirOpen(dfd, name, path, uint32(mode), euid, owner)
		if err != nil {
			return err
		}
		out = os.NewFile(uintptr(fd), path)
		return nil
	})
	return out, err
}

// mkdirOpen does MkdirAt's work on raw descriptors and returns the verified directory's fd.
func mkdirOpen(dfd int, name, path string, mode uint32, euid, owner int) (int, error) {
	created := false
	// Create with 0700 first: the directory is never more open than requested, even briefly.
	switch err := unix.Mkdirat(dfd, name, 0o700); err {
	case nil:
		created = true
	case unix.EEXIST:
	default:
		return -1, fmt.Errorf("safefs: mkdir %s: %w", path, err)
	}
	fd, err := openat(dfd, name, dirFlags, 0)
	if err != nil {
		return -1, openErr("open", dfd, name, path, err)
	}
	fi, err := fstat(fd)
	if err != nil {
		closeFD(fd)
		return -1, fmt.Errorf("safefs: stat %s: %w", path, err)
	}
	if created {
		// Fix up only what we created: if someone swapped in their own directory between mkdirat
		// and openat, its owner is not us and we must not chown or chmod it.
		if fi.uid != uint32(euid) {
			closeFD(fd)
			return -1, fmt.Errorf("safefs: %s: replaced while being created (owner uid %d): %w", path, fi.uid, ErrNotOwned)
		}
		if owner != euid {
			// Before fchmod: chown clears set-id bits, and the mode must be the last word.
			if err := unix.Fchown(fd, owner, -1); err != nil {
				closeFD(fd)
				return -1, fmt.Errorf("safefs: chown %s to uid %d: %w", path, owner, err)
			}
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			closeFD(fd)
			return -1, fmt.Errorf("safefs: chmod %s: %w", path, err)
		}
		if fi, err = fstat(fd); err != nil {
			closeFD(fd)
			return -1, fmt.Errorf("safefs: stat %s: %w", path, err)
		}
	}
	if fi.uid != uint32(owner) {
		closeFD(fd)
		return -1, fmt.Errorf("safefs: %s: owner uid %d, want %d: %w", path, fi.uid, owner, ErrNotOwned)
	}
	if fi.mode&0o777 != mode {
		closeFD(fd)
		return -1, fmt.Errorf("safefs: %s: mode %#o, want %#o: %w", path, fi.mode&0o777, mode, ErrBadMode)
	}
	return fd, nil
}

// MkdirAll creates root/rel below an existing trusted root: root is opened with OpenDir and
// every component of rel is created or opened with MkdirAt (same mode and owner checks), so a
// symlink or a foreign directory anywhere below root is refused. rel must be relative and free of
// ".." components; "" or "." returns root itself (unchecked: it is trusted). The leaf is returned.
func MkdirAll(root string, rel string, mode os.FileMode, wantUID int) (*os.File, error) {
	if filepath.IsAbs(rel) {
		return nil, fmt.Errorf("safefs: mkdir %q below %s: path must be relative: %w", rel, root, os.ErrInvalid)
	}
	if strings.ContainsRune(rel, 0) {
		return nil, fmt.Errorf("safefs: mkdir %q below %s: %w", rel, root, ErrInvalidName)
	}
	var comps []string
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("safefs: mkdir %q below %s: \"..\" not allowed: %w", rel, root, ErrInvalidName)
		}
		comps = append(comps, c)
	}
	cur, err := OpenDir(root)
	if err != nil {
		return nil, err
	}
	for _, c := range comps {
		next, err := MkdirAt(cur, c, mode, wantUID)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// DirSpec is what EnsureDirAt makes, or accepts when it finds the directory already there.
type DirSpec struct {
	// UID and GID own a directory EnsureDirAt creates (it chowns through the descriptor).
	UID, GID int
	// Mode is the mode of a created directory; it may include the sticky bit (0o1777).
	Mode uint32
	// Exact demands that an existing directory have exactly Mode; otherwise it must merely not
	// be writable by group or others.
	Exact bool
}

// EnsureDirAt creates name below dir as spec says, or opens what is there, and returns it open.
// It is root's way to prepare a directory for a user (the Prolog's runtime dirs, /tmp/.X11-unix):
// mkdirat with 0700 first, then fchown and fchmod through the descriptor of what was created,
// so no path a user controls is ever chowned. What already existed must be a real directory
// (never a symlink) owned by spec.UID with an acceptable mode (see DirSpec.Exact); anything else
// is left alone and reported (ErrNotOwned, ErrBadMode, ErrSymlink).
func EnsureDirAt(dir *os.File, name string, spec DirSpec) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("safefs: mkdir below %s: %w", dir.Name(), err)
	}
	path := join(dir.Name(), name)
	if spec.Mode&0o7777 != spec.Mode || spec.UID < 0 || spec.GID < 0 {
		return nil, fmt.Errorf("safefs: mkdir %s: mode %#o uid %d gid %d: %w", path, spec.Mode, spec.UID, spec.GID, os.ErrInvalid)
	}
	var out *os.File
	err := withFD(dir, func(dfd int) error {
		created := false
		switch err := unix.Mkdirat(dfd, name, 0o700); err {
		case nil:
			created = true
		case unix.EEXIST:
		default:
			return fmt.Errorf("safefs: mkdir %s: %w", path, err)
		}
		fd, err := openat(dfd, name, dirFlags, 0)
		if err != nil {
			if err == unix.ENOTDIR || err == unix.ELOOP {
				return fmt.Errorf("safefs: %s: something other than a directory is there (a symlink?): %w: %w", path, ErrSymlink, err)
			}
			return fmt.Errorf("safefs: open %s: %w", path, err)
		}
		fi, err := fstat(fd)
		if err != nil {
			closeFD(fd)
			return fmt.Errorf("safefs: stat %s: %w", path, err)
		}
		if created {
			if fi.uid != uint32(unix.Geteuid()) {
				closeFD(fd)
				return fmt.Errorf("safefs: %s: replaced while being created (owner uid %d): %w", path, fi.uid, ErrNotOwned)
			}
			if err := unix.Fchown(fd, spec.UID, spec.GID); err != nil {
				closeFD(fd)
				return fmt.Errorf("safefs: chown %s to %d:%d: %w", path, spec.UID, spec.GID, err)
			}
			if err := unix.Fchmod(fd, spec.Mode); err != nil {
				closeFD(fd)
				return fmt.Errorf("safefs: chmod %s %#o: %w", path, spec.Mode, err)
			}
			out = os.NewFile(uintptr(fd), path)
			return nil
		}
		perm := fi.mode & 0o7777
		var bad error
		switch {
		case fi.uid != uint32(spec.UID):
			bad = fmt.Errorf("safefs: %s exists, owned by uid %d, not %d: left alone: %w", path, fi.uid, spec.UID, ErrNotOwned)
		case spec.Exact && perm != spec.Mode:
			bad = fmt.Errorf("safefs: %s exists with mode %#o, not %#o: left alone: %w", path, perm, spec.Mode, ErrBadMode)
		case !spec.Exact && perm&0o022 != 0:
			bad = fmt.Errorf("safefs: %s exists with mode %#o, writable by group or others: left alone: %w", path, perm, ErrBadMode)
		}
		if bad != nil {
			closeFD(fd)
			return bad
		}
		out = os.NewFile(uintptr(fd), path)
		return nil
	})
	return out, err
}
