package reclaim

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/account"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/reexec"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// MaxEpilogGrace caps the SIGTERM grace of the Epilog: the job is over, its processes already
// had Slurm's KillWait, and the node stays COMPLETING (no new job) while the Epilog runs.
const MaxEpilogGrace = 2 * time.Second

// EpilogParams is one Epilog run (root, after a job) or a manual `ffl-epilog --job --user`.
type EpilogParams struct {
	// Job is the job as read from the environment without asking NSS (slurmenv.ForEpilog with
	// lookups that fail), or, for a manual run, from slurmenv.Manual.
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
	Helper Helper
	// Scanner runs the marker scan (nil: in this process; the hook passes a procscan.Child).
	Scanner procscan.Scanner
	// Phase, if set, is told the name of each step as it starts (the hook's watchdog names the
	// step that did not finish).
	Phase func(string)
	// BootID is this boot's id ("" = read it).
	BootID string
	// Log receives the problem lines (the caller logs the summary).
	Log *logrus.Entry
}

// EpilogResult is the outcome of one Epilog run, for its single summary line.
type EpilogResult struct {
	Report
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

// Shares of an Epilog run's time. The steps run in order, each with its own deadline, so a step
// that a user makes slow (a scan over thousands of processes, a hung home) cannot eat the time
// of the steps after it: the node-local directories are always removed, last, with the time
// reserved for them.
const (
	// processShare is the part of the time left the processes step may take (its marker scan
	// gets most of it, see scanShare).
	processShare = 0.35
	// dirsReserve is the part of the time left at the home step kept for the node-local
	// directories (at least minDirsReserve).
	dirsReserve    = 0.25
	minDirsReserve = 300 * time.Millisecond
	// resolveShare bounds the NSS re-read of the environment on the slow path.
	resolveShare = 0.2
)

// Epilog ends and removes everything job p.Job left on this node. It never fails: every problem
// is a line in the result (and in the log). Fast path: when NodeLocalUsage says the job used no
// ffl session, only its (empty) node-local dirs are removed, with no user lookup and no home
// access. Slow path, each step with its own share of ctx's deadline: (1) as root, end the job's
// processes (EndJob, the scan in opts' Scanner); (2) as root, remove the X files of the
// recorded displays whose server is proven gone; (3) in a helper running as the user, killed at
// its deadline, remove the home job subtree (CleanHome); (4) as root, remove the node-local
// job dirs (RemoveNodeLocal). p.Phase, if set, is told each step as it starts.
func Epilog(ctx context.Context, p EpilogParams) EpilogResult {
	t0 := time.Now()
	res := EpilogResult{Job: p.Job.ID, UID: p.Job.UID, User: p.Job.User}
	t := newTally(p.Log)
	l := layout.Layout{RuntimeDir: p.RuntimeDir, TempDir: p.TempDir, UID: p.Job.UID, Node: p.Job.Node, JobKey: p.Job.Key()}
	opts := Options{BootID: p.BootID, Grace: min(max(p.Grace, 0), MaxEpilogGrace), Log: p.Log, XDir: p.XDir, Scanner: p.Scanner}
	phase := func(name string) {
		if p.Phase != nil {
			p.Phase(name)
		}
	}
	finish := func() EpilogResult {
		res.Report.Add(t.report())
		if line := res.Report.ForeignLine(); line != "" {
			t.log.Warn(line)
		}
		res.Duration = time.Since(t0)
		return res
	}
	if err := nodeLocalValid(l); err != nil {
		t.problem("job %s: %v: nothing done", p.Job.ID, err)
		return finish()
	}
	if p.Resolve != nil {
		if used, _ := NodeLocalUsage(l); !used {
			res.Fast = true
			phase(PhaseDirs)
			res.Report.Add(RemoveNodeLocal(ctx, l, opts))
			return finish()
		}
		job, err := resolveBounded(ctx, p.Resolve)
		if err != nil {
			t.problem("job %s: environment: %v: nothing done", p.Job.ID, err)
			return finish()
		}
		if job.UID != p.Job.UID || job.Key() != p.Job.Key() || job.Node != p.Job.Node {
			t.problem("job %s: environment changed between reads: nothing done", p.Job.ID)
			return finish()
		}
		p.Job, res.User = job, job.User
	}
	if p.Job.UID == 0 {
		t.problem("job %s of uid 0: ffl never cleans up after root; nothing done", p.Job.ID)
		return finish()
	}
	if opts.BootID == "" {
		id, err := bootIDOf(opts)
		if err != nil {
			t.problem("%v: nothing done", err)
			return finish()
		}
		opts.BootID = id
	}

	// (1) Processes, as root, within their share.
	phase(PhaseProcesses)
	pctx, cancel := withShare(ctx, processShare)
	rep, displays := EndJob(pctx, l, opts)
	cancel()
	res.Report.Add(rep)
	res.Unkillable = rep.Left

	// (2) X files of the recorded displays, as root (root's 1777 directories; the user's files
	// only, with proof that their server is gone).
	phase(PhaseXFiles)
	removeXFiles(p.XDir, displays, p.Job.UID, false, t)

	// (3) The home, as the user, in a helper killed at its deadline; leave time for (4).
	phase(PhaseHome)
	homeReport, err := runHomeHelper(ctx, p, l, opts)
	if err != nil {
		t.problem("job %s: home: %v", p.Job.ID, err)
		if errors.Is(err, ErrHelperTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.unfinished(PhaseHome)
		}
	}
	homeReport.Sessions = 0 // counted from the node-local records in (1)
	homeReport.Left = 0     // the helper ends no process in this step; never trust it for that
	res.Report.Add(homeReport)

	// (4) Node-local dirs, as root, with what is left.
	phase(PhaseDirs)
	res.Report.Add(RemoveNodeLocal(ctx, l, opts))
	return finish()
}

// withShare returns ctx bounded to share of the time it has left (unchanged without a deadline).
func withShare(ctx context.Context, share float64) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(float64(time.Until(dl))*share))
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

// runHomeHelper resolves the user's home and runs CleanHome in the helper.
func runHomeHelper(ctx context.Context, p EpilogParams, l layout.Layout, opts Options) (Report, error) {
	hctx, cancel := context.WithDeadline(ctx, helperDeadline(ctx))
	defer cancel()
	acct, err := account.Lookup(hctx, p.Job.UID)
	if err != nil {
		return Report{}, fmt.Errorf("%w: home not cleaned", err)
	}
	stateDir, err := config.ExpandStateDir(p.StateDir, acct.Home)
	if err != nil {
		return Report{}, fmt.Errorf("user %s: %w: home not cleaned", acct.Name, err)
	}
	req := HelperRequest{
		Op: OpHome, Home: acct.Home, StateDir: stateDir, RuntimeDir: l.RuntimeDir, TempDir: l.TempDir,
		XDir: p.XDir, Node: l.Node, Job: l.JobKey, BootID: opts.BootID,
	}
	rep, err := RunHelper(hctx, p.Helper, acct, p.Job.GID, req)
	for i, line := range rep.Problems {
		rep.Problems[i] = "helper: " + line
	}
	for _, line := range rep.Problems {
		p.logger().Warn(line)
	}
	return rep, err
}

// helperDeadline keeps dirsReserve of the remaining time (at least minDirsReserve plus the
// helper's kill wait, at most half) after the helper for the root's last step.
func helperDeadline(ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(DefaultHelperTimeout)
	}
	left := time.Until(dl)
	reserve := min(max(time.Duration(float64(left)*dirsReserve), minDirsReserve+reexec.KillWait), left/2)
	return dl.Add(-reserve)
}

func (p EpilogParams) logger() *logrus.Entry {
	return newTally(p.Log).log
}
