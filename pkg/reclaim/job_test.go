package reclaim

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// leftovers lays out the "real leftover" scene: job A with sessions 8001 and 8002, job B (same
// user), and another user's job A-lookalike, each with a live faketree carrying its marker
// (TERM-ignoring child, daemonized grandchild), as after a SIGKILL of every launcher.
type leftovers struct {
	a1, a2, b, other, otherNode []proc.Identity
	aRuntime, bRuntime          string
	aHome, bHome, otherHome     string
}

func (f *fixture) leftovers(jobA, jobB string) leftovers {
	t := f.t
	var s leftovers
	la := f.layout(f.user, jobA)
	tA1 := f.tree(f.user, la.Marker(8001))
	tA2 := f.tree(f.user, la.Marker(8002))
	tB := f.tree(f.user, f.layout(f.user, jobB).Marker(8001))
	tO := f.tree(f.other, f.layout(f.other, jobA).Marker(8001)) // same marker text, another uid
	tN := f.tree(f.user, jobA+"/elsewhere/8001/")               // same job, another node
	s.a1, s.a2, s.b, s.other, s.otherNode = ids(t, tA1), ids(t, tA2), ids(t, tB), ids(t, tO), ids(t, tN)
	f.addSession(sessionSpec{user: f.user, job: jobA, port: 8001, display: ":4201", processes: s.a1})
	f.addSession(sessionSpec{user: f.user, job: jobA, port: 8002, processes: s.a2[:1]})
	f.addSupervisor(sessionSpec{user: f.user, job: jobA}, deadID, "")
	f.addSession(sessionSpec{user: f.user, job: jobB, port: 8001, processes: s.b, fallback: true})
	f.addSession(sessionSpec{user: f.other, job: jobA, port: 8001, processes: s.other, fallback: true})
	s.aRuntime = filepath.Join(f.runtime, layout.JobDirName(jobA))
	s.bRuntime = filepath.Join(f.temp, layout.UserTempName(f.user.uid), layout.JobDirName(jobB))
	s.aHome = la.HomeJobDir()
	s.bHome = f.layout(f.user, jobB).HomeJobDir()
	s.otherHome = f.layout(f.other, jobA).HomeJobDir()
	// A stale X lock of job A's display, and its socket.
	testutil.WriteAs(t, filepath.Join(f.xdir, ".X4201-lock"), f.user, []byte(fmt.Sprintf("%10d\n", 999_999_999)))
	sock := filepath.Join(f.xdir, ".X11-unix", "X4201")
	ln, err := net.Listen("unix", sock)
	testutil.Must(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	testutil.Must(t, os.Lchown(sock, f.user.uid, f.user.gid))
	return s
}

func (s leftovers) check(t *testing.T, f *fixture) {
	t.Helper()
	testutil.WaitGone(t, append(append([]proc.Identity{}, s.a1...), s.a2...))
	testutil.AssertAlive(t, "job B", s.b)
	testutil.AssertAlive(t, "another user", s.other)
	testutil.AssertAlive(t, "job A on another node", s.otherNode)
	for _, p := range []string{s.aRuntime, s.aHome, filepath.Join(f.xdir, ".X4201-lock"), filepath.Join(f.xdir, ".X11-unix", "X4201")} {
		if testutil.Exists(p) {
			t.Errorf("%s still exists", p)
		}
	}
	for _, p := range []string{s.bRuntime, s.bHome, s.otherHome} {
		if !testutil.Exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
}

func TestEpilogEndsExactlyItsJob(t *testing.T) {
	f := newFixture(t)
	s := f.leftovers("101", "102")
	p := EpilogParams{
		Job:        slurmenv.Job{ID: "101", UID: f.user.uid, GID: f.user.gid, User: f.user.name, Node: f.node},
		RuntimeDir: f.runtime, TempDir: f.temp, StateDir: "~/.firefox-launcher", XDir: f.xdir,
		Grace: 300 * time.Millisecond, Helper: testHelper, BootID: f.bootID,
	}
	before := testutil.Snapshot(t, f.root)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep := Epilog(ctx, p)
	t.Logf("report: %+v", rep)
	s.check(t, f)
	if rep.Sessions != 2 || rep.Termed < 6 || rep.Killed < 2 || rep.Left != 0 || len(rep.Unfinished) != 0 {
		t.Errorf("report: want 2 sessions, >= 6 TERMs, >= 2 KILLs (TERM-ignoring children), 0 left, all finished: %+v", rep)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, f.root), s.aRuntime, filepath.Join(f.xdir, ".X4201-lock"), filepath.Join(f.xdir, ".X11-unix", "X4201"))
	// Idempotent: a second run finds nothing and reports no problem.
	rep = Epilog(ctx, p)
	if rep.Err() != nil || rep.Termed != 0 || rep.Dirs != 0 {
		t.Errorf("second run: %+v", rep)
	}
}

// TestJobEndsExactlyItsJob: what the launcher calls for an earlier run of its own job.
func TestJobEndsExactlyItsJob(t *testing.T) {
	f := newFixture(t)
	s := f.leftovers("111", "112")
	before := testutil.Snapshot(t, f.root)
	rep, err := Job(context.Background(), f.layout(f.user, "111"), f.opts())
	t.Logf("report: %+v, err: %v", rep, err)
	s.check(t, f)
	if rep.Sessions != 2 || rep.Termed < 6 || rep.Killed < 2 || rep.Left != 0 {
		t.Errorf("report: want 2 sessions, >= 6 TERMs, >= 2 KILLs (TERM-ignoring children), 0 left: %+v", rep)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, f.root), s.aRuntime, filepath.Join(f.xdir, ".X4201-lock"), filepath.Join(f.xdir, ".X11-unix", "X4201"))
	rep, err = Job(context.Background(), f.layout(f.user, "111"), f.opts())
	if err != nil || rep.Termed != 0 || rep.Dirs != 0 {
		t.Errorf("second run: %+v, %v", rep, err)
	}
}

// TestEpilogSlowPath runs the Epilog's three steps, the home one in a real helper (this test
// binary re-executed as the user).
func TestEpilogSlowPath(t *testing.T) {
	f := newFixture(t)
	s := f.leftovers("201", "202")
	resolved := false
	res := Epilog(context.Background(), EpilogParams{
		Job: slurmenv.Job{ID: "201", UID: f.user.uid, GID: f.user.gid, User: f.user.name, Node: f.node},
		Resolve: func() (slurmenv.Job, error) {
			resolved = true
			return slurmenv.Job{ID: "201", UID: f.user.uid, GID: f.user.gid, User: f.user.name, Node: f.node}, nil
		},
		RuntimeDir: f.runtime, TempDir: f.temp, StateDir: "~/.firefox-launcher", XDir: f.xdir,
		Grace: 300 * time.Millisecond, Helper: testHelper, BootID: f.bootID,
	})
	t.Logf("result: %+v", res)
	if res.Fast || !resolved {
		t.Errorf("took the fast path (fast=%v, resolved=%v)", res.Fast, resolved)
	}
	s.check(t, f)
	if res.Sessions != 2 || res.Unkillable != 0 || res.Dirs < 2 {
		t.Errorf("result: %+v", res)
	}
}

func TestEpilogFastPath(t *testing.T) {
	f := newFixture(t)
	job := "301"
	dir := filepath.Join(f.runtime, layout.JobDirName(job))
	testutil.MkdirAs(t, dir, f.user, 0o700)
	res := Epilog(context.Background(), EpilogParams{
		Job:        slurmenv.Job{ID: job, UID: f.user.uid, GID: f.user.gid, User: f.user.name, Node: f.node},
		Resolve:    func() (slurmenv.Job, error) { t.Error("the fast path resolved the user"); return slurmenv.Job{}, nil },
		RuntimeDir: f.runtime, TempDir: f.temp, StateDir: "~/.firefox-launcher", XDir: f.xdir, Helper: testHelper, BootID: f.bootID,
	})
	if !res.Fast || len(res.Problems) != 0 || testutil.Exists(dir) {
		t.Errorf("fast path: %+v, dir exists: %v", res, testutil.Exists(dir))
	}
}

func TestNodeLocalUsage(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		setup func(job string)
		used  bool
	}{
		{"nothing", func(string) {}, false},
		{"empty prolog dir", func(job string) { testutil.MkdirAs(t, filepath.Join(f.runtime, "job-"+job), f.user, 0o700) }, false},
		{"prolog dir with junk", func(job string) {
			d := filepath.Join(f.runtime, "job-"+job)
			testutil.MkdirAs(t, d, f.user, 0o700)
			testutil.WriteAs(t, filepath.Join(d, "junk"), f.user, nil)
		}, false},
		{"session dir", func(job string) {
			testutil.MkdirAs(t, filepath.Join(f.runtime, "job-"+job, "session-8001"), f.user, 0o700)
		}, true},
		{"supervisor in fallback", func(job string) {
			d := filepath.Join(f.temp, layout.UserTempName(f.user.uid), "job-"+job)
			testutil.MkdirAs(t, d, f.user, 0o700)
			testutil.WriteAs(t, filepath.Join(d, layout.SupervisorFile), f.user, []byte("{}"))
		}, true},
		{"symlink as job dir", func(job string) {
			testutil.Must(t, os.Symlink("/etc", filepath.Join(f.runtime, "job-"+job)))
		}, true},
		// Another user's squat alone keeps the fast path (a user must not send every Epilog of
		// the victim down the slow one); a session in a private parent under the squat does not.
		{"foreign ffl-uid", func(job string) {
			d := filepath.Join(f.temp, layout.UserTempName(f.user.uid))
			testutil.MkdirAs(t, filepath.Join(d, "job-"+job), f.other, 0o700)
		}, false},
		{"foreign ffl-uid, session in a private parent", func(job string) {
			d := filepath.Join(f.temp, layout.UserTempName(f.user.uid))
			testutil.MkdirAs(t, filepath.Join(d, "job-"+job), f.other, 0o700)
			p := filepath.Join(f.temp, layout.PrivateTempName(f.user.uid, "00112233445566ff"))
			os.RemoveAll(p)
			t.Cleanup(func() { os.RemoveAll(p) })
			testutil.MkdirAs(t, p, f.user, 0o700)
			testutil.MkdirAs(t, filepath.Join(p, "job-"+job), f.user, 0o700)
			testutil.MkdirAs(t, filepath.Join(p, "job-"+job, "session-8001"), f.user, 0o700)
		}, true},
		{"crowded", func(job string) {
			d := filepath.Join(f.runtime, "job-"+job)
			testutil.MkdirAs(t, d, f.user, 0o700)
			for i := 0; i < 100; i++ {
				testutil.WriteAs(t, filepath.Join(d, fmt.Sprintf("f%d", i)), f.user, nil)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := fmt.Sprintf("4%d", len(tc.name))
			os.RemoveAll(filepath.Join(f.runtime, "job-"+job))
			os.RemoveAll(filepath.Join(f.temp, layout.UserTempName(f.user.uid)))
			tc.setup(job)
			used, why := NodeLocalUsage(f.layout(f.user, job))
			if used != tc.used {
				t.Errorf("used = %v (%s), want %v", used, why, tc.used)
			}
		})
	}
}
