package reclaim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// removeTree removes name below parent with the job user as the only owner whose files go, and
// accounts for it. It returns whether the entry is gone.
func removeTree(ctx context.Context, parent *os.File, name string, uid int, opts Options, t *tally) bool {
	path := filepath.Join(parent.Name(), name)
	st, err := safefs.RemoveAllAt(parent, name, safefs.RemoveOptions{UID: uid, Deadline: deadline(ctx, opts.RemoveTimeout)})
	t.update(func(r *Report) { r.Files += st.Files; r.Bytes += st.Bytes; r.Refused += st.Refused })
	if err != nil {
		t.problem("remove %s: %v", path, err)
	}
	if _, serr := safefs.LstatAt(parent, name); safefs.IsNotExist(serr) {
		if st.Dirs > 0 || st.Files > 0 {
			t.update(func(r *Report) { r.Dirs++ })
		}
		return true
	}
	return false
}

// mayRemoveIn reports whether this process can remove entries of dir itself: root can, and so
// can dir's owner. A user cleaning up in the root-owned runtime root can only empty its job dir.
func mayRemoveIn(dir *os.File) bool {
	if os.Geteuid() == 0 {
		return true
	}
	fi, err := safefs.Fstat(dir)
	return err == nil && fi.UID == os.Geteuid()
}

// removeNodeLocalJob removes job key's node-local job dirs (both candidates). Run by the user
// in the root-owned runtime root it empties the job dir and leaves the dir itself to the Epilog
// or the sweep.
func removeNodeLocalJob(ctx context.Context, l layout.Layout, key string, opts Options, t *tally) {
	parents := nodeLocalParents(l, t)
	defer closeAll(parents)
	name := layout.JobDirName(key)
	for _, p := range parents {
		path := filepath.Join(p.Name(), name)
		fi, err := safefs.LstatAt(p, name)
		if err != nil {
			if !safefs.IsNotExist(err) {
				t.problem("job dir %s: %v", path, err)
			}
			continue
		}
		if fi.UID != l.UID {
			t.update(func(r *Report) { r.Refused++ })
			t.problem("job dir %s: owner uid %d, not the job's uid %d: left alone", path, fi.UID, l.UID)
			continue
		}
		if opts.DryRun {
			continue
		}
		if mayRemoveIn(p) {
			removeTree(ctx, p, name, l.UID, opts, t)
			continue
		}
		if !fi.IsDir() {
			continue
		}
		d, err := safefs.OpenDirAtOwned(p, name, l.UID)
		if err != nil {
			t.problem("job dir %s: %v", path, err)
			continue
		}
		emptyDir(ctx, d, l.UID, opts, t)
		d.Close()
	}
}

// emptyDir removes every entry of d (d itself stays).
func emptyDir(ctx context.Context, d *os.File, uid int, opts Options, t *tally) {
	for pass := 0; pass < 3; pass++ {
		names, _, err := safefs.ReadDirNames(d, maxJobEntries)
		if err != nil {
			t.problem("%v", err)
			return
		}
		if len(names) == 0 {
			return
		}
		progress := false
		for _, n := range names {
			if removeTree(ctx, d, n, uid, opts, t) {
				progress = true
			}
		}
		if !progress || ctx.Err() != nil {
			return
		}
	}
}

// removeHomeJob removes <state>/sessions/<node>/job-<key> (run as the user: a planted symlink
// can then reach only what the user may delete anyway; as root it is still never followed).
func removeHomeJob(ctx context.Context, l layout.Layout, key string, opts Options, t *tally) {
	node, err := openHomeNodeDir(l)
	if err != nil {
		if safefs.Refused(err) {
			t.update(func(r *Report) { r.Refused++ })
		}
		t.problem("home: %v: not removed", err)
		return
	}
	if node == nil {
		return
	}
	defer node.Close()
	name := layout.JobDirName(key)
	path := filepath.Join(l.HomeNodeDir(), name)
	fi, err := safefs.LstatAt(node, name)
	if err != nil {
		if !safefs.IsNotExist(err) {
			t.problem("home job dir %s: %v", path, err)
		}
		return
	}
	if opts.DryRun {
		return
	}
	if fi.IsSymlink() {
		t.problem("home job dir %s is a symlink: only the link is removed, nothing is followed", path)
	}
	removeTree(ctx, node, name, l.UID, opts, t)
}

// removeXFiles removes the lock file and socket of each display when they are uid's and the X
// server named in the lock is gone: after a SIGKILL, Xvfb cannot remove them itself, and a stale
// lock makes later servers skip that display forever. A lock of another user, or of a live
// server, is left alone (the display was reused).
// RemoveXFiles is removeXFiles for the launcher, which stops a session itself: one routine
// decides for both sides which X lock and socket of a display may go.
func RemoveXFiles(xdir string, displays []int, uid int) Report {
	t := newTally(nil)
	removeXFiles(xdir, displays, uid, false, t)
	return t.report()
}

func removeXFiles(xdir string, displays []int, uid int, dryRun bool, t *tally) {
	if len(displays) == 0 {
		return
	}
	if xdir == "" {
		xdir = DefaultXDir
	}
	dir, err := safefs.OpenTrusted(xdir)
	if err != nil {
		t.problem("X lock dir %s: %v", xdir, err)
		return
	}
	defer dir.Close()
	var sockets *os.File
	if f, err := safefs.OpenDirAt(dir, ".X11-unix"); err == nil {
		sockets = f
		defer f.Close()
	} else if !safefs.IsNotExist(err) {
		t.problem("X socket dir %s/.X11-unix: %v", xdir, err)
	}
	for _, n := range displays {
		lock := fmt.Sprintf(".X%d-lock", n)
		lockPath := filepath.Join(xdir, lock)
		keep, err := xLockStale(dir, lock, uid)
		if err != nil {
			t.problem("X lock %s: %v: left alone", lockPath, err)
			continue
		}
		if keep {
			continue
		}
		if dryRun {
			continue
		}
		if err := safefs.UnlinkAt(dir, lock, 0); err == nil {
			t.update(func(r *Report) { r.Files++ })
		} else if !safefs.IsNotExist(err) {
			t.problem("remove %s: %v", lockPath, err)
			continue
		}
		if sockets == nil {
			continue
		}
		sock := fmt.Sprintf("X%d", n)
		fi, err := safefs.LstatAt(sockets, sock)
		if err != nil || fi.UID != uid || !fi.IsSocket() {
			continue
		}
		if err := safefs.UnlinkAt(sockets, sock, 0); err == nil {
			t.update(func(r *Report) { r.Files++ })
		} else if !safefs.IsNotExist(err) {
			t.problem("remove %s/.X11-unix/%s: %v", xdir, sock, err)
		}
	}
}

// xLockStale looks at an X lock file: keep is true when it must stay (missing, another user's,
// or its X server still runs). The lock holds the server's PID as text ("%10d\n").
func xLockStale(dir *os.File, name string, uid int) (keep bool, err error) {
	fi, err := safefs.LstatAt(dir, name)
	if safefs.IsNotExist(err) {
		return false, nil // no lock; the socket may still be stale
	}
	if err != nil {
		return true, err
	}
	if fi.UID != uid {
		return true, nil
	}
	if !fi.IsRegular() {
		return true, fmt.Errorf("not a regular file (mode %#o)", fi.Mode&unix.S_IFMT)
	}
	data, err := safefs.ReadFileCapped(dir, name, 64)
	if err != nil {
		return true, err
	}
	pid, perr := ParseXLock(data)
	if perr != nil {
		return false, nil // garbage: no server could have written it, it blocks the display
	}
	if id, err := proc.Lookup(pid); err == nil && id.UID == uid {
		return true, nil // its X server still runs: not ours to judge
	} else if err != nil && !errors.Is(err, proc.ErrGone) {
		return true, err
	}
	return false, nil
}

// ParseXLock parses the content of an X lock file: the server's PID, space-padded, one line.
func ParseXLock(data []byte) (int, error) {
	s := strings.TrimSpace(string(data))
	if s == "" || len(s) > 10 {
		return 0, fmt.Errorf("X lock %q: not a pid", data)
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != s {
		return 0, fmt.Errorf("X lock %q: not a pid", data)
	}
	return pid, nil
}
