package reclaim

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/reclaimtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

func TestStale(t *testing.T) {
	type scene struct {
		f       *reclaimtest.Fixture
		procs   []proc.Identity // the session's processes (marker-carrying)
		paths   []string        // its node-local and home job dirs
		current string          // l.JobKey of the Stale call
	}
	// session lays out job "700" with one session and a marked tree; sup decides the record.
	session := func(f *reclaimtest.Fixture, fallback bool) scene {
		spec := reclaimtest.Session{User: f.User, Job: "700", Port: 8001, Fallback: fallback}
		tr := f.Tree(f.User, f.Layout(f.User, "700").Marker(8001))
		spec.Processes = reclaimtest.IDs(f.T, tr)
		f.AddSession(spec)
		return scene{f: f, procs: spec.Processes, current: "699", paths: []string{
			f.RuntimeJobDir(spec), f.Layout(f.User, "700").HomeJobDir()}}
	}
	liveSup := func(f *reclaimtest.Fixture) proc.Identity {
		tr := f.Tree(f.User, "")
		return reclaimtest.IDs(f.T, tr)[0]
	}
	for _, tc := range []struct {
		name    string
		setup   func(f *reclaimtest.Fixture) scene
		opts    func(o *Options)
		removed bool
		reason  string
	}{
		{"dead supervisor", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, reclaimtest.DeadID, "")
			return s
		}, nil, true, "supervisor pid 999999999 gone"},
		{"dead supervisor, fallback dir", func(f *reclaimtest.Fixture) scene {
			s := session(f, true)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700", Fallback: true}, reclaimtest.DeadID, "")
			return s
		}, nil, true, "gone"},
		{"live supervisor", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, liveSup(f), "")
			return s
		}, nil, false, "alive"},
		{"live supervisor named only by a state file", func(f *reclaimtest.Fixture) scene {
			sup := liveSup(f)
			spec := reclaimtest.Session{User: f.User, Job: "700", Port: 8002, Sup: &sup}
			s := session(f, false)
			f.AddSession(spec)
			reclaimtest.Age(t, time.Hour, s.paths...)
			return s
		}, nil, false, "alive"},
		{"supervisor from another boot", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, liveSup(f), "00000000-0000-0000-0000-000000000000")
			return s
		}, nil, true, "another boot"},
		{"supervisor record of another user's process", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			other := reclaimtest.IDs(f.T, f.Tree(f.Other, ""))[0]
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, other, "")
			return s
		}, nil, true, "gone"},
		{"no record, young", func(f *reclaimtest.Fixture) scene { return session(f, false) }, nil, false, "starting"},
		{"no record, old", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			reclaimtest.Age(t, time.Hour, s.paths...)
			return s
		}, nil, true, "no supervisor record"},
		{"home only, old", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			testutil.Must(t, os.RemoveAll(s.paths[0]))
			reclaimtest.Age(t, time.Hour, s.paths[1])
			return s
		}, nil, true, "home only"},
		{"the caller's own job", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, reclaimtest.DeadID, "")
			s.current = "700"
			return s
		}, nil, false, ""},
		{"older-than: too young", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, reclaimtest.DeadID, "")
			return s
		}, func(o *Options) { o.OlderThan = time.Hour }, false, ""},
		{"older-than: old enough", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, reclaimtest.DeadID, "")
			reclaimtest.Age(t, 2*time.Hour, s.paths...)
			return s
		}, func(o *Options) { o.OlderThan = time.Hour }, true, "gone"},
		{"dry run", func(f *reclaimtest.Fixture) scene {
			s := session(f, false)
			f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "700"}, reclaimtest.DeadID, "")
			return s
		}, func(o *Options) { o.DryRun = true }, false, "would remove"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			s := tc.setup(f)
			opts := testOpts(f)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			before := testutil.Snapshot(t, f.Root)
			rep, err := Stale(context.Background(), f.Layout(f.User, s.current), opts)
			t.Logf("report: %+v, err: %v", rep, err)
			if tc.removed {
				testutil.WaitGone(t, s.procs)
				for _, p := range s.paths {
					if testutil.Exists(p) {
						t.Errorf("%s not removed", p)
					}
				}
				if !reclaimtest.HasLine(rep.Removed, "removed job 700", tc.reason) {
					t.Errorf("no removed line naming %q: %q", tc.reason, rep.Removed)
				}
				return
			}
			testutil.AssertAlive(t, "kept session", s.procs)
			testutil.AssertUnchanged(t, before, testutil.Snapshot(t, f.Root))
			if !testutil.Exists(s.paths[1]) {
				t.Errorf("%s removed", s.paths[1])
			}
			if tc.reason != "" && !reclaimtest.HasLine(rep.Removed, tc.reason) {
				list, _ := ListSessions(f.Layout(f.User, s.current), f.BootID)
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
	live := reclaimtest.IDs(t, f.Tree(f.User, ""))[0]
	f.AddSession(reclaimtest.Session{User: f.User, Job: "801", Port: 8001})
	f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "801"}, live, "")
	f.AddSession(reclaimtest.Session{User: f.User, Job: "802", Port: 8002, Display: ":7"})
	f.AddSupervisor(reclaimtest.Session{User: f.User, Job: "802"}, reclaimtest.DeadID, "")
	f.AddSession(reclaimtest.Session{User: f.Other, Job: "803", Port: 8003}) // another user's: not listed
	list, err := ListSessions(f.Layout(f.User, "801"), f.BootID)
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
