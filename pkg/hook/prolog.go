package hook

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/metrics"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

// PrologPhases are the Prolog's steps that can be cut short: the watchdog names the sweep.
var PrologPhases = []string{reclaim.PhaseSweep}

// PrologParams is one Prolog run (root, before a job starts on this node).
type PrologParams struct {
	// Job is the job as read from the environment without NSS (uid, gid, key, node).
	Job slurmenv.Job
	// Resolve re-reads the job with NSS; called only when there is something to sweep.
	Resolve func() (slurmenv.Job, error)
	// RuntimeDir, TempDir, StateDir are the configured roots; XDir is where .X11-unix lives
	// ("" = /tmp).
	RuntimeDir, TempDir, StateDir, XDir string
	// Grace is the SIGTERM grace for stale sessions' processes (capped at MaxEpilogGrace).
	Grace time.Duration
	// Helper re-executes this program as the user for the sweep.
	Helper reclaim.Helper
	// Scanner runs the root's process scans (nil: in this process).
	Scanner procscan.Scanner
	// BootID is this boot's id ("" = read it).
	BootID string
	// SeenDir is where the Prolog records who runs jobs on this node, in which boot
	// (runtimedir.RecordSeen; "" = off).
	SeenDir string
	Log     *logrus.Entry
}

// PrologResult is the outcome of one Prolog run.
type PrologResult struct {
	reclaim.Report
	Job  string
	UID  int
	User string
	// RuntimeJobDir is the job's runtime dir when it was made (or already right), else "".
	RuntimeJobDir string
	// Swept is true when the user's stale sessions were looked at.
	Swept    bool
	Duration time.Duration
}

// Summary is the run's summary line (Env.Summarize).
func (r PrologResult) Summary() Summary {
	return Summary{Hook: metrics.HookProlog, Report: r.Report, Jobs: 1, Took: r.Duration,
		Fields: logrus.Fields{"job": r.Job, "user": r.User, "uid": r.UID, "runtime_dir": r.RuntimeJobDir, "swept": r.Swept}}
}

// Prolog prepares the node for a job and never fails (every problem is a line in the result):
// it creates <runtime> (root, 0755) and <runtime>/job-<key> (the job's uid and gid, 0700), makes
// sure <xdir>/.X11-unix exists as root's 1777 (an Xvfb run by a user would otherwise create it
// as that user, locking everyone else out), and, when the user has node-local ffl state of other
// jobs here (or runs a first job here since a reboot), sweeps the user's stale sessions
// (reclaim.Stale in a helper running as the user, the new job excluded), then removes the
// empty runtime dirs of the dead jobs it found.
func Prolog(ctx context.Context, p PrologParams) PrologResult {
	t0 := time.Now()
	res := PrologResult{Job: p.Job.ID, UID: p.Job.UID, User: p.Job.User}
	t := reclaim.NewTally(p.Log)
	if prologPrepare(&p, &res, t) {
		prologSweep(ctx, p, &res, t)
	}
	res.Report.Add(t.Report())
	res.Duration = time.Since(t0)
	return res
}

// prologPrepare makes the job's dirs; it returns whether the user's stale sessions are to be
// swept.
func prologPrepare(p *PrologParams, res *PrologResult, t *reclaim.Tally) bool {
	l := layout.Layout{RuntimeDir: p.RuntimeDir, TempDir: p.TempDir, UID: p.Job.UID, Node: p.Job.Node, JobKey: p.Job.Key()}
	if err := l.ValidateNodeLocal(); err != nil {
		t.Problem("job %s: reclaim: %v: nothing done", p.Job.ID, err)
		return false
	}
	if err := xdisplay.EnsureSocketDir(p.XDir); err != nil {
		t.Problem("%v", err)
	}
	if p.Job.UID == 0 {
		t.Problem("job %s of uid 0: no runtime dir made for root", p.Job.ID)
		return false
	}
	dir, err := runtimedir.PrepareForJob(p.RuntimeDir, p.Job.UID, p.Job.GID, p.Job.Key())
	if err != nil {
		t.Problem("%v", err)
	} else {
		res.RuntimeJobDir = dir
	}
	// The user's first job here since a reboot: /run was wiped, so only the seen record says
	// that their home may hold stale trees of this node.
	rebooted := false
	if p.SeenDir != "" {
		if id, err := reclaim.BootID(p.BootID); err != nil {
			t.Problem("%v", err)
		} else if rebooted, err = runtimedir.RecordSeen(p.SeenDir, l.Node, p.Job.UID, id); err != nil {
			t.Problem("%v", err)
		}
	}
	return rebooted || runtimedir.HasOtherJobs(l)
}

// prologSweep sweeps the user's stale sessions, the new job excluded.
func prologSweep(ctx context.Context, p PrologParams, res *PrologResult, t *reclaim.Tally) {
	res.Swept = true
	job := p.Job
	if p.Resolve != nil {
		var err error
		if job, err = resolveBounded(ctx, p.Resolve); err != nil {
			t.Problem("job %s: environment: %v: stale sessions not swept", p.Job.ID, err)
			return
		}
		if job.UID != p.Job.UID {
			t.Problem("job %s: environment changed between reads: stale sessions not swept", p.Job.ID)
			return
		}
		res.User = job.User
	}
	res.Report.Add(sweepOneUser(ctx, sweepUser{
		uid: job.UID, gid: job.GID, node: job.Node, exclude: job.Key(),
		runtimeDir: p.RuntimeDir, tempDir: p.TempDir, stateDir: p.StateDir, xDir: p.XDir,
		grace: min(max(p.Grace, 0), MaxEpilogGrace), op: reclaim.OpStale, helper: p.Helper, scanner: p.Scanner, bootID: p.BootID,
	}, t))
}
