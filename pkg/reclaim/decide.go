package reclaim

// The pure decisions of the cleanup: what makes a job stale or live, which records describe
// the session whose directory holds them, which processes a scan may skip, and how much of a
// step's time the scan takes. They read nothing but their arguments (and, for a recorded PID,
// whether it is alive), so decide_test.go tests them without root and without test users.

import (
	"context"
	"fmt"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// aliveFunc reports whether a recorded identity, whose PID belongs to PID namespace ns (0: the
// reader's own), is alive; hidden says that this process cannot see that namespace at all, so
// that nothing can be said (see proc.NSHidden).
type aliveFunc func(id proc.Identity, ns uint64) (alive, hidden bool)

// procAlive is aliveFunc on /proc (proc.AliveIn): a record of another PID namespace (Slurm's
// namespace/linux with CLONE_NEWPID) is checked only through that namespace, never by its
// number alone, which here may name any other process.
func procAlive(ctx context.Context) aliveFunc {
	return func(id proc.Identity, ns uint64) (bool, bool) { return proc.AliveIn(ctx, id, ns) }
}

// liveness decides whether job j's supervisor is alive, and says why in words. running says
// whether a Slurm job still has a step on this node (procscan.RunningJobs.Has). A supervisor
// recorded in a PID namespace this process cannot see (another job's, seen from a job's own
// namespace) counts as alive: it is its job's Epilog's to clean, never a sweep's from here.
func liveness(j *jobInfo, uid int, bootID string, now time.Time, running func(key string) bool, alive aliveFunc) (bool, string) {
	gone := ""
	for _, sup := range j.sups {
		if sup.BootID != bootID {
			if gone == "" {
				gone = "supervisor record from another boot"
			}
			continue
		}
		id := sup.Process
		id.UID = uid // a record naming another user's process names no supervisor of ours
		if id.PID <= 1 {
			gone = fmt.Sprintf("supervisor pid %d gone", id.PID)
			continue
		}
		ok, hidden := alive(id, sup.PIDNS)
		switch {
		case ok:
			return true, fmt.Sprintf("supervisor pid %d alive", id.PID)
		case hidden:
			return true, fmt.Sprintf("supervisor pid %d of PID namespace %d, which is not visible from here: left to its job's Epilog", id.PID, sup.PIDNS)
		}
		gone = fmt.Sprintf("supervisor pid %d gone", id.PID)
	}
	for _, st := range j.states(bootID) {
		id := st.Supervisor
		id.UID = uid
		if id.PID <= 1 {
			continue
		}
		ok, hidden := alive(id, st.PIDNS)
		switch {
		case ok:
			return true, fmt.Sprintf("supervisor pid %d alive (named by the state of session %d)", id.PID, st.Port)
		case hidden:
			return true, fmt.Sprintf("supervisor pid %d of PID namespace %d (named by the state of session %d), which is not visible from here: left to its job's Epilog", id.PID, st.PIDNS, st.Port)
		}
	}
	if gone != "" {
		return false, gone
	}
	if running(j.key) {
		return true, "no supervisor record, but the Slurm job still runs on this node"
	}
	if age := now.Sub(j.activity); age < RecordlessGrace {
		return true, fmt.Sprintf("no supervisor record yet, changed %s ago (starting?)", age.Round(time.Second))
	}
	if len(j.runtime) == 0 {
		return false, "no node-local record (home only: rebooted, or its node-local dir was removed)"
	}
	return false, "no supervisor record"
}

// consistent checks that a state file describes the session whose directory holds it.
func consistent(st layout.State, l layout.Layout, key string, port int) error {
	switch {
	case st.Node != l.Node:
		return fmt.Errorf("node %q, this is %q", st.Node, l.Node)
	case st.Job != key:
		return fmt.Errorf("job %q, its directory says %q", st.Job, key)
	case st.UID != l.UID:
		return fmt.Errorf("uid %d, the directory's owner is %d", st.UID, l.UID)
	case st.Port != port:
		return fmt.Errorf("port %d, its directory says %d", st.Port, port)
	}
	return nil
}

// scanTime is how long a marker scan may take of what is left of ctx.
func scanTime(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	return scanBudget(time.Until(dl), ok)
}

// scanBudget is scanTime's rule: scanShare of the time left, DefaultRemoveTimeout without a
// deadline.
func scanBudget(left time.Duration, hasDeadline bool) time.Duration {
	if !hasDeadline {
		return DefaultRemoveTimeout
	}
	return time.Duration(float64(left) * scanShare)
}

// notBefore is the oldest start time the jobs' records of this boot give for their launchers
// and sessions: no process of those sessions can have started before it. 0 (no filter) when a
// job has no such record.
func notBefore(jobs []*jobInfo, bootID string) uint64 {
	var oldest uint64
	for _, j := range jobs {
		var own uint64
		consider := func(start uint64) {
			if start > 0 && (own == 0 || start < own) {
				own = start
			}
		}
		for _, sup := range j.sups {
			if sup.BootID == bootID {
				consider(sup.Process.StartTime)
			}
		}
		for _, st := range j.states(bootID) {
			consider(st.Supervisor.StartTime)
			for _, id := range st.Processes {
				consider(id.StartTime)
			}
		}
		if own == 0 {
			return 0
		}
		if oldest == 0 || own < oldest {
			oldest = own
		}
	}
	return oldest
}

// scanShare is the part of the process step's time the first marker scan may take: the rest is
// for the signals and the waits after them.
const scanShare = 0.7

// empty reports that the job has nothing this process could remove: no session, no record, no
// home dir, and only empty node-local dirs it may not remove (a user in the root-owned runtime
// root). Reporting such a job as removed would repeat at every run until root removes the dir.
func (j *jobInfo) empty() bool {
	return len(j.sessions) == 0 && len(j.sups) == 0 && j.home == "" && j.entries == 0 && !j.removable
}
