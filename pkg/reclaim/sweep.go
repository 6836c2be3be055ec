package reclaim

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/account"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// DefaultSweepUserTimeout bounds the helper of one user in a sweep.
const DefaultSweepUserTimeout = 2 * time.Minute

// SweepParams is one periodic sweep (root; a systemd timer or cron).
type SweepParams struct {
	// Node is this node's Slurm name (the <node> of the home subtrees).
	Node string
	// RuntimeDir, TempDir, StateDir are the configured roots; XDir is where X lock files live.
	RuntimeDir, TempDir, StateDir, XDir string
	// OlderThan: remove stale sessions whose last activity is older than this (home included).
	OlderThan time.Duration
	// TempOlderThan: remove the node-local dirs of dead jobs older than this (the home part
	// waits for OlderThan), and empty <temp>/ffl-<uid> dirs.
	TempOlderThan time.Duration
	// Grace is the SIGTERM grace for stale sessions' processes.
	Grace time.Duration
	// DryRun reports and changes nothing.
	DryRun bool
	// PerUserTimeout bounds each user's helper (default DefaultSweepUserTimeout).
	PerUserTimeout time.Duration
	Helper         Helper
	// Scanner runs the root's process scans (nil: in this process).
	Scanner procscan.Scanner
	BootID  string
	// SeenDir holds the Prolog's records of who ran jobs on this node (seen.go); those users
	// are swept too ("" = off): after a reboot they may have stale trees in their home and
	// nothing node-local left.
	SeenDir string
	Log     *logrus.Entry
}

// Sweep reclaims, for every user with ffl state on this node (owners of <runtime>/job-* and of
// <temp>/ffl-<uid>), that user's stale sessions, each user's part in a helper running as that
// user (SweepUser), then removes, as root, the empty runtime dirs of the dead jobs it found.
// Users NSS does not know, and root, are reported and skipped.
func Sweep(ctx context.Context, p SweepParams) Report {
	t := newTally(p.Log)
	if err := layout.ValidComponent(p.Node); err != nil {
		t.problem("node name: %v: nothing done", err)
		return t.report()
	}
	var total Report
	uids := owners(ctx, p.RuntimeDir, p.TempDir, t)
	seen, err := seenUIDs(p.SeenDir, p.Node)
	if err != nil {
		t.problem("%v", err)
	}
	uids = mergeUIDs(uids, seen)
	for i, uid := range uids {
		if ctx.Err() != nil {
			t.problem("sweep: %v: %d remaining users skipped", context.Cause(ctx), len(uids)-i)
			t.unfinished(PhaseSweep)
			break
		}
		uctx, cancel := context.WithTimeout(ctx, userShare(ctx, p.PerUserTimeout, len(uids)-i))
		acct, err := account.Lookup(uctx, uid)
		if err != nil {
			cancel()
			t.problem("uid %d: %v: skipped", uid, err)
			continue
		}
		rep := sweepOneUser(uctx, sweepUser{
			uid: uid, gid: acct.GID, acct: &acct, node: p.Node, exclude: SweepJobKey,
			runtimeDir: p.RuntimeDir, tempDir: p.TempDir, stateDir: p.StateDir, xDir: p.XDir,
			olderThan: p.OlderThan, tempOlderThan: p.TempOlderThan, grace: p.Grace, dryRun: p.DryRun,
			op: OpSweep, helper: p.Helper, scanner: p.Scanner, bootID: p.BootID,
		}, t)
		cancel()
		total.Add(rep)
	}
	total.Add(t.report())
	if line := total.ForeignLine(); line != "" {
		t.log.Warn(line)
	}
	return total
}

// mergeUIDs returns the sorted union of a and b.
func mergeUIDs(a, b []int) []int {
	set := map[int]bool{}
	for _, u := range append(append([]int(nil), a...), b...) {
		set[u] = true
	}
	out := make([]int, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Ints(out)
	return out
}

// userShare is the time one user's part of a sweep may take: an equal share of what is left
// among the users still to do, at most perUser (DefaultSweepUserTimeout when 0). However one
// user's state makes that part slow, every later user still gets its share: no user delays
// another's cleanup by more than the sweep's time divided by the number of users (plus the
// helper's kill wait).
func userShare(ctx context.Context, perUser time.Duration, usersLeft int) time.Duration {
	if perUser <= 0 {
		perUser = DefaultSweepUserTimeout
	}
	dl, ok := ctx.Deadline()
	if !ok || usersLeft <= 0 {
		return perUser
	}
	return min(perUser, time.Until(dl)/time.Duration(usersLeft))
}

// sweepUser is one user's part of a sweep or of the Prolog.
type sweepUser struct {
	uid, gid                            int
	acct                                *account.Account // nil: look it up
	node, exclude                       string
	runtimeDir, tempDir, stateDir, xDir string
	olderThan, tempOlderThan, grace     time.Duration
	dryRun                              bool
	op                                  string
	helper                              Helper
	scanner                             procscan.Scanner
	bootID                              string
}

// sweepOneUser finds, as root, the dead jobs of the user in the runtime root (before the helper
// changes their mtimes), runs the helper, and then removes those runtime job dirs the helper
// emptied (the user cannot remove them from the root-owned runtime root). rmdir removes only
// empty directories, so nothing the helper left is touched.
func sweepOneUser(ctx context.Context, u sweepUser, t *tally) Report {
	var out Report
	if u.uid <= 0 {
		t.problem("uid %d: never swept", u.uid)
		return out
	}
	acct := u.acct
	if acct == nil {
		a, err := account.Lookup(ctx, u.uid)
		if err != nil {
			t.problem("uid %d: %v: stale sessions not swept", u.uid, err)
			return out
		}
		acct = &a
	}
	stateDir, err := config.ExpandStateDir(u.stateDir, acct.Home)
	if err != nil {
		t.problem("user %s: %v: not swept", acct.Name, err)
		return out
	}
	bootID := u.bootID
	if bootID == "" {
		if bootID, err = bootIDOf(Options{}); err != nil {
			t.problem("%v", err)
			return out
		}
	}
	l := layout.Layout{StateDir: stateDir, RuntimeDir: u.runtimeDir, TempDir: u.tempDir, UID: u.uid, Node: u.node, JobKey: u.exclude}
	if err := l.Validate(); err != nil {
		t.problem("user %s: %v: not swept", acct.Name, err)
		return out
	}
	dead := deadRuntimeDirs(ctx, l, bootID, Options{Scanner: u.scanner}.scanner(), t)
	req := HelperRequest{
		Op: u.op, Home: acct.Home, StateDir: stateDir, RuntimeDir: u.runtimeDir, TempDir: u.tempDir, XDir: u.xDir,
		Node: u.node, Job: u.exclude, BootID: bootID, GraceMS: ms(u.grace), OlderThanMS: ms(u.olderThan),
		TempOlderThanMS: ms(u.tempOlderThan), DryRun: u.dryRun,
	}
	// The helper's deadline leaves the root's rmdir step below a moment.
	hctx, cancel := context.WithDeadline(ctx, helperDeadline(ctx))
	rep, err := RunHelper(hctx, u.helper, *acct, u.gid, req)
	cancel()
	if err != nil {
		t.problem("user %s: %v", acct.Name, err)
		if errors.Is(err, ErrHelperTimeout) {
			t.unfinished(PhaseHome)
		}
	}
	for i, line := range rep.Problems {
		rep.Problems[i] = fmt.Sprintf("user %s: helper: %s", acct.Name, line)
		t.log.Warn(rep.Problems[i])
	}
	for _, line := range rep.Removed {
		t.log.WithField("user", acct.Name).Info(line)
	}
	out.Add(rep)
	if u.dryRun {
		return out
	}
	rt, err := safefs.OpenTrusted(u.runtimeDir)
	if err != nil {
		return out
	}
	defer rt.Close()
	for _, name := range dead {
		if fi, err := safefs.LstatAt(rt, name); err != nil || !fi.IsDir() || fi.UID != u.uid {
			continue
		}
		if err := safefs.UnlinkAt(rt, name, unix.AT_REMOVEDIR); err == nil {
			out.Dirs++
			t.log.WithField("user", acct.Name).Infof("removed empty runtime dir %s of a dead job", filepath.Join(u.runtimeDir, name))
		}
	}
	return out
}

// deadRuntimeDirs returns the names of user l.UID's runtime job dirs (l.JobKey excluded) whose
// job is dead by the same rules as Stale (read as root, from node-local records only).
func deadRuntimeDirs(ctx context.Context, l layout.Layout, bootID string, scanner procscan.Scanner, t *tally) []string {
	rt, err := safefs.OpenTrusted(l.RuntimeDir)
	if err != nil {
		return nil
	}
	defer rt.Close()
	names, _, _ := safefs.ReadDirNames(rt, maxJobs)
	quiet := newTally(nil) // the helper reports the same problems, as the user; say them once
	now := time.Now()
	running := newRunningJobs(ctx, scanner)
	var dead []string
	for _, name := range names {
		key, err := layout.ParseJobDirName(name)
		if err != nil || key == l.JobKey {
			continue
		}
		fi, err := safefs.LstatAt(rt, name)
		if err != nil || !fi.IsDir() || fi.UID != l.UID {
			continue
		}
		d, err := safefs.OpenDirAtOwned(rt, name, l.UID)
		if err != nil {
			continue
		}
		j := newJobInfo(key)
		readNodeLocalJob(d, filepath.Join(l.RuntimeDir, name), l, j, quiet)
		d.Close()
		if live, _ := liveness(j, l.UID, bootID, now, running); !live {
			dead = append(dead, name)
		}
	}
	return dead
}

// ownersShare is the part of a sweep's time the listing of temp_dir may take: a user can fill
// temp_dir with names, and the users' own parts of the sweep must keep their time.
const ownersShare = 0.2

// owners lists the uids (never 0) that have ffl state on this node: owners of runtime job dirs,
// and of <temp>/ffl-<uid> dirs whose owner matches their name (another is a foreign plant,
// counted as foreign, never a line each). The look at temp_dir stops at its share of ctx's
// time.
func owners(ctx context.Context, runtimeDir, tempDir string, t *tally) []int {
	end := time.Now().Add(runtimedir.ListTimeout)
	if dl, ok := ctx.Deadline(); ok {
		end = time.Now().Add(time.Duration(float64(time.Until(dl)) * ownersShare))
	}
	set := map[int]bool{}
	if rt, err := safefs.OpenTrusted(runtimeDir); err == nil {
		names, _, _ := safefs.ReadDirNames(rt, maxJobs)
		for _, n := range names {
			if _, err := layout.ParseJobDirName(n); err != nil {
				continue
			}
			if fi, err := safefs.LstatAt(rt, n); err == nil && fi.IsDir() && fi.UID != 0 {
				set[fi.UID] = true
			}
		}
		rt.Close()
	} else if !safefs.IsNotExist(err) {
		t.problem("runtime dir %s: %v", runtimeDir, err)
	}
	if tmp, err := safefs.OpenTrusted(tempDir); err == nil {
		names, _, _ := safefs.ReadDirNames(tmp, runtimedir.MaxTempNames)
		for i, n := range names {
			if i%1024 == 0 && time.Now().After(end) {
				t.problem("temp dir %s: looked at %d of %d names in the sweep's time share; the rest waits for the next sweep", tempDir, i, len(names))
				t.unfinished(PhaseSweep)
				break
			}
			uid, err := layout.ParseUserTempName(n)
			if err != nil {
				if uid, err = layout.ParsePrivateTempName(n); err != nil {
					continue
				}
			}
			fi, err := safefs.LstatAt(tmp, n)
			switch {
			case err != nil:
			case !fi.IsDir() || fi.UID != uid:
				t.foreign(filepath.Join(tempDir, n), fi.UID) // one line for all at the end
			case uid != 0:
				set[uid] = true
			}
		}
		tmp.Close()
	} else if !safefs.IsNotExist(err) {
		t.problem("temp dir %s: %v", tempDir, err)
	}
	uids := make([]int, 0, len(set))
	for u := range set {
		uids = append(uids, u)
	}
	sort.Ints(uids)
	return uids
}

// SweepUser is the user's side of a sweep (run in the helper as that user): Stale with
// opts.OlderThan, then the node-local dirs of dead jobs older than tempOlderThan (their home
// part waits for OlderThan), then <temp>/ffl-<uid> itself when it is empty and older than
// tempOlderThan. l.JobKey is excluded (pass SweepJobKey to exclude nothing).
func SweepUser(ctx context.Context, l layout.Layout, opts Options, tempOlderThan time.Duration) (Report, error) {
	if err := l.Validate(); err != nil {
		return Report{}, fmt.Errorf("reclaim sweep: %w", err)
	}
	t := newTally(opts.Log)
	bootID, err := bootIDOf(opts)
	if err != nil {
		return Report{}, err
	}
	stale := findStale(ctx, l, bootID, opts, opts.OlderThan, t)
	reclaimJobs(ctx, l, stale, bootID, opts, t, "")
	if tempOlderThan > 0 {
		done := map[string]bool{}
		for _, j := range stale {
			done[j.key] = true
		}
		var nodeLocal []*jobInfo
		for _, j := range findStale(ctx, l, bootID, opts, tempOlderThan, newTally(nil)) { // problems: said above
			if len(j.runtime) > 0 && !done[j.key] {
				nodeLocal = append(nodeLocal, j)
			}
		}
		endProcesses(ctx, l, nodeLocal, bootID, opts, t)
		verb := "removed"
		if opts.DryRun {
			verb = "would remove"
		}
		for _, j := range nodeLocal {
			removeXFiles(opts.XDir, j.displays(bootID), l.UID, opts.DryRun, t)
			removeNodeLocalJob(ctx, l, j.key, true, opts, t)
			t.removed("%s node-local dirs of job %s on %s (%s; idle more than %s): %s", verb, j.key, l.Node, j.reason, tempOlderThan, j.describe())
		}
		if !opts.DryRun {
			removeOldEmptyUserTemp(l, tempOlderThan)
		}
	}
	rep := t.report()
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
