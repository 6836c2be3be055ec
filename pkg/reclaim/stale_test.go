package reclaim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// age sets the times of every entry below each path to d ago (directories last changed then).
func age(t testing.TB, d time.Duration, paths ...string) {
	t.Helper()
	when := time.Now().Add(-d)
	for _, root := range paths {
		var all []string
		_ = filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- { // children first: touching them changes nothing above
			testutil.Must(t, os.Chtimes(all[i], when, when))
		}
	}
}

func TestStale(t *testing.T) {
	type scene struct {
		f       *fixture
		procs   []proc.Identity // the session's processes (marker-carrying)
		paths   []string        // its node-local and home job dirs
		current string          // l.JobKey of the Stale call
	}
	// session lays out job "700" with one session and a marked tree; sup decides the record.
	session := func(f *fixture, fallback bool) scene {
		spec := sessionSpec{user: f.user, job: "700", port: 8001, fallback: fallback}
		tr := f.tree(f.user, f.layout(f.user, "700").Marker(8001))
		spec.processes = ids(f.t, tr)
		f.addSession(spec)
		return scene{f: f, procs: spec.processes, current: "699", paths: []string{
			f.runtimeJobDir(spec), f.layout(f.user, "700").HomeJobDir()}}
	}
	liveSup := func(f *fixture) proc.Identity {
		tr := f.tree(f.user, "")
		return ids(f.t, tr)[0]
	}
	for _, tc := range []struct {
		name    string
		setup   func(f *fixture) scene
		opts    func(o *Options)
		removed bool
		reason  string
	}{
		{"dead supervisor", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, deadID, "")
			return s
		}, nil, true, "supervisor pid 999999999 gone"},
		{"dead supervisor, fallback dir", func(f *fixture) scene {
			s := session(f, true)
			f.addSupervisor(sessionSpec{user: f.user, job: "700", fallback: true}, deadID, "")
			return s
		}, nil, true, "gone"},
		{"live supervisor", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, liveSup(f), "")
			return s
		}, nil, false, "alive"},
		{"live supervisor named only by a state file", func(f *fixture) scene {
			sup := liveSup(f)
			spec := sessionSpec{user: f.user, job: "700", port: 8002, sup: &sup}
			s := session(f, false)
			f.addSession(spec)
			age(t, time.Hour, s.paths...)
			return s
		}, nil, false, "alive"},
		{"supervisor from another boot", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, liveSup(f), "00000000-0000-0000-0000-000000000000")
			return s
		}, nil, true, "another boot"},
		{"supervisor record of another user's process", func(f *fixture) scene {
			s := session(f, false)
			other := ids(f.t, f.tree(f.other, ""))[0]
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, other, "")
			return s
		}, nil, true, "gone"},
		{"no record, young", func(f *fixture) scene { return session(f, false) }, nil, false, "starting"},
		{"no record, old", func(f *fixture) scene {
			s := session(f, false)
			age(t, time.Hour, s.paths...)
			return s
		}, nil, true, "no supervisor record"},
		{"home only, old", func(f *fixture) scene {
			s := session(f, false)
			testutil.Must(t, os.RemoveAll(s.paths[0]))
			age(t, time.Hour, s.paths[1])
			return s
		}, nil, true, "home only"},
		{"the caller's own job", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, deadID, "")
			s.current = "700"
			return s
		}, nil, false, ""},
		{"older-than: too young", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, deadID, "")
			return s
		}, func(o *Options) { o.OlderThan = time.Hour }, false, ""},
		{"older-than: old enough", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, deadID, "")
			age(t, 2*time.Hour, s.paths...)
			return s
		}, func(o *Options) { o.OlderThan = time.Hour }, true, "gone"},
		{"dry run", func(f *fixture) scene {
			s := session(f, false)
			f.addSupervisor(sessionSpec{user: f.user, job: "700"}, deadID, "")
			return s
		}, func(o *Options) { o.DryRun = true }, false, "would remove"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := tc.setup(f)
			opts := f.opts()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			before := testutil.Snapshot(t, f.root)
			rep, err := Stale(context.Background(), f.layout(f.user, s.current), opts)
			t.Logf("report: %+v, err: %v", rep, err)
			if tc.removed {
				testutil.WaitGone(t, s.procs)
				for _, p := range s.paths {
					if testutil.Exists(p) {
						t.Errorf("%s not removed", p)
					}
				}
				if !hasLine(rep.Removed, "removed job 700", tc.reason) {
					t.Errorf("no removed line naming %q: %q", tc.reason, rep.Removed)
				}
				return
			}
			testutil.AssertAlive(t, "kept session", s.procs)
			testutil.AssertUnchanged(t, before, testutil.Snapshot(t, f.root))
			if !testutil.Exists(s.paths[1]) {
				t.Errorf("%s removed", s.paths[1])
			}
			if tc.reason != "" && !hasLine(rep.Removed, tc.reason) {
				list, _ := ListSessions(f.layout(f.user, s.current), f.bootID)
				found := false
				for _, st := range list {
					found = found || strings.Contains(st.Reason, tc.reason)
				}
				if !found {
					t.Errorf("reason %q neither in the report nor in the list: %+v %+v", tc.reason, rep.Removed, list)
				}
			}
		})
	}
}

func TestListSessions(t *testing.T) {
	f := newFixture(t)
	live := ids(t, f.tree(f.user, ""))[0]
	f.addSession(sessionSpec{user: f.user, job: "801", port: 8001})
	f.addSupervisor(sessionSpec{user: f.user, job: "801"}, live, "")
	f.addSession(sessionSpec{user: f.user, job: "802", port: 8002, display: ":7"})
	f.addSupervisor(sessionSpec{user: f.user, job: "802"}, deadID, "")
	f.addSession(sessionSpec{user: f.other, job: "803", port: 8003}) // another user's: not listed
	list, err := ListSessions(f.layout(f.user, "801"), f.bootID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("want 2 sessions, got %+v", list)
	}
	a, b := list[0], list[1]
	if a.Job != "801" || a.Port != 8001 || !a.Live || !strings.Contains(a.Reason, "alive") || a.State == nil || a.HomeDir == "" {
		t.Errorf("live session: %+v", a)
	}
	if b.Job != "802" || b.Port != 8002 || b.Live || b.State == nil || b.State.Display != ":7" || !strings.HasSuffix(b.RuntimeDir, "job-802/session-8002") {
		t.Errorf("stale session: %+v", b)
	}
}

// TestPrologSweepsAsUser runs the Prolog: it prepares the new job's dir and, because the user has
// a dead job in the root-owned runtime root, sweeps it in a helper running as the user (which
// can only empty that dir), then removes the emptied dir as root.
func TestPrologSweepsAsUser(t *testing.T) {
	f := newFixture(t)
	spec := sessionSpec{user: f.user, job: "901", port: 8001}
	spec.processes = ids(t, f.tree(f.user, f.layout(f.user, "901").Marker(8001)))
	f.addSession(spec)
	f.addSupervisor(spec, deadID, "")
	keep := sessionSpec{user: f.user, job: "902", port: 8002}
	keep.processes = ids(t, f.tree(f.user, f.layout(f.user, "902").Marker(8002)))
	f.addSession(keep)
	f.addSupervisor(keep, ids(t, f.tree(f.user, ""))[0], "")
	res := Prolog(context.Background(), PrologParams{
		Job:        slurmenv.Job{ID: "903", UID: f.user.uid, GID: f.user.gid, User: f.user.name, Node: f.node},
		RuntimeDir: f.runtime, TempDir: f.temp, StateDir: "~/.firefox-launcher", XDir: f.xdir,
		Grace: 200 * time.Millisecond, Helper: testHelper, BootID: f.bootID,
	})
	t.Logf("result: %+v", res)
	if !res.Swept || res.RuntimeJobDir != filepath.Join(f.runtime, "job-903") || len(res.Problems) != 0 {
		t.Errorf("result: %+v", res)
	}
	testutil.WaitGone(t, spec.processes)
	testutil.AssertAlive(t, "live job 902", keep.processes)
	for _, p := range []string{filepath.Join(f.runtime, "job-901"), f.layout(f.user, "901").HomeJobDir()} {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range []string{filepath.Join(f.runtime, "job-902", "session-8002", layout.StateFile), f.layout(f.user, "902").HomeJobDir(), filepath.Join(f.runtime, "job-903")} {
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
	old := sessionSpec{user: f.user, job: "1001", port: 8001}
	f.addSession(old)
	f.addSupervisor(old, deadID, "")
	lo := f.layout(f.user, "1001")
	age(t, 10*time.Hour, filepath.Join(f.runtime, "job-1001"), lo.HomeJobDir())

	mid := sessionSpec{user: f.user, job: "1002", port: 8002, fallback: true}
	f.addSession(mid)
	f.addSupervisor(mid, deadID, "")
	lm := f.layout(f.user, "1002")
	age(t, 3*time.Hour, lm.FallbackRuntimeJobDir(), lm.HomeJobDir())

	live := sessionSpec{user: f.other, job: "1003", port: 8003}
	f.addSession(live)
	f.addSupervisor(live, ids(t, f.tree(f.other, ""))[0], "")
	age(t, 10*time.Hour, filepath.Join(f.runtime, "job-1003"))

	rep := Sweep(context.Background(), SweepParams{
		Node: f.node, RuntimeDir: f.runtime, TempDir: f.temp, StateDir: "~/.firefox-launcher", XDir: f.xdir,
		OlderThan: 5 * time.Hour, TempOlderThan: time.Hour, Grace: 100 * time.Millisecond, Helper: testHelper, BootID: f.bootID,
	})
	t.Logf("report: %+v", rep)
	for _, p := range []string{filepath.Join(f.runtime, "job-1001"), lo.HomeJobDir(), lm.FallbackRuntimeJobDir()} {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for _, p := range []string{lm.HomeJobDir(), filepath.Join(f.runtime, "job-1003", "session-8003"), f.layout(f.other, "1003").HomeJobDir()} {
		if !testutil.Exists(p) {
			t.Errorf("%s removed", p)
		}
	}
	if !hasLine(rep.Removed, "removed job 1001") || !hasLine(rep.Removed, "node-local dirs of job 1002") {
		t.Errorf("removed lines: %q", rep.Removed)
	}
}
