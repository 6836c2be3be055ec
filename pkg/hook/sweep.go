package hook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/account"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// SweepPhases are the sweep's steps that can be cut short: the watchdog names the sweep.
var SweepPhases = []string{reclaim.PhaseSweep}

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
	Helper         reclaim.Helper
	// Scanner runs the root's process scans (nil: in this process).
	Scanner procscan.Scanner
	BootID  string
	// SeenDir holds the Prolog's records of who ran jobs on this node (runtimedir.RecordSeen);
	// those users are swept too ("" = off): after a reboot they may have stale trees in their
	// home and nothing node-local left.
	SeenDir string
	Log     *logrus.Entry
}

// Sweep reclaims, for every user with ffl state on this node (owners of <runtime>/job-* and of
// <temp>/ffl-<uid>, and the users the Prolog recorded), that user's stale sessions, each user's
// part in a helper running as that user (reclaim.SweepUser) within its userShare, then
// removes, as root, the empty runtime dirs of the dead jobs it found. Users NSS does not know,
// and root, are reported and skipped.
func Sweep(ctx context.Context, p SweepParams) reclaim.Report {
	t := reclaim.NewTally(p.Log)
	if err := layout.ValidComponent(p.Node); err != nil {
		t.Problem("node name: %v: nothing done", err)
		return t.Report()
	}
	var total reclaim.Report
	uids := owners(ctx, p.RuntimeDir, p.TempDir, t)
	seen, err := runtimedir.SeenUIDs(p.SeenDir, p.Node)
	if err != nil {
		t.Problem("%v", err)
	}
	uids = mergeUIDs(uids, seen)
	for i, uid := range uids {
		if ctx.Err() != nil {
			t.Problem("sweep: %v: %d remaining users skipped", context.Cause(ctx), len(uids)-i)
			t.Unfinished(reclaim.PhaseSweep)
			break
		}
		dl, ok := ctx.Deadline()
		uctx, cancel := context.WithTimeout(ctx, userShare(time.Until(dl), ok, p.PerUserTimeout, len(uids)-i))
		acct, err := account.Lookup(uctx, uid)
		if err != nil {
			cancel()
			t.Problem("uid %d: %v: skipped", uid, err)
			if timedOut(err) {
				t.Unfinished(reclaim.PhaseSweep)
			}
			continue
		}
		rep := sweepOneUser(uctx, sweepUser{
			uid: uid, gid: acct.GID, acct: &acct, node: p.Node, exclude: reclaim.SweepJobKey,
			runtimeDir: p.RuntimeDir, tempDir: p.TempDir, stateDir: p.StateDir, xDir: p.XDir,
			olderThan: p.OlderThan, tempOlderThan: p.TempOlderThan, grace: p.Grace, dryRun: p.DryRun,
			op: reclaim.OpSweep, helper: p.Helper, scanner: p.Scanner, bootID: p.BootID,
		}, t)
		cancel()
		total.Add(rep)
	}
	total.Add(t.Report())
	if line := total.ForeignLine(); line != "" {
		t.Log().Warn(line)
	}
	return total
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
	helper                              reclaim.Helper
	scanner                             procscan.Scanner
	bootID                              string
}

// sweepOneUser finds, as root, the dead jobs of the user in the runtime root (before the helper
// changes their mtimes), runs the helper, and then removes those runtime job dirs the helper
// emptied (the user cannot remove them from the root-owned runtime root). rmdir removes only
// empty directories, so nothing the helper left is touched.
func sweepOneUser(ctx context.Context, u sweepUser, t *reclaim.Tally) reclaim.Report {
	var out reclaim.Report
	acct, l, bootID, ok := sweepUserLayout(ctx, u, t)
	if !ok {
		return out
	}
	dead := reclaim.DeadRuntimeDirs(ctx, l, bootID, u.scanner)
	req := reclaim.HelperRequest{
		Op: u.op, Home: acct.Home, StateDir: l.StateDir, RuntimeDir: u.runtimeDir, TempDir: u.tempDir, XDir: u.xDir,
		Node: u.node, Job: u.exclude, BootID: bootID, GraceMS: u.grace.Milliseconds(), OlderThanMS: u.olderThan.Milliseconds(),
		TempOlderThanMS: u.tempOlderThan.Milliseconds(), DryRun: u.dryRun,
	}
	// The helper's deadline leaves the root's rmdir step below a moment.
	hctx, cancel := context.WithDeadline(ctx, helperDeadline(ctx))
	rep, err := reclaim.RunHelper(hctx, u.helper, acct, u.gid, req)
	cancel()
	if err != nil {
		t.Problem("user %s: %v", acct.Name, err)
		if timedOut(err) {
			t.Unfinished(reclaim.PhaseHome)
		}
	}
	for i, line := range rep.Problems {
		rep.Problems[i] = fmt.Sprintf("user %s: helper: %s", acct.Name, line)
		t.Log().Warn(rep.Problems[i])
	}
	for _, line := range rep.Removed {
		t.Log().WithField("user", acct.Name).Info(line)
	}
	out.Add(rep)
	if !u.dryRun {
		out.Dirs += removeEmptyRuntimeDirs(u.runtimeDir, dead, u.uid, t.Log().WithField("user", acct.Name))
	}
	return out
}

// sweepUserLayout resolves u's account, state dir and boot id into the layout of its sweep;
// ok is false (with the problem reported) when the user is not to be swept.
func sweepUserLayout(ctx context.Context, u sweepUser, t *reclaim.Tally) (acct account.Account, l layout.Layout, id string, ok bool) {
	if u.uid <= 0 {
		t.Problem("uid %d: never swept", u.uid)
		return acct, l, "", false
	}
	if u.acct != nil {
		acct = *u.acct
	} else {
		a, err := account.Lookup(ctx, u.uid)
		if err != nil {
			t.Problem("uid %d: %v: stale sessions not swept", u.uid, err)
			return acct, l, "", false
		}
		acct = a
	}
	stateDir, err := config.ExpandStateDir(u.stateDir, acct.Home)
	if err != nil {
		t.Problem("user %s: %v: not swept", acct.Name, err)
		return acct, l, "", false
	}
	if id, err = reclaim.BootID(u.bootID); err != nil {
		t.Problem("%v", err)
		return acct, l, "", false
	}
	l = layout.Layout{StateDir: stateDir, RuntimeDir: u.runtimeDir, TempDir: u.tempDir, UID: u.uid, Node: u.node, JobKey: u.exclude}
	if err := l.Validate(); err != nil {
		t.Problem("user %s: %v: not swept", acct.Name, err)
		return acct, l, "", false
	}
	return acct, l, id, true
}

// removeEmptyRuntimeDirs removes, as root, the runtime job dirs names of uid that are empty
// now (rmdir: whatever the helper left keeps its dir), and counts them.
func removeEmptyRuntimeDirs(runtimeDir string, names []string, uid int, log *logrus.Entry) int {
	rt, err := safefs.OpenTrusted(runtimeDir)
	if err != nil {
		return 0
	}
	defer rt.Close()
	n := 0
	for _, name := range names {
		if fi, err := safefs.LstatAt(rt, name); err != nil || !fi.IsDir() || fi.UID != uid {
			continue
		}
		if err := safefs.UnlinkAt(rt, name, unix.AT_REMOVEDIR); err == nil {
			n++
			log.Infof("removed empty runtime dir %s of a dead job", filepath.Join(runtimeDir, name))
		}
	}
	return n
}

// owners lists the uids (never 0) that have ffl state on this node: owners of runtime job dirs,
// and of <temp>/ffl-<uid> dirs whose owner matches their name (another is a foreign plant,
// counted as foreign, never a line each). The look at temp_dir stops at its share of ctx's
// time.
func owners(ctx context.Context, runtimeDir, tempDir string, t *reclaim.Tally) []int {
	end := time.Now().Add(runtimedir.ListTimeout)
	if dl, ok := ctx.Deadline(); ok {
		end = time.Now().Add(share(time.Until(dl), ownersShare))
	}
	set := map[int]bool{}
	if rt, err := safefs.OpenTrusted(runtimeDir); err == nil {
		dirs, _, _ := runtimedir.JobDirs(rt)
		for _, d := range dirs {
			if d.Info.IsDir() && d.Info.UID != 0 {
				set[d.Info.UID] = true
			}
		}
		rt.Close()
	} else if !safefs.IsNotExist(err) {
		t.Problem("runtime dir %s: %v", runtimeDir, err)
	}
	if tmp, err := safefs.OpenTrusted(tempDir); err == nil {
		tempOwners(tmp, tempDir, end, set, t)
		tmp.Close()
	} else if !safefs.IsNotExist(err) {
		t.Problem("temp dir %s: %v", tempDir, err)
	}
	uids := make([]int, 0, len(set))
	for u := range set {
		uids = append(uids, u)
	}
	sort.Ints(uids)
	return uids
}

// tempOwners adds to set the owners of the ffl-<uid> and ffl-<uid>.<hex> dirs of temp_dir tmp
// whose owner matches their name, until end.
func tempOwners(tmp *os.File, tempDir string, end time.Time, set map[int]bool, t *reclaim.Tally) {
	names, _, _ := safefs.ReadDirNames(tmp, runtimedir.MaxTempNames)
	for i, n := range names {
		if i%1024 == 0 && time.Now().After(end) {
			t.Problem("temp dir %s: looked at %d of %d names in the sweep's time share; the rest waits for the next sweep", tempDir, i, len(names))
			t.Unfinished(reclaim.PhaseSweep)
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
			t.Foreign(filepath.Join(tempDir, n), fi.UID) // one line for all at the end
		case uid != 0:
			set[uid] = true
		}
	}
}
