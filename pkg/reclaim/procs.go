package reclaim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// refusedComms are processes reclaim never signals whatever their uid and environment say:
// Slurm's own daemons (they run as root, so proc.Signal refuses them anyway; this is the second
// lock on that door, for a site that runs them otherwise).
var refusedComms = map[string]bool{"slurmstepd": true, "slurmd": true, "slurmctld": true, "slurmdbd": true}

// endRounds bounds the scan-and-end rounds: a session can fork while it is being ended (a
// content process in the TERM phase), so the marker scan is repeated until it finds nothing.
const endRounds = 4

// endProcesses ends the processes of jobs (all of user l.UID on node l.Node) together: one
// SIGTERM to every process, one grace period, one SIGKILL for the survivors, so that many
// sessions cost one grace, not one each.
//
// Which processes: those of uid l.UID whose environment carries FFL_SESSION=<key>/<node>/
// (proc.FindByMarker). The identities recorded in state files are cross-checked against that
// scan and never signalled on their own: a record is a file the user can write, and a process
// that does not carry the job's marker is not the job's session, whatever a record says.
func endProcesses(ctx context.Context, l layout.Layout, jobs []*jobInfo, bootID string, opts Options, t *tally) {
	if len(jobs) == 0 {
		return
	}
	if l.UID == 0 {
		t.problem("jobs of uid 0: processes are never signalled")
		return
	}
	killWait := opts.KillWait
	if killWait <= 0 {
		killWait = DefaultKillWait
	}
	prefixes := make([]string, len(jobs))
	for i, j := range jobs {
		prefixes[i] = j.key + "/" + l.Node + "/"
	}
	// One /proc scan per round for all jobs: a sweep of thousands of stale jobs must not cost a
	// scan each.
	scan := func() map[proc.Identity]string {
		found := map[proc.Identity]string{}
		ids, err := proc.FindByMarkers(l.UID, layout.MarkerVar, prefixes)
		if err != nil {
			t.problem("marker scan for %s=%s: %v", layout.MarkerVar, jobKeys(jobs), err)
		}
		for id, i := range ids {
			found[id] = jobs[i].key
		}
		return found
	}
	unkillable := map[proc.Identity]bool{}
	for round := 0; round < endRounds; round++ {
		found := scan()
		if round == 0 {
			for _, j := range jobs {
				crossCheck(j, bootID, l.UID, l.Node, found, t)
			}
		}
		var ids []proc.Identity
		for id := range found {
			if unkillable[id] || !allowedComm(id, t) {
				continue
			}
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			break
		}
		if opts.DryRun {
			t.removed("would end %d processes of jobs %s", len(ids), jobKeys(jobs))
			break
		}
		grace := opts.Grace
		if round > 0 {
			grace = 0
		}
		res := proc.Ender{Grace: grace, Poll: 20 * time.Millisecond, KillWait: killWait}.End(ctx, ids)
		t.update(func(r *Report) { r.Termed += res.Termed; r.Killed += res.Killed })
		if res.Errs != nil {
			t.problem("ending processes of jobs %s: %v", jobKeys(jobs), res.Errs)
			refused := countRefused(res.Errs)
			t.update(func(r *Report) { r.Refused += refused })
		}
		for _, id := range res.Left {
			unkillable[id] = true
			t.problem("%s of job %s survived SIGKILL for %s (uninterruptible sleep?)", id, found[id], killWait)
		}
		if ctx.Err() != nil {
			break
		}
	}
	left := 0
	for id := range unkillable {
		if id.Alive() {
			left++
		}
	}
	t.update(func(r *Report) { r.Left += left })
}

// crossCheck logs every recorded identity of j that is alive but not among the processes that
// carry the job's marker: a forged or stale record (PID 1, root's or another user's process, a
// reused PID, a process of the user outside the session). Such records are refused.
func crossCheck(j *jobInfo, bootID string, uid int, node string, marked map[proc.Identity]string, t *tally) {
	seen := map[proc.Identity]bool{}
	for _, rec := range j.recorded(bootID, uid, t) {
		if seen[rec] {
			continue
		}
		seen[rec] = true
		if _, ok := marked[rec]; ok {
			continue
		}
		if rec.PID <= 1 {
			t.problem("job %s: state file names %s: refused", j.key, rec)
			t.update(func(r *Report) { r.Refused++ })
			continue
		}
		now, err := proc.Lookup(rec.PID)
		switch {
		case errors.Is(err, proc.ErrGone):
			continue // exited: nothing to do
		case err != nil:
			t.problem("job %s: recorded %s: %v", j.key, rec, err)
		case now.StartTime != rec.StartTime:
			t.problem("job %s: recorded %s: the pid now belongs to a process started at %d: not signalled", j.key, rec, now.StartTime)
		case now.UID != uid:
			t.problem("job %s: recorded %s runs as uid %d, not the job's uid %d: refused", j.key, rec, now.UID, uid)
			t.update(func(r *Report) { r.Refused++ })
		default:
			t.problem("job %s: recorded %s does not carry %s=%s: not the session's, refused", j.key, rec, layout.MarkerVar, j.key+"/"+node+"/")
			t.update(func(r *Report) { r.Refused++ })
		}
	}
}

// allowedComm refuses Slurm's daemons (see refusedComms), logging the refusal.
func allowedComm(id proc.Identity, t *tally) bool {
	st, err := proc.ReadStat(id.PID)
	if err != nil || st.StartTime != id.StartTime {
		return true // gone or reused: proc.Signal will see that and do nothing
	}
	if refusedComms[st.Comm] {
		t.problem("%s is %s: refused", id, st.Comm)
		t.update(func(r *Report) { r.Refused++ })
		return false
	}
	return true
}

// countRefused counts the ErrRefused inside a (multi)error.
func countRefused(err error) int {
	type multi interface{ WrappedErrors() []error }
	var m multi
	if errors.As(err, &m) {
		n := 0
		for _, e := range m.WrappedErrors() {
			if errors.Is(e, proc.ErrRefused) {
				n++
			}
		}
		return n
	}
	if errors.Is(err, proc.ErrRefused) {
		return 1
	}
	return 0
}

func jobKeys(jobs []*jobInfo) string {
	s := ""
	for i, j := range jobs {
		if i > 0 {
			s += ","
		}
		s += j.key
	}
	return fmt.Sprintf("[%s]", s)
}
