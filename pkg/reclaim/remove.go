package reclaim

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

// removeTree removes name below parent with the job user as the only owner whose files go, and
// accounts for it. It returns whether the entry is gone.
func removeTree(ctx context.Context, parent *os.File, name string, uid int, opts Options, t *Tally) bool {
	path := filepath.Join(parent.Name(), name)
	st, err := safefs.RemoveAllAt(parent, name, safefs.RemoveOptions{UID: uid, Deadline: deadline(ctx, opts.RemoveTimeout)})
	t.update(func(r *Report) { r.Files += st.Files; r.Bytes += st.Bytes; r.Refused += st.Refused })
	if err != nil {
		t.Problem("remove %s: %v", path, err)
		if errors.Is(err, safefs.ErrDeadline) {
			t.Unfinished(PhaseDirs)
		}
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
func removeNodeLocalJob(ctx context.Context, l layout.Layout, key string, allPrivate bool, opts Options, t *Tally) {
	parents := nodeLocalParents(l, allPrivate, t)
	defer closeAll(parents)
	name := layout.JobDirName(key)
	for _, p := range parents {
		path := filepath.Join(p.Name(), name)
		fi, err := safefs.LstatAt(p, name)
		if err != nil {
			if !safefs.IsNotExist(err) {
				t.Problem("job dir %s: %v", path, err)
			}
			continue
		}
		if fi.UID != l.UID {
			t.update(func(r *Report) { r.Refused++ })
			t.Problem("job dir %s: owner uid %d, not the job's uid %d: left alone", path, fi.UID, l.UID)
			continue
		}
		if opts.DryRun {
			continue
		}
		if mayRemoveIn(p) {
			if removeTree(ctx, p, name, l.UID, opts, t) {
				removeEmptyPrivate(l, filepath.Base(p.Name()))
			}
			continue
		}
		if !fi.IsDir() {
			continue
		}
		d, err := safefs.OpenDirAtOwned(p, name, l.UID)
		if err != nil {
			t.Problem("job dir %s: %v", path, err)
			continue
		}
		emptyDir(ctx, d, l.UID, opts, t)
		d.Close()
	}
}

// removeEmptyPrivate removes the private parent name of l.UID in temp_dir when it is empty: one
// is made per job (runtimedir), so it goes with its job. Anything else is left alone.
func removeEmptyPrivate(l layout.Layout, name string) {
	if uid, err := layout.ParsePrivateTempName(name); err != nil || uid != l.UID {
		return
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		return
	}
	defer tmp.Close()
	if fi, err := safefs.LstatAt(tmp, name); err == nil && fi.IsDir() && fi.UID == l.UID {
		_ = safefs.UnlinkAt(tmp, name, unix.AT_REMOVEDIR) // fails harmlessly when not empty
	}
}

// emptyDir removes every entry of d (d itself stays).
func emptyDir(ctx context.Context, d *os.File, uid int, opts Options, t *Tally) {
	for pass := 0; pass < 3; pass++ {
		names, _, err := safefs.ReadDirNames(d, maxJobEntries)
		if err != nil {
			t.Problem("%v", err)
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
func removeHomeJob(ctx context.Context, l layout.Layout, key string, opts Options, t *Tally) {
	node, err := openHomeNodeDir(l)
	if err != nil {
		if safefs.Refused(err) {
			t.update(func(r *Report) { r.Refused++ })
		}
		t.Problem("home: %v: not removed", err)
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
			t.Problem("home job dir %s: %v", path, err)
		}
		return
	}
	if opts.DryRun {
		return
	}
	if fi.IsSymlink() {
		t.Problem("home job dir %s is a symlink: only the link is removed, nothing is followed", path)
	}
	removeTree(ctx, node, name, l.UID, opts, t)
}

// RemoveXFiles removes the X lock and socket of each display the records name, with
// xdisplay's rule (the uid's files, server proven gone), and accounts for it.
func RemoveXFiles(xdir string, displays []int, uid int, dryRun bool, t *Tally) {
	res := xdisplay.Remove(xdir, displays, uid, dryRun)
	t.update(func(r *Report) { r.Files += res.Removed })
	for _, err := range res.Problems {
		t.Problem("X files: %v", err)
	}
}
