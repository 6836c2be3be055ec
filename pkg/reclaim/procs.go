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

// endProcesses ends the processes of jobs (all of user l.UID on node l.Node) together with
// proc.MarkedEnder: one SIGTERM to every process, one grace period, one SIGKILL for the
// survivors, so that many sessions cost one grace, not one each.
//
// Which processes: those of uid l.UID whose environment carries FFL_SESSION=<key>/<node>/,
// found by opts' Scanner (for the root hooks, a child process: a read stuck in the kernel costs
// the scan's deadline, not the hook). The scan reads the recorded identities first, and skips
// unread the processes that started before the oldest record of the jobs' launchers. The
// identities recorded in state files are cross-checked against the scan and never signalled
// on their own: a record is a file the user can write, and a process that does not carry the
// job's marker is not the job's session, whatever a record says.
func endProcesses(ctx context.Context, l layout.Layout, jobs []*jobInfo, bootID string, opts Options, t *Tally) {
	if len(jobs) == 0 {
		return
	}
	if l.UID == 0 {
		t.Problem("jobs of uid 0: processes are never signalled")
		return
	}
	killWait := opts.KillWait
	if killWait <= 0 {
		killWait = DefaultKillWait
	}
	q := proc.MarkerQuery{UID: l.UID, Name: layout.MarkerVar, NotBefore: notBefore(jobs, bootID)}
	for _, j := range jobs {
		q.Prefixes = append(q.Prefixes, j.key+"/"+l.Node+"/")
		for _, id := range j.recorded(ctx, bootID, l.UID, NewTally(nil)) {
			q.First = append(q.First, id)
		}
	}
	scanner := opts.scanner()
	owner := map[proc.Identity]string{} // every process found, with its job
	round := 0
	cutShort := false
	scanDeadline := time.Now().Add(scanTime(ctx))
	find := func(ctx context.Context) ([]proc.Identity, error) {
		if cutShort {
			// A scan cut short (a read that blocks, a huge process table) would be cut short
			// again: what it found was ended, the rounds end here.
			return nil, nil
		}
		sctx, cancel := context.WithDeadline(ctx, scanDeadline)
		defer cancel()
		var ids []proc.Identity
		found := map[proc.Identity]string{}
		st, err := scanner.Marked(sctx, q, func(id proc.Identity, i int) {
			ids = append(ids, id)
			found[id] = jobs[i].key
			owner[id] = jobs[i].key
		})
		t.log.WithField("round", round).Debugf("marker scan: %d processes, %d environments read, %d skipped, %d found", st.Processes, st.Environs, st.Skipped, len(ids))
		if round == 0 {
			for _, j := range jobs {
				crossCheck(ctx, j, bootID, l.UID, l.Node, found, t)
			}
			// Later rounds look for what forked meanwhile: a share of what is left.
			scanDeadline = time.Now().Add(scanTime(ctx))
		}
		round++
		if opts.DryRun && len(ids) > 0 {
			t.removed("would end %d processes of jobs %s", len(ids), jobKeys(jobs))
			return nil, err
		}
		if sctx.Err() != nil {
			cutShort = true
		}
		if err != nil {
			return ids, fmt.Errorf("marker scan for %s=%s: %w", layout.MarkerVar, jobKeys(jobs), err)
		}
		return ids, nil
	}
	res := proc.MarkedEnder{Find: find, Refuse: refuseComm, Grace: opts.Grace, Poll: 20 * time.Millisecond, KillWait: killWait}.End(ctx)
	t.update(func(r *Report) {
		r.Termed += res.Termed
		r.Killed += res.Killed
		r.Refused += res.Refused
		r.Left += len(res.Left)
	})
	if res.Errs != nil {
		t.Problem("ending processes of jobs %s: %v", jobKeys(jobs), res.Errs)
	}
	if ctx.Err() != nil || cutShort {
		t.Unfinished(PhaseProcesses)
	}
	for _, id := range res.Left {
		t.Problem("%s of job %s survived SIGKILL for %s (uninterruptible sleep?)", id, owner[id], killWait)
	}
}

// crossCheck logs every recorded identity of j that is alive but not among the processes that
// carry the job's marker: a forged or stale record (PID 1, root's or another user's process, a
// reused PID, a process of the user outside the session). Such records are refused.
func crossCheck(ctx context.Context, j *jobInfo, bootID string, uid int, node string, marked map[proc.Identity]string, t *Tally) {
	seen := map[proc.Identity]bool{}
	for _, rec := range j.recorded(ctx, bootID, uid, t) {
		if seen[rec] {
			continue
		}
		seen[rec] = true
		if _, ok := marked[rec]; ok {
			continue
		}
		if rec.PID <= 1 {
			t.Problem("job %s: state file names %s: refused", j.key, rec)
			t.update(func(r *Report) { r.Refused++ })
			continue
		}
		now, err := proc.Lookup(rec.PID)
		switch {
		case errors.Is(err, proc.ErrGone):
			continue // exited: nothing to do
		case err != nil:
			t.Problem("job %s: recorded %s: %v", j.key, rec, err)
		case now.StartTime != rec.StartTime:
			t.Problem("job %s: recorded %s: the pid now belongs to a process started at %d: not signalled", j.key, rec, now.StartTime)
		case now.UID != uid:
			t.Problem("job %s: recorded %s runs as uid %d, not the job's uid %d: refused", j.key, rec, now.UID, uid)
			t.update(func(r *Report) { r.Refused++ })
		default:
			t.Problem("job %s: recorded %s does not carry %s=%s: not the session's, refused", j.key, rec, layout.MarkerVar, j.key+"/"+node+"/")
			t.update(func(r *Report) { r.Refused++ })
		}
	}
}

// refuseComm refuses Slurm's daemons (see refusedComms).
func refuseComm(id proc.Identity) error {
	st, err := proc.ReadStat(id.PID)
	if err != nil || st.StartTime != id.StartTime {
		return nil // gone or reused: proc.Signal will see that and do nothing
	}
	if refusedComms[st.Comm] {
		return fmt.Errorf("%s is %s: %w", id, st.Comm, proc.ErrRefused)
	}
	return nil
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
