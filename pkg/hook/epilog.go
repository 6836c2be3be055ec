package hook

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/account"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/metrics"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// MaxEpilogGrace caps the SIGTERM grace of the Epilog: the job is over, its processes already
// had Slurm's KillWait, and the node stays COMPLETING (no new job) while the Epilog runs.
const MaxEpilogGrace = 2 * time.Second

// EpilogPhases are the Epilog's steps in order, as Epilog runs them and as its watchdog names
// the one in progress and those after it as unfinished.
var EpilogPhases = []string{reclaim.PhaseProcesses, reclaim.PhaseXFiles, reclaim.PhaseHome, reclaim.PhaseDirs}

// EpilogParams is one Epilog run (root, after a job) or a manual `ffl-epilog --job --user`.
type EpilogParams struct {
	// Job is the job as read from the environment without asking NSS (JobFromEnv), or, for a
	// manual run, from slurmenv.Manual.
	Job slurmenv.Job
	// Resolve, if set, re-reads the job with NSS (slurmenv.ForEpilog): it is called only on the
	// slow path, so the fast path asks no directory service. Nil means Job is already resolved
	// (a manual run), and the fast path is skipped.
	Resolve func() (slurmenv.Job, error)
	// RuntimeDir, TempDir, StateDir are the configured roots (StateDir may be "~/...").
	RuntimeDir, TempDir, StateDir string
	// XDir is where X lock files live ("" = /tmp).
	XDir string
	// Grace is the SIGTERM grace (capped at MaxEpilogGrace).
	Grace time.Duration
	// Helper re-executes this program as the user for the home step.
	Helper reclaim.Helper
	// Scanner runs the marker scan (nil: in this process; the hook passes a procscan.Child).
	Scanner procscan.Scanner
	// Phase, if set, is told the name of each step as it starts (the watchdog names the step
	// that did not finish).
	Phase func(string)
	// BootID is this boot's id ("" = read it).
	BootID string
	// Log receives the problem lines (the caller logs the summary).
	Log *logrus.Entry
}

// EpilogResult is the outcome of one Epilog run, for its single summary line.
type EpilogResult struct {
	reclaim.Report
	// Job, UID and User name the job ("" / -1 when the environment was unusable).
	Job  string
	UID  int
	User string
	// Fast is true when the job used no ffl session (nothing but the Prolog's empty dir).
	Fast bool
	// Unkillable counts the job's processes still alive after SIGKILL, as counted by this
	// (root) process: the only number fail_on_unkillable looks at.
	Unkillable int
	// Duration is how long the run took.
	Duration time.Duration
}

// Summary is the run's summary line (Env.Summarize).
func (r EpilogResult) Summary() Summary {
	leftovers := 0
	if !r.Fast && r.Job != "" && (r.Sessions > 0 || r.Termed > 0 || r.Dirs > 0 || r.Left > 0) {
		leftovers = 1
	}
	return Summary{Hook: metrics.HookEpilog, Report: r.Report, Jobs: 1, JobsWithLeftovers: leftovers, Took: r.Duration,
		Fields: logrus.Fields{"job": r.Job, "user": r.User, "uid": r.UID, "fast": r.Fast}}
}

// Epilog ends and removes everything job p.Job left on this node. It never fails: every problem
// is a line in the result (and in the log). Fast path: when runtimedir.JobUsed says the job
// used no ffl session, only its (empty) node-local dirs are removed, with no user lookup and no
// home access. Slow path, each step (EpilogPhases) with its own share of ctx's deadline: (1) as
// root, end the job's processes (reclaim.EndJob, the scan in p.Scanner); (2) as root, remove
// the X files of the recorded displays whose server is proven gone; (3) in a helper running as
// the user, killed at its deadline, remove the home job subtree (reclaim.CleanHome); (4) as
// root, remove the node-local job dirs (reclaim.RemoveNodeLocal). p.Phase, if set, is told
// each step as it starts.
func Epilog(ctx context.Context, p EpilogParams) EpilogResult {
	t0 := time.Now()
	res := EpilogResult{Job: p.Job.ID, UID: p.Job.UID, User: p.Job.User}
	t := reclaim.NewTally(p.Log)
	if p.Phase == nil {
		p.Phase = func(string) {}
	}
	l := layout.Layout{RuntimeDir: p.RuntimeDir, TempDir: p.TempDir, UID: p.Job.UID, Node: p.Job.Node, JobKey: p.Job.Key()}
	opts := reclaim.Options{BootID: p.BootID, Grace: min(max(p.Grace, 0), MaxEpilogGrace), Log: p.Log, XDir: p.XDir, Scanner: p.Scanner}
	if epilogPrepare(ctx, &p, &res, l, &opts, t) {
		epilogSteps(ctx, p, &res, l, opts, t)
	}
	res.Report.Add(t.Report())
	if line := res.Report.ForeignLine(); line != "" {
		t.Log().Warn(line)
	}
	res.Duration = time.Since(t0)
	return res
}

// epilogPrepare checks the job and takes the fast path when the job used no ffl session; it
// returns whether the steps of the slow path are to run (with p.Job resolved, opts.BootID set).
func epilogPrepare(ctx context.Context, p *EpilogParams, res *EpilogResult, l layout.Layout, opts *reclaim.Options, t *reclaim.Tally) bool {
	if err := l.ValidateNodeLocal(); err != nil {
		t.Problem("job %s: reclaim: %v: nothing done", p.Job.ID, err)
		return false
	}
	if p.Resolve != nil {
		if used, _ := runtimedir.JobUsed(l); !used {
			res.Fast = true
			p.Phase(reclaim.PhaseDirs)
			res.Report.Add(reclaim.RemoveNodeLocal(ctx, l, *opts))
			return false
		}
		job, err := resolveBounded(ctx, p.Resolve)
		if err != nil {
			t.Problem("job %s: environment: %v: nothing done", p.Job.ID, err)
			return false
		}
		if job.UID != p.Job.UID || job.Key() != p.Job.Key() || job.Node != p.Job.Node {
			t.Problem("job %s: environment changed between reads: nothing done", p.Job.ID)
			return false
		}
		p.Job, res.User = job, job.User
	}
	if p.Job.UID == 0 {
		t.Problem("job %s of uid 0: ffl never cleans up after root; nothing done", p.Job.ID)
		return false
	}
	id, err := reclaim.BootID(opts.BootID)
	if err != nil {
		t.Problem("%v: nothing done", err)
		return false
	}
	opts.BootID = id
	return true
}

// epilogSteps runs the slow path's steps (EpilogPhases), each within its share.
func epilogSteps(ctx context.Context, p EpilogParams, res *EpilogResult, l layout.Layout, opts reclaim.Options, t *reclaim.Tally) {
	// (1) Processes, as root, within their share.
	p.Phase(reclaim.PhaseProcesses)
	pctx, cancel := withShare(ctx, processShare)
	rep, displays := reclaim.EndJob(pctx, l, opts)
	cancel()
	res.Report.Add(rep)
	res.Unkillable = rep.Left

	// (2) X files of the recorded displays, as root (root's 1777 directories; the user's files
	// only, with proof that their server is gone).
	p.Phase(reclaim.PhaseXFiles)
	reclaim.RemoveXFiles(p.XDir, displays, p.Job.UID, false, t)

	// (3) The home, as the user, in a helper killed at its deadline; leave time for (4).
	p.Phase(reclaim.PhaseHome)
	homeReport, err := runHomeHelper(ctx, p, l, opts)
	if err != nil {
		t.Problem("job %s: home: %v", p.Job.ID, err)
		if timedOut(err) {
			t.Unfinished(reclaim.PhaseHome)
		}
	}
	homeReport.Sessions = 0 // counted from the node-local records in (1)
	homeReport.Left = 0     // the helper ends no process in this step; never trust it for that
	res.Report.Add(homeReport)

	// (4) Node-local dirs, as root, with what is left.
	p.Phase(reclaim.PhaseDirs)
	res.Report.Add(reclaim.RemoveNodeLocal(ctx, l, opts))
}

// resolveBounded runs resolve (NSS lookups: an unreachable LDAP server may hang them) within
// resolveShare of ctx's time, abandoning it after that.
func resolveBounded(ctx context.Context, resolve func() (slurmenv.Job, error)) (slurmenv.Job, error) {
	rctx, cancel := withShare(ctx, resolveShare)
	defer cancel()
	type result struct {
		job slurmenv.Job
		err error
	}
	ch := make(chan result, 1)
	go func() {
		job, err := resolve()
		ch <- result{job, err}
	}()
	select {
	case r := <-ch:
		return r.job, r.err
	case <-rctx.Done():
		return slurmenv.Job{}, fmt.Errorf("user lookup (NSS) did not answer: %w", context.Cause(rctx))
	}
}

// runHomeHelper resolves the user's home and runs reclaim.CleanHome in the helper.
func runHomeHelper(ctx context.Context, p EpilogParams, l layout.Layout, opts reclaim.Options) (reclaim.Report, error) {
	hctx, cancel := context.WithDeadline(ctx, helperDeadline(ctx))
	defer cancel()
	acct, err := account.Lookup(hctx, p.Job.UID)
	if err != nil {
		return reclaim.Report{}, fmt.Errorf("%w: home not cleaned", err)
	}
	stateDir, err := config.ExpandStateDir(p.StateDir, acct.Home)
	if err != nil {
		return reclaim.Report{}, fmt.Errorf("user %s: %w: home not cleaned", acct.Name, err)
	}
	req := reclaim.HelperRequest{
		Op: reclaim.OpHome, Home: acct.Home, StateDir: stateDir, RuntimeDir: l.RuntimeDir, TempDir: l.TempDir,
		XDir: p.XDir, Node: l.Node, Job: l.JobKey, BootID: opts.BootID,
	}
	rep, err := reclaim.RunHelper(hctx, p.Helper, acct, p.Job.GID, req)
	log := reclaim.NewTally(p.Log).Log()
	for i, line := range rep.Problems {
		rep.Problems[i] = "helper: " + line
		log.Warn(rep.Problems[i])
	}
	return rep, err
}
