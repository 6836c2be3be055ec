package safefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/oneline"
)

// RemoveOptions tunes RemoveAllAt.
type RemoveOptions struct {
	// UID, when >= 0, is the only owner whose files and directories are removed; anything else
	// is left in place, counted in RemoveStats.Refused and reported. -1 removes any owner's files.
	UID int
	// Deadline, when not zero, bounds the removal: past it the walk stops with ErrDeadline, so a
	// root Epilog cannot be held forever by a huge or constantly changing tree.
	Deadline time.Time
}

// RemoveStats says what a removal did, for logs and tests.
type RemoveStats struct {
	Files   int   // non-directories removed: files, symlinks, sockets, FIFOs, devices
	Dirs    int   // directories removed
	Bytes   int64 // sum of the sizes of the regular files removed
	Refused int   // entries left alone: wrong owner or a mount point
}

// maxErrors bounds how many individual problems a removal reports; the rest are counted.
const maxErrors = 20

// direntBufSize is the getdents buffer; it also bounds how many subdirectory names one level
// remembers while the walk is below it.
const direntBufSize = 32 << 10

// RemoveAll removes path (a file, symlink, or whole tree) like RemoveAllAt, after opening its
// parent with OpenDir (so no component of path may be a symlink). A missing path, or a missing
// parent, is not an error.
func RemoveAll(path string, opts RemoveOptions) (RemoveStats, error) {
	if !filepath.IsAbs(path) {
		return RemoveStats{}, fmt.Errorf("safefs: remove %q: path is not absolute: %w", path, os.ErrInvalid)
	}
	clean := filepath.Clean(path)
	if clean == "/" {
		return RemoveStats{}, fmt.Errorf("safefs: remove /: %w", os.ErrInvalid)
	}
	parent, err := OpenDir(filepath.Dir(clean))
	if errors.Is(err, os.ErrNotExist) {
		return RemoveStats{}, nil
	}
	if err != nil {
		return RemoveStats{}, err
	}
	defer parent.Close()
	return RemoveAllAt(parent, filepath.Base(clean), opts)
}

// RemoveAllAt removes name below parent (a file, symlink, socket, FIFO or whole tree) using only
// descriptor-relative calls, because the tree belongs to a user who may change it while root
// removes it:
//
//   - a symlink is never followed: the link itself is unlinked;
//   - a mount point (different st_dev or mount id) is neither crossed nor removed;
//   - when opts.UID >= 0, a directory or file not owned by opts.UID is neither entered nor
//     removed: it is counted in Refused and an error naming it is returned after everything else
//     has been removed (for non-directories the owner check and the unlink are two steps; there
//     is no unlink-by-descriptor);
//   - a directory without owner rwx (mode 000) owned by opts.UID (or, when opts.UID < 0, by the
//     caller) is chmodded 0700 first, so the privilege-dropped helper can empty it;
//   - the walk holds a constant number of descriptors whatever the depth: it remembers the
//     (st_dev, st_ino) of each level and climbs with openat(fd, ".."), verifying the identity;
//     on a mismatch (a concurrent rename) it re-descends from the top by name, verifying each
//     level, and abandons the subtree that moved (ErrRaced).
//
// It is idempotent: a missing name returns zero stats and no error. The error joins every
// problem (each naming its path), listing at most 20 besides ErrDeadline.
func RemoveAllAt(parent *os.File, name string, opts RemoveOptions) (RemoveStats, error) {
	if err := checkName(name); err != nil {
		return RemoveStats{}, fmt.Errorf("safefs: remove below %s: %w", parent.Name(), err)
	}
	if opts.UID > int(^uint32(0)) {
		return RemoveStats{}, fmt.Errorf("safefs: remove %s: uid %d: %w", join(parent.Name(), name), opts.UID, os.ErrInvalid)
	}
	r := &remover{
		opts:     opts,
		chmodUID: opts.UID,
		base:     parent.Name(),
		name:     name,
	}
	if r.chmodUID < 0 {
		r.chmodUID = unix.Geteuid()
	}
	err := withFD(parent, func(pfd int) error {
		r.run(pfd, name)
		return nil
	})
	if err != nil {
		return r.stats, err
	}
	return r.stats, r.err()
}

// frame is one directory level of the walk. Only names are kept, never descriptors.
type frame struct {
	name     string              // name in the parent level
	id       fileInfo            // identity (dev, ino) verified through a descriptor
	pending  []string            // subdirectories read from this level, not yet descended into
	skip     map[string]struct{} // entries left alone (refused, failed): never retried
	kept     bool                // something below remains: do not rmdir this level
	progress bool                // something was handled since the descriptor was (re)positioned at 0
	requeues int                 // children re-entered because rmdir found them non-empty
}

// maxRequeues bounds how often one level re-enters children that rmdir still finds non-empty
// (entries added meanwhile, or invisible to readdir), so that cannot loop forever.
const maxRequeues = 64

func (f *frame) keep(name string) {
	f.kept = true
	if f.skip == nil {
		f.skip = make(map[string]struct{})
	}
	f.skip[name] = struct{}{}
}

// remover holds one RemoveAllAt call's state.
type remover struct {
	opts     RemoveOptions
	chmodUID int    // owner whose locked directories may be chmodded 0700
	base     string // parent's name, for messages
	name     string // the name being removed below it
	root     fileInfo
	stack    []*frame
	stats    RemoveStats
	errs     []error
	dropped  int
	timedOut error // ErrDeadline with the path, once the deadline passed; never capped away
	buf      []byte
}

func (r *remover) fail(err error) {
	if len(r.errs) < maxErrors {
		r.errs = append(r.errs, err)
		return
	}
	r.dropped++
}

func (r *remover) err() error {
	var errs *multierror.Error
	if r.timedOut != nil {
		errs = oneline.Append(errs, r.timedOut)
	}
	errs = oneline.Append(errs, r.errs...)
	if r.dropped > 0 {
		errs = oneline.Append(errs, fmt.Errorf("safefs: %d more problems not listed", r.dropped))
	}
	return oneline.Err(errs)
}

// pathOf names an entry of the current level (name "" names the level itself).
func (r *remover) pathOf(depth int, name string) string {
	p := r.base
	for _, f := range r.stack[:depth] {
		p = join(p, f.name)
	}
	if name != "" {
		p = join(p, name)
	}
	return p
}

// pathFn defers building a path (O(depth)) until an error needs it.
func (r *remover) pathFn(depth int, name string) func() string {
	return func() string { return r.pathOf(depth, name) }
}

func (r *remover) expired() bool {
	if r.timedOut == nil && !r.opts.Deadline.IsZero() && !time.Now().Before(r.opts.Deadline) {
		r.timedOut = fmt.Errorf("safefs: remove %s: stopped at %s: %w",
			join(r.base, r.name), r.opts.Deadline.Format(time.RFC3339Nano), ErrDeadline)
	}
	return r.timedOut != nil
}

func (r *remover) refuse(path string, err error) {
	r.stats.Refused++
	r.fail(fmt.Errorf("safefs: not removing %s: %w", path, err))
}

// run removes name below pfd.
func (r *remover) run(pfd int, name string) {
	path := join(r.base, name)
	pinfo, err := fstat(pfd)
	if err != nil {
		r.fail(fmt.Errorf("safefs: stat %s: %w", r.base, err))
		return
	}
	r.root = pinfo
	if r.expired() {
		return
	}
	fd, top, done := r.handle(pfd, name, func() string { return path }, nil, nil)
	if done {
		return
	}
	// A second descriptor on the top directory, kept for re-descending after a race; the walk
	// itself holds one more (two during a step).
	topFD, err := openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		closeFD(fd)
		r.fail(fmt.Errorf("safefs: open %s: %w", path, err))
		return
	}
	defer closeFD(topFD)
	r.stack = []*frame{{name: name, id: top}}
	r.walk(fd, topFD)
	if r.stack[0].kept || r.timedOut != nil {
		return
	}
	switch err := unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR); err {
	case nil:
		r.stats.Dirs++
	case unix.ENOENT:
	default:
		r.fail(fmt.Errorf("safefs: remove %s: %w", path, err))
	}
}

// handle deals with one entry below dirfd: a non-directory is removed (or refused) and done is
// true; a directory that may be entered is opened and its descriptor returned with done false.
// f is the level the entry belongs to (nil for the top), marked kept when the entry stays.
func (r *remover) handle(dirfd int, name string, path func() string, f *frame, pre *fileInfo) (fd int, dir fileInfo, done bool) {
	keep := func() {
		if f != nil {
			f.keep(name)
		}
	}
	// The entry may change type between looks (a user swapping a directory for a symlink);
	// look again a few times, then give up on it.
	for attempt := 0; attempt < 4; attempt++ {
		var fi fileInfo
		var err error
		if pre != nil {
			fi, pre = *pre, nil
		} else {
			fi, err = statAt(dirfd, name, 0)
		}
		if err == unix.ENOENT {
			return -1, fileInfo{}, true
		}
		if err != nil {
			r.fail(fmt.Errorf("safefs: stat %s: %w", path(), err))
			keep()
			return -1, fileInfo{}, true
		}
		if fi.isDir() {
			fd, dfi, retry, err := r.openDir(dirfd, name, path)
			switch {
			case retry:
				continue
			case err != nil:
				keep()
				return -1, fileInfo{}, true
			case fd < 0: // vanished
				return -1, fileInfo{}, true
			}
			return fd, dfi, false
		}
		if r.opts.UID >= 0 && fi.uid != uint32(r.opts.UID) {
			r.refuse(path(), fmt.Errorf("owner uid %d, want %d: %w", fi.uid, r.opts.UID, ErrNotOwned))
			keep()
			return -1, fileInfo{}, true
		}
		switch err := unix.Unlinkat(dirfd, name, 0); err {
		case nil:
			r.stats.Files++
			if fi.isRegular() {
				r.stats.Bytes += fi.size
			}
			return -1, fileInfo{}, true
		case unix.ENOENT:
			return -1, fileInfo{}, true
		case unix.EISDIR:
			continue // became a directory since the look: look again
		case unix.EPERM:
			// POSIX's answer for unlink(dir), but also for an immutable file or a sticky
			// directory: only a directory is worth another look.
			if nfi, serr := statAt(dirfd, name, 0); serr == nil && nfi.isDir() {
				continue
			}
			r.fail(fmt.Errorf("safefs: remove %s: %w", path(), err))
			keep()
			return -1, fileInfo{}, true
		default:
			r.fail(fmt.Errorf("safefs: remove %s: %w", path(), err))
			keep()
			return -1, fileInfo{}, true
		}
	}
	r.fail(fmt.Errorf("safefs: remove %s: kept changing type: %w", path(), ErrRaced))
	keep()
	return -1, fileInfo{}, true
}

// openDir opens directory name below dirfd for the walk, checks mount and owner through the
// descriptor, and makes a locked directory owned by chmodUID usable (0700). retry means the name
// is no longer a directory (look again); err != nil means it stays (already reported).
func (r *remover) openDir(dirfd int, name string, path func() string) (fd int, fi fileInfo, retry bool, err error) {
	fd, err = openat(dirfd, name, dirFlags, 0)
	if err == unix.EACCES {
		fd, err = r.openLocked(dirfd, name, path)
		if err != nil {
			return -1, fileInfo{}, false, err
		}
		if fd < 0 {
			return -1, fileInfo{}, true, nil
		}
	}
	switch err {
	case nil:
	case unix.ENOENT:
		return -1, fileInfo{}, false, nil
	case unix.ELOOP, unix.ENOTDIR:
		return -1, fileInfo{}, true, nil
	default:
		r.fail(fmt.Errorf("safefs: open %s: %w", path(), err))
		return -1, fileInfo{}, false, err
	}
	fi, err = fstat(fd)
	if err != nil {
		closeFD(fd)
		r.fail(fmt.Errorf("safefs: stat %s: %w", path(), err))
		return -1, fileInfo{}, false, err
	}
	if err := r.checkDir(fi, path); err != nil {
		closeFD(fd)
		return -1, fileInfo{}, false, err
	}
	if fi.mode&0o700 != 0o700 && fi.uid == uint32(r.chmodUID) {
		if err := unix.Fchmod(fd, 0o700); err != nil {
			closeFD(fd)
			r.fail(fmt.Errorf("safefs: chmod %s: %w", path(), err))
			return -1, fileInfo{}, false, err
		}
	}
	return fd, fi, false, nil
}

// checkDir refuses a directory on another mount or (with opts.UID) of another owner.
func (r *remover) checkDir(fi fileInfo, path func() string) error {
	if !fi.sameMount(r.root) {
		err := fmt.Errorf("device %d mount %d, tree on device %d mount %d: %w", fi.dev, fi.mnt, r.root.dev, r.root.mnt, ErrMountPoint)
		r.refuse(path(), err)
		return err
	}
	if r.opts.UID >= 0 && fi.uid != uint32(r.opts.UID) {
		err := fmt.Errorf("owner uid %d, want %d: %w", fi.uid, r.opts.UID, ErrNotOwned)
		r.refuse(path(), err)
		return err
	}
	return nil
}

// openLocked handles a directory the caller may not read (mode 000, as a non-root helper): pin
// it with O_PATH, check it through that descriptor, chmod it 0700 if it is chmodUID's, then open
// it again by name and make sure it is the same inode. fd -1 with no error means "look again".
func (r *remover) openLocked(dirfd int, name string, path func() string) (int, error) {
	pfd, err := openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT || err == unix.ELOOP || err == unix.ENOTDIR {
		return -1, nil
	}
	if err != nil {
		r.fail(fmt.Errorf("safefs: open %s: %w", path(), err))
		return -1, err
	}
	defer closeFD(pfd)
	fi, err := fstat(pfd)
	if err != nil {
		r.fail(fmt.Errorf("safefs: stat %s: %w", path(), err))
		return -1, err
	}
	if err := r.checkDir(fi, path); err != nil {
		return -1, err
	}
	if fi.uid != uint32(r.chmodUID) {
		err := fmt.Errorf("safefs: open %s: owner uid %d: %w", path(), fi.uid, unix.EACCES)
		r.fail(err)
		return -1, err
	}
	if err := chmodPath(pfd, 0o700); err != nil {
		r.fail(fmt.Errorf("safefs: chmod %s: %w", path(), err))
		return -1, err
	}
	fd, err := openat(dirfd, name, dirFlags, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ELOOP || err == unix.ENOTDIR {
			return -1, nil
		}
		r.fail(fmt.Errorf("safefs: open %s: %w", path(), err))
		return -1, err
	}
	if nfi, err := fstat(fd); err != nil || !nfi.sameFile(fi) {
		closeFD(fd) // swapped between the chmod and the open: look again
		return -1, nil
	}
	return fd, nil
}

// chmodPath changes the mode of the inode an O_PATH descriptor refers to: fchmod(2) refuses
// O_PATH descriptors, so use fchmodat2(AT_EMPTY_PATH) (Linux 6.6) or the /proc/self/fd magic
// link, which resolves to exactly that inode whatever happens to the name.
func chmodPath(pfd int, mode uint32) error {
	err := unix.Fchmodat(pfd, "", mode, unix.AT_EMPTY_PATH)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS && err != unix.EOPNOTSUPP && err != unix.EINVAL && err != unix.EBADF {
		return err
	}
	return unix.Fchmodat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", pfd), mode, 0)
}

// walk empties the tree whose top level is r.stack[0], open as cur, and leaves every level below
// the top removed or reported. topFD stays open for re-descending after a race.
func (r *remover) walk(cur, topFD int) {
	if r.buf == nil {
		r.buf = make([]byte, direntBufSize)
	}
	defer func() {
		if cur >= 0 {
			closeFD(cur)
		}
	}()
	for {
		if r.expired() {
			return
		}
		depth := len(r.stack) - 1
		f := r.stack[depth]
		if len(f.pending) > 0 {
			name := f.pending[0]
			f.pending = f.pending[1:]
			if _, skip := f.skip[name]; skip {
				continue
			}
			f.progress = true
			child, id, done := r.handle(cur, name, r.pathFn(depth+1, name), f, nil)
			if done {
				continue
			}
			closeFD(cur)
			cur = child
			r.stack = append(r.stack, &frame{name: name, id: id})
			continue
		}
		n, err := getdents(cur, r.buf)
		if err != nil {
			r.fail(fmt.Errorf("safefs: read directory %s: %w", r.pathOf(depth+1, ""), err))
			f.kept = true
			n = 0
			f.progress = false
		}
		if n > 0 {
			if !r.scan(cur, f, depth, r.buf[:n]) {
				return
			}
			continue
		}
		// End of directory. Reading while removing is not guaranteed to return every entry
		// (POSIX leaves it unspecified; NFS cookies can shift): read again from the start until a
		// full pass finds nothing new.
		if f.progress {
			f.progress = false
			if _, err := unix.Seek(cur, 0, 0); err != nil {
				r.fail(fmt.Errorf("safefs: rewind %s: %w", r.pathOf(depth+1, ""), err))
				f.kept = true
			}
			continue
		}
		if depth == 0 {
			return
		}
		if cur = r.climb(cur, topFD, depth); cur < 0 {
			return
		}
	}
}

// scan handles one batch of entries read from the directory cur (the level at depth): files
// are removed now, directories queued for descent. It returns false once the deadline passed.
func (r *remover) scan(cur int, f *frame, depth int, dirents []byte) bool {
	_, _, names := unix.ParseDirent(dirents, -1, nil)
	for _, name := range names {
		if _, skip := f.skip[name]; skip {
			continue
		}
		if r.expired() {
			return false
		}
		f.progress = true
		fi, err := statAt(cur, name, 0)
		if err == nil && fi.isDir() {
			f.pending = append(f.pending, name)
			continue
		}
		var pre *fileInfo
		if err == nil {
			pre = &fi
		}
		if child, _, done := r.handle(cur, name, r.pathFn(depth+1, name), f, pre); !done {
			// It became a directory since the look: enter it later, like the others.
			closeFD(child)
			f.pending = append(f.pending, name)
		}
	}
	return true
}

// climb leaves the emptied level at depth (open as cur, which it closes) for its parent: it
// opens "..", verifies it is the level it came from, then removes the child by name. It returns
// the descriptor to walk on: the parent's, or after a failed climb the one redescend found
// (-1: nothing is left to walk).
func (r *remover) climb(cur, topFD, depth int) int {
	child := r.stack[depth]
	r.stack = r.stack[:depth]
	parent := r.stack[depth-1]
	pfd, err := openat(cur, "..", dirFlags, 0)
	if err == nil {
		var pi fileInfo
		if pi, err = fstat(pfd); err == nil && !pi.sameFile(parent.id) {
			err = ErrRaced // the child was renamed into another directory
		}
		if err != nil {
			closeFD(pfd)
		}
	}
	closeFD(cur)
	if err != nil {
		r.fail(fmt.Errorf("safefs: remove %s: climb to parent: %w", r.pathOf(depth, child.name), err))
		return r.redescend(topFD)
	}
	cur = pfd
	parent.progress = false // fresh descriptor: a new pass starts at offset 0
	if child.kept {
		parent.keep(child.name)
		return cur
	}
	switch err := unix.Unlinkat(cur, child.name, unix.AT_REMOVEDIR); err {
	case nil:
		r.stats.Dirs++
	case unix.ENOENT:
	default:
		// Something was added or swapped in meanwhile: look at the name again, a bounded
		// number of times.
		retryable := err == unix.ENOTEMPTY || err == unix.EEXIST || err == unix.ENOTDIR
		if retryable && parent.requeues < maxRequeues {
			parent.requeues++
			parent.pending = append(parent.pending, child.name)
		} else {
			r.fail(fmt.Errorf("safefs: remove %s: %w", r.pathOf(depth, child.name), err))
			parent.keep(child.name)
		}
	}
	return cur
}

// redescend re-opens the current stack from the top by name after a failed climb, verifying each
// level's identity. The first level that no longer matches, and everything below it, is dropped
// (its parent will read its name afresh). It returns the descriptor of the deepest verified
// level, or -1 (reported) if even the top cannot be reopened.
func (r *remover) redescend(topFD int) int {
	fd, err := openat(topFD, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		r.fail(fmt.Errorf("safefs: reopen %s: %w", r.pathOf(1, ""), err))
		r.stack[0].kept = true
		return -1
	}
	r.stack[0].progress = true
	for j := 1; j < len(r.stack); j++ {
		next, err := openat(fd, r.stack[j].name, dirFlags, 0)
		ok := err == nil
		if ok {
			fi, err := fstat(next)
			ok = err == nil && fi.sameFile(r.stack[j].id)
			if !ok {
				closeFD(next)
			}
		}
		if !ok {
			r.fail(fmt.Errorf("safefs: remove %s: %w", r.pathOf(j+1, ""), ErrRaced))
			r.stack = r.stack[:j]
			return fd
		}
		closeFD(fd)
		fd = next
		r.stack[j].progress = true
	}
	return fd
}

// getdents reads directory entries, retrying EINTR.
func getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}
