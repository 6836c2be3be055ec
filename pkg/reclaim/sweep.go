package reclaim

import (
	"context"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// DeadRuntimeDirs returns the names of user l.UID's runtime job dirs (l.JobKey excluded) whose
// job is dead by the same rules as Stale (read as root, from node-local records only). The
// sweep and the Prolog read them before the helper runs (it changes their mtimes), and remove
// them as root after it emptied them.
func DeadRuntimeDirs(ctx context.Context, l layout.Layout, bootID string, scanner procscan.Scanner) []string {
	rt, err := safefs.OpenTrusted(l.RuntimeDir)
	if err != nil {
		return nil
	}
	defer rt.Close()
	dirs, _, _ := runtimedir.JobDirs(rt)
	quiet := NewTally(nil) // the helper reports the same problems, as the user; say them once
	now := time.Now()
	running := procscan.NewRunningJobs(ctx, Options{Scanner: scanner}.scanner())
	var dead []string
	for _, jd := range dirs {
		if jd.Key == l.JobKey || !jd.Info.IsDir() || jd.Info.UID != l.UID {
			continue
		}
		d, err := safefs.OpenDirAtOwned(rt, jd.Name, l.UID)
		if err != nil {
			continue
		}
		j := newJobInfo(jd.Key)
		readNodeLocalJob(d, filepath.Join(l.RuntimeDir, jd.Name), l, j, quiet)
		d.Close()
		if live, _ := liveness(j, l.UID, bootID, now, running.Has, procAlive(ctx)); !live {
			dead = append(dead, jd.Name)
		}
	}
	return dead
}

// SweepUser is the user's side of a sweep (run in the helper as that user): Stale with
// opts.OlderThan, then the node-local dirs of dead jobs older than tempOlderThan (their home
// part waits for OlderThan), then <temp>/ffl-<uid> itself when it is empty and older than
// tempOlderThan. l.JobKey is excluded (pass SweepJobKey to exclude nothing).
func SweepUser(ctx context.Context, l layout.Layout, opts Options, tempOlderThan time.Duration) (Report, error) {
	t, stale, bootID, err := reclaimStale(ctx, l, opts, "reclaim sweep")
	if err != nil {
		return Report{}, err
	}
	if tempOlderThan > 0 {
		done := map[string]bool{}
		for _, j := range stale {
			done[j.key] = true
		}
		var nodeLocal []*jobInfo
		for _, j := range findStale(ctx, l, bootID, opts, tempOlderThan, NewTally(nil)) { // problems: said above
			if len(j.runtime) > 0 && !done[j.key] {
				nodeLocal = append(nodeLocal, j)
			}
		}
		endProcesses(ctx, l, nodeLocal, bootID, opts, t)
		verb := DoneVerb(opts.DryRun)
		for _, j := range nodeLocal {
			RemoveXFiles(opts.XDir, j.displays(bootID), l.UID, opts.DryRun, t)
			removeNodeLocalJob(ctx, l, j.key, true, opts, t)
			t.removed("%s node-local dirs of job %s on %s (%s; idle more than %s): %s", verb, j.key, l.Node, j.reason, tempOlderThan, j.describe())
		}
		if !opts.DryRun {
			removeOldEmptyUserTemp(l, tempOlderThan)
		}
	}
	rep := t.Report()
	return rep, rep.Err()
}

// removeOldEmptyUserTemp removes <temp>/ffl-<uid> and the user's private parents
// (ffl-<uid>.<hex>) when they are empty and unchanged for olderThan (rmdir fails harmlessly when
// a launcher put something in one meanwhile).
func removeOldEmptyUserTemp(l layout.Layout, olderThan time.Duration) {
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		return
	}
	defer tmp.Close()
	private, _ := runtimedir.PrivateParents(tmp, l.UID, time.Now().Add(runtimedir.ListTimeout))
	names := append([]string{layout.UserTempName(l.UID)}, private...)
	for _, name := range names {
		fi, err := safefs.LstatAt(tmp, name)
		if err != nil || !fi.IsDir() || fi.UID != l.UID || time.Since(fi.Mtime) < olderThan {
			continue
		}
		_ = safefs.UnlinkAt(tmp, name, unix.AT_REMOVEDIR)
	}
}
