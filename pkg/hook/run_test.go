package hook

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/reclaimtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// The hooks' runs (Epilog, Prolog, Sweep) on reclaimtest's fixture, as root, with this test
// binary re-executed as the user for the helper (TestMain).

// TestEpilogHungHelper: a helper that never finishes (a hung NFS home) does not hold up the
// Epilog: it is killed at the deadline, and the node-local part is still removed.
func TestEpilogHungHelper(t *testing.T) {
	f := newFixture(t)
	procs := reclaimtest.IDs(t, f.Tree(f.User, f.Layout(f.User, "1101").Marker(8001)))
	f.AddSession(reclaimtest.Session{User: f.User, Job: "1101", Port: 8001, Processes: procs})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	res := Epilog(ctx, EpilogParams{
		Job:        slurmenv.Job{ID: "1101", UID: f.User.UID, GID: f.User.GID, User: f.User.Name, Node: f.Node},
		RuntimeDir: f.Runtime, TempDir: f.Temp, StateDir: "~/.firefox-launcher", XDir: f.XDir,
		Grace: 100 * time.Millisecond, Helper: reclaimtest.ShHelper("sleep 120; :"), BootID: f.BootID,
	})
	took := time.Since(start)
	t.Logf("result after %s: %+v", took, res)
	if took > 10*time.Second {
		t.Errorf("the Epilog waited %s for a hung helper", took)
	}
	if !reclaimtest.HasLine(res.Problems, "timed out") {
		t.Errorf("no problem line says the helper timed out: %q", res.Problems)
	}
	testutil.WaitGone(t, procs)
	if testutil.Exists(f.Layout(f.User, "1101").PreferredRuntimeJobDir()) {
		t.Error("node-local dir not removed after the helper timed out")
	}
	if !testutil.Exists(f.Layout(f.User, "1101").HomeJobDir()) {
		t.Error("the home was touched by root")
	}
}

func TestEpilogEndsExactlyItsJob(t *testing.T) {
	f := newFixture(t)
	s := f.Leftovers("101", "102")
	p := EpilogParams{
		Job:        slurmenv.Job{ID: "101", UID: f.User.UID, GID: f.User.GID, User: f.User.Name, Node: f.Node},
		RuntimeDir: f.Runtime, TempDir: f.Temp, StateDir: "~/.firefox-launcher", XDir: f.XDir,
		Grace: 300 * time.Millisecond, Helper: testHelper, BootID: f.BootID,
	}
	before := testutil.Snapshot(t, f.Root)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep := Epilog(ctx, p)
	t.Logf("report: %+v", rep)
	s.Check(t, f)
	if rep.Sessions != 2 || rep.Termed < 6 || rep.Killed < 2 || rep.Left != 0 || len(rep.Unfinished) != 0 {
		t.Errorf("report: want 2 sessions, >= 6 TERMs, >= 2 KILLs (TERM-ignoring children), 0 left, all finished: %+v", rep)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, f.Root), s.ARuntime, filepath.Join(f.XDir, ".X4201-lock"), filepath.Join(f.XDir, ".X11-unix", "X4201"))
	// Idempotent: a second run finds nothing and reports no problem.
	rep = Epilog(ctx, p)
	if rep.Err() != nil || rep.Termed != 0 || rep.Dirs != 0 {
		t.Errorf("second run: %+v", rep)
	}
}

// TestEpilogSlowPath runs the Epilog's three steps, the home one in a real helper (this test
// binary re-executed as the user).
func TestEpilogSlowPath(t *testing.T) {
	f := newFixture(t)
	s := f.Leftovers("201", "202")
	resolved := false
	res := Epilog(context.Background(), EpilogParams{
		Job: slurmenv.Job{ID: "201", UID: f.User.UID, GID: f.User.GID, User: f.User.Name, Node: f.Node},
		Resolve: func() (slurmenv.Job, error) {
			resolved = true
			return slurmenv.Job{ID: "201", UID: f.User.UID, GID: f.User.GID, User: f.User.Name, Node: f.Node}, nil
		},
		RuntimeDir: f.Runtime, TempDir: f.Temp, StateDir: "~/.firefox-launcher", XDir: f.XDir,
		Grace: 300 * time.Millisecond, Helper: testHelper, BootID: f.BootID,
	})
	t.Logf("result: %+v", res)
	if res.Fast || !resolved {
		t.Errorf("took the fast path (fast=%v, resolved=%v)", res.Fast, resolved)
	}
	s.Check(t, f)
	if res.Sessions != 2 || res.Unkillable != 0 || res.Dirs < 2 {
		t.Errorf("result: %+v", res)
	}
}

func TestEpilogFastPath(t *testing.T) {
	f := newFixture(t)
	job := "301"
	dir := filepath.Join(f.Runtime, layout.JobDirName(job))
	testutil.MkdirAs(t, dir, f.User, 0o700)
	res := Epilog(context.Background(), EpilogParams{
		Job:        slurmenv.Job{ID: job, UID: f.User.UID, GID: f.User.GID, User: f.User.Name, Node: f.Node},
		Resolve:    func() (slurmenv.Job, error) { t.Error("the fast path resolved the user"); return slurmenv.Job{}, nil },
		RuntimeDir: f.Runtime, TempDir: f.Temp, StateDir: "~/.firefox-launcher", XDir: f.XDir, Helper: testHelper, BootID: f.BootID,
	})
	if !res.Fast || len(res.Problems) != 0 || testutil.Exists(dir) {
		t.Errorf("fast path: %+v, dir exists: %v", res, testutil.Exists(dir))
	}
}

// TestPrologSweepsAsUser runs the Prolog: it prepares the new job's dir and, because the user has
// a dead job in the root-owned runtime root, sweeps it in a helper running as the user (which
// can only empty that dir), then removes the emptied dir as root.
func TestPrologSweepsAsUser(t *testing.T) {
	f := newFixture(t)
	spec := reclaimtest.Session{User: f.User, Job: "901", Port: 8001}
	spec.Processes = reclaimtest.IDs(t, f.Tree(f.User, f.Layout(f.User, "901").Marker(8001)))
	f.AddSession(spec)
	f.AddSupervisor(spec, reclaimtest.DeadID, "")
	keep := reclaimtest.Session{User: f.User, Job: "902", Port: 8002}
	keep.Processes = reclaimtest.IDs(t, f.Tree(f.User, f.Layout(f.User, "902").Marker(8002)))
	f.AddSession(keep)
	f.AddSupervisor(keep, reclaimtest.IDs(t, f.Tree(f.User, ""))[0], "")
	res := Prolog(context.Background(), PrologParams{
		Job:        slurmenv.Job{ID: "903", UID: f.User.UID, GID: f.User.GID, User: f.User.Name, Node: f.Node},
		RuntimeDir: f.Runtime, TempDir: f.Temp, StateDir: "~/.firefox-launcher", XDir: f.XDir,
		Grace: 200 * time.Millisecond, Helper: testHelper, BootID: f.BootID,
	})
	t.Logf("result: %+v", res)
	if !res.Swept || res.RuntimeJobDir != filepath.Join(f.Runtime, "job-903") || len(res.Problems) != 0 {
		t.Errorf("result: %+v", res)
	}
	testutil.WaitGone(t, spec.Processes)
	testutil.AssertAlive(t, "live job 902", keep.Processes)
	for _, p := range []string{filepath.Join(f.Runtime, "job-901"), f.Layout(f.User, "901").HomeJobDir()} {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range []string{filepath.Join(f.Runtime, "job-902", "session-8002", layout.StateFile), f.Layout(f.User, "902").HomeJobDir(), filepath.Join(f.Runtime, "job-903")} {
		if !testutil.Exists(p) {
			t.Errorf("%s removed", p)
		}
	}
}

// TestSweep runs the root sweep: one user's old dead job goes entirely; a younger dead job in the
// fallback dir loses only its node-local part (older than temp-older-than, younger than
// older-than); a live job stays.
func TestSweep(t *testing.T) {
	f := newFixture(t)
	old := reclaimtest.Session{User: f.User, Job: "1001", Port: 8001}
	f.AddSession(old)
	f.AddSupervisor(old, reclaimtest.DeadID, "")
	lo := f.Layout(f.User, "1001")
	reclaimtest.Age(t, 10*time.Hour, filepath.Join(f.Runtime, "job-1001"), lo.HomeJobDir())

	mid := reclaimtest.Session{User: f.User, Job: "1002", Port: 8002, Fallback: true}
	f.AddSession(mid)
	f.AddSupervisor(mid, reclaimtest.DeadID, "")
	lm := f.Layout(f.User, "1002")
	reclaimtest.Age(t, 3*time.Hour, lm.FallbackRuntimeJobDir(), lm.HomeJobDir())

	live := reclaimtest.Session{User: f.Other, Job: "1003", Port: 8003}
	f.AddSession(live)
	f.AddSupervisor(live, reclaimtest.IDs(t, f.Tree(f.Other, ""))[0], "")
	reclaimtest.Age(t, 10*time.Hour, filepath.Join(f.Runtime, "job-1003"))

	rep := Sweep(context.Background(), SweepParams{
		Node: f.Node, RuntimeDir: f.Runtime, TempDir: f.Temp, StateDir: "~/.firefox-launcher", XDir: f.XDir,
		OlderThan: 5 * time.Hour, TempOlderThan: time.Hour, Grace: 100 * time.Millisecond, Helper: testHelper, BootID: f.BootID,
	})
	t.Logf("report: %+v", rep)
	for _, p := range []string{filepath.Join(f.Runtime, "job-1001"), lo.HomeJobDir(), lm.FallbackRuntimeJobDir()} {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range []string{lm.HomeJobDir(), filepath.Join(f.Runtime, "job-1003", "session-8003"), f.Layout(f.Other, "1003").HomeJobDir()} {
		if !testutil.Exists(p) {
			t.Errorf("%s removed", p)
		}
	}
	if !reclaimtest.HasLine(rep.Removed, "removed job 1001") || !reclaimtest.HasLine(rep.Removed, "node-local dirs of job 1002") {
		t.Errorf("removed lines: %q", rep.Removed)
	}
}
