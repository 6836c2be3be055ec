package reclaim

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// The pure decisions (decide.go), without root and without test users: the only process they
// look at is this test's own.

const (
	thisBoot  = "boot-now"
	otherBoot = "boot-before"
)

func self(t *testing.T) proc.Identity {
	t.Helper()
	id, err := proc.Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func jobWith(key string, activity time.Time, runtime bool, sups []layout.Supervisor, states ...layout.State) *jobInfo {
	j := newJobInfo(key)
	j.activity = activity
	if runtime {
		j.runtime = []string{"/run/ffl/job-" + key}
	}
	j.sups = sups
	for i := range states {
		st := states[i]
		j.session(st.Port).state = &st
	}
	return j
}

// nsSup and nsState are records made in PID namespace ns whose supervisor has PID 7 there.
func nsSup(ns uint64) []layout.Supervisor {
	return []layout.Supervisor{{Job: "7", BootID: thisBoot, Process: proc.Identity{PID: 7, StartTime: 1}, PIDNS: ns}}
}

func nsState(ns uint64) layout.State {
	return layout.State{Job: "7", Port: 8001, BootID: thisBoot, Supervisor: proc.Identity{PID: 7, StartTime: 1}, PIDNS: ns}
}

// nsFake is an aliveFunc for records of another PID namespace: what proc.Resolve would have
// found (found: alive; hidden: the namespace out of sight); a record of the reader's own
// namespace (ns 0) is never alive, so a test that gets there fails.
func nsFake(same, hidden, found bool) aliveFunc {
	return func(id proc.Identity, ns uint64) (bool, bool) {
		if ns == 0 {
			return same, false
		}
		return found, hidden
	}
}

func TestLiveness(t *testing.T) {
	me := self(t)
	uid := os.Getuid()
	dead := proc.Identity{PID: 999_999_999, StartTime: 1}
	reused := proc.Identity{PID: me.PID, StartTime: me.StartTime + 1} // this PID, another process
	now := time.Now()
	old := now.Add(-time.Hour)
	sup := func(id proc.Identity, boot string) []layout.Supervisor {
		return []layout.Supervisor{{Job: "7", BootID: boot, Process: id}}
	}
	state := func(id proc.Identity, boot string) layout.State {
		return layout.State{Job: "7", Port: 8001, BootID: boot, Supervisor: id}
	}
	never := func(string) bool { return false }
	always := func(string) bool { return true }
	for _, tc := range []struct {
		name    string
		job     *jobInfo
		uid     int
		running func(string) bool
		live    bool
		why     string
		alive   aliveFunc // nil: procAlive
	}{
		{"supervisor alive", jobWith("7", old, true, sup(me, thisBoot)), uid, never, true, "alive", nil},
		{"supervisor gone", jobWith("7", old, true, sup(dead, thisBoot)), uid, always, false, "gone", nil},
		{"pid reused", jobWith("7", old, true, sup(reused, thisBoot)), uid, never, false, "gone", nil},
		{"record of another uid names no supervisor of ours", jobWith("7", old, true, sup(me, thisBoot)), uid + 1, never, false, "gone", nil},
		{"record of another boot", jobWith("7", now, true, sup(me, otherBoot)), uid, always, false, "another boot", nil},
		{"pid 1 is never a supervisor", jobWith("7", old, true, sup(proc.Identity{PID: 1}, thisBoot)), 0, never, false, "gone", nil},
		{"gone record, live one named by a state", jobWith("7", old, true, sup(dead, thisBoot), state(me, thisBoot)), uid, never, true, "named by the state of session 8001", nil},
		{"state of another boot does not count", jobWith("7", old, true, nil, state(me, otherBoot)), uid, never, false, "no supervisor record", nil},
		{"no record, Slurm job still here", jobWith("7", old, true, nil), uid, always, true, "still runs", nil},
		{"no record, starting", jobWith("7", now.Add(-RecordlessGrace/2), true, nil), uid, never, true, "starting?", nil},
		{"no record, past the grace", jobWith("7", now.Add(-RecordlessGrace-time.Second), true, nil), uid, never, false, "no supervisor record", nil},
		{"home only", jobWith("7", old, false, nil), uid, never, false, "no node-local record", nil},
		// Records of a job's own PID namespace (namespace/linux, CLONE_NEWPID), read from the
		// node's (the fake says what proc.Resolve found) or from another job's.
		{"namespaced supervisor found", jobWith("7", old, true, nsSup(900)), uid, never, true, "alive", nsFake(false, false, true)},
		{"namespaced supervisor gone from its namespace", jobWith("7", old, true, nsSup(900)), uid, always, false, "gone", nsFake(false, false, false)},
		{"namespace not visible: not stale", jobWith("7", old, true, nsSup(900)), uid, never, true, "not visible from here", nsFake(false, true, false)},
		{"namespace not visible, named by a state", jobWith("7", old, true, nil, nsState(900)), uid, never, true, "not visible from here", nsFake(false, true, false)},
		{"namespaced record of another boot", jobWith("7", old, true, []layout.Supervisor{{Job: "7", BootID: otherBoot, Process: proc.Identity{PID: 7, StartTime: 1}, PIDNS: 900}}), uid, never, false, "another boot", nsFake(true, true, true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alive := tc.alive
			if alive == nil {
				alive = procAlive(context.Background())
			}
			live, why := liveness(tc.job, tc.uid, thisBoot, now, tc.running, alive)
			if live != tc.live || !strings.Contains(why, tc.why) {
				t.Errorf("liveness = %v, %q; want %v, containing %q", live, why, tc.live, tc.why)
			}
		})
	}
}

func TestNotBefore(t *testing.T) {
	id := func(start uint64) proc.Identity { return proc.Identity{PID: 10, StartTime: start} }
	withSup := func(start uint64, boot string) *jobInfo {
		return jobWith("1", time.Time{}, true, []layout.Supervisor{{BootID: boot, Process: id(start)}})
	}
	withState := func(sup uint64, procs ...uint64) *jobInfo {
		st := layout.State{Port: 8001, BootID: thisBoot, Supervisor: id(sup)}
		for _, p := range procs {
			st.Processes = append(st.Processes, id(p))
		}
		return jobWith("2", time.Time{}, true, nil, st)
	}
	for _, tc := range []struct {
		name string
		jobs []*jobInfo
		want uint64
	}{
		{"no jobs", nil, 0},
		{"supervisor record", []*jobInfo{withSup(500, thisBoot)}, 500},
		{"another boot's record gives no bound", []*jobInfo{withSup(500, otherBoot)}, 0},
		{"oldest of the state's processes", []*jobInfo{withState(700, 650, 900)}, 650},
		{"zero start times are ignored", []*jobInfo{withState(0, 0, 800)}, 800},
		{"oldest over the jobs", []*jobInfo{withSup(500, thisBoot), withState(300)}, 300},
		{"one job without a record: no filter", []*jobInfo{withSup(500, thisBoot), jobWith("3", time.Time{}, true, nil)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notBefore(tc.jobs, thisBoot); got != tc.want {
				t.Errorf("notBefore = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestConsistent(t *testing.T) {
	l := layout.Layout{Node: "n1", UID: 1000}
	good := layout.State{Node: "n1", Job: "5", UID: 1000, Port: 8001}
	for _, tc := range []struct {
		name   string
		mutate func(*layout.State)
		want   string // "" = consistent
	}{
		{"consistent", func(*layout.State) {}, ""},
		{"another node", func(s *layout.State) { s.Node = "n2" }, "node"},
		{"another job", func(s *layout.State) { s.Job = "6" }, "job"},
		{"another uid", func(s *layout.State) { s.UID = 0 }, "uid"},
		{"another port", func(s *layout.State) { s.Port = 8002 }, "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := good
			tc.mutate(&st)
			err := consistent(st, l, "5", 8001)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("consistent = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestScanBudget(t *testing.T) {
	for _, tc := range []struct {
		left        time.Duration
		hasDeadline bool
		want        time.Duration
	}{
		{10 * time.Second, true, 7 * time.Second},
		{0, true, 0},
		{time.Hour, false, DefaultRemoveTimeout},
	} {
		if got := scanBudget(tc.left, tc.hasDeadline); got != tc.want {
			t.Errorf("scanBudget(%s, %v) = %s, want %s", tc.left, tc.hasDeadline, got, tc.want)
		}
	}
	// scanTime is scanBudget of the context's deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if got := scanTime(ctx); got > 42*time.Minute || got < 41*time.Minute {
		t.Errorf("scanTime of an hour = %s, want 70%%", got)
	}
	if got := scanTime(context.Background()); got != DefaultRemoveTimeout {
		t.Errorf("scanTime without a deadline = %s", got)
	}
}

func TestEmpty(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(j *jobInfo)
		want  bool
	}{
		{"nothing", func(*jobInfo) {}, true},
		{"a session", func(j *jobInfo) { j.session(8001) }, false},
		{"a record", func(j *jobInfo) { j.sups = []layout.Supervisor{{}} }, false},
		{"a home dir", func(j *jobInfo) { j.home = "/home/u/x" }, false},
		{"entries in its dirs", func(j *jobInfo) { j.entries = 1 }, false},
		{"a dir this process may remove", func(j *jobInfo) { j.removable = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJobInfo("1")
			tc.setup(j)
			if got := j.empty(); got != tc.want {
				t.Errorf("empty = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRecordedPIDNamespace: a recorded process is taken only in the PID namespace its record
// names. This test's own process stands for the node process that has the recorded number (same
// uid, same start time): read in its own namespace it is the record's; named by a record of a
// namespace it is not in (inode 1 is no PID namespace), it is never taken for it.
func TestRecordedPIDNamespace(t *testing.T) {
	me := self(t)
	own, err := proc.SelfPIDNamespace()
	if err != nil {
		t.Skipf("no /proc/self/ns/pid: %v", err)
	}
	for _, tc := range []struct {
		name string
		ns   uint64
		want int
	}{
		{"no namespace recorded (older ffl)", 0, 1},
		{"this process's namespace", own, 1},
		{"another namespace", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jobWith("7", time.Now(), true, nil, layout.State{Job: "7", Port: 8001, BootID: thisBoot, Processes: []proc.Identity{me}, PIDNS: tc.ns})
			tally := NewTally(nil)
			got := j.recorded(context.Background(), thisBoot, me.UID, tally)
			if len(got) != tc.want || (tc.want == 1 && got[0] != me) {
				t.Errorf("recorded = %v; want %d of %v", got, tc.want, me)
			}
			if rep := tally.Report(); len(rep.Problems) != 0 {
				t.Errorf("problems: %v", rep.Problems)
			}
		})
	}
}
