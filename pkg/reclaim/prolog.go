package reclaim

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

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
	Helper Helper
	// Scanner runs the root's process scans (nil: in this process).
	Scanner procscan.Scanner
	// BootID is this boot's id ("" = read it).
	BootID string
	// SeenDir is where the Prolog records who runs jobs on this node, in which boot (seen.go;
	// "" = off).
	SeenDir string
	Log     *logrus.Entry
}

// PrologResult is the outcome of one Prolog run.
type PrologResult struct {
	Report
	Job  string
	UID  int
	User string
	// RuntimeJobDir is the job's runtime dir when it was made (or already right), else "".
	RuntimeJobDir string
	// Swept is true when the user's stale sessions were looked at.
	Swept    bool
	Duration time.Duration
}

// Prolog prepares the node for a job and never fails (every problem is a line in the result):
// it creates <runtime> (root, 0755) and <runtime>/job-<key> (the job's uid and gid, 0700), makes
// sure <xdir>/.X11-unix exists as root's 1777 (an Xvfb run by a user would otherwise create it
// as that user, locking everyone else out), and, when the user has node-local ffl state of other
// jobs here, sweeps the user's stale sessions (Stale in a helper running as the user, the new
// job excluded), then removes the empty runtime dirs of the dead jobs it found.
func Prolog(ctx context.Context, p PrologParams) PrologResult {
	t0 := time.Now()
	res := PrologResult{Job: p.Job.ID, UID: p.Job.UID, User: p.Job.User}
	t := newTally(p.Log)
	finish := func() PrologResult {
		res.Report.Add(t.report())
		res.Duration = time.Since(t0)
		return res
	}
	l := layout.Layout{RuntimeDir: p.RuntimeDir, TempDir: p.TempDir, UID: p.Job.UID, Node: p.Job.Node, JobKey: p.Job.Key()}
	if err := nodeLocalValid(l); err != nil {
		t.problem("job %s: %v: nothing done", p.Job.ID, err)
		return finish()
	}
	if err := xdisplay.EnsureSocketDir(p.XDir); err != nil {
		t.problem("%v", err)
	}
	if p.Job.UID == 0 {
		t.problem("job %s of uid 0: no runtime dir made for root", p.Job.ID)
		return finish()
	}
	dir, err := runtimedir.PrepareForJob(p.RuntimeDir, p.Job.UID, p.Job.GID, p.Job.Key())
	if err != nil {
		t.problem("%v", err)
	} else {
		res.RuntimeJobDir = dir
	}
	// The user's first job here since a reboot: /run was wiped, so only the seen record says
	// that their home may hold stale trees of this node.
	rebooted := false
	if p.SeenDir != "" {
		if bootID, err := bootIDOf(Options{BootID: p.BootID}); err != nil {
			t.problem("%v", err)
		} else if rebooted, err = recordSeen(p.SeenDir, l.Node, p.Job.UID, bootID); err != nil {
			t.problem("%v", err)
		}
	}
	if !rebooted && !hasOtherNodeLocalState(l) {
		return finish()
	}
	res.Swept = true
	job := p.Job
	if p.Resolve != nil {
		if job, err = resolveBounded(ctx, p.Resolve); err != nil {
			t.problem("job %s: environment: %v: stale sessions not swept", p.Job.ID, err)
			return finish()
		}
		if job.UID != p.Job.UID {
			t.problem("job %s: environment changed between reads: stale sessions not swept", p.Job.ID)
			return finish()
		}
		res.User = job.User
	}
	rep := sweepOneUser(ctx, sweepUser{
		uid: job.UID, gid: job.GID, node: job.Node, exclude: job.Key(),
		runtimeDir: p.RuntimeDir, tempDir: p.TempDir, stateDir: p.StateDir, xDir: p.XDir,
		grace: min(max(p.Grace, 0), MaxEpilogGrace), op: OpStale, helper: p.Helper, scanner: p.Scanner, bootID: p.BootID,
	}, t)
	res.Report.Add(rep)
	return finish()
}

// hasOtherNodeLocalState reports whether user l.UID has node-local ffl state here of a job
// other than l.JobKey: a runtime job dir or anything in <temp>/ffl-<uid>. It decides whether the
// Prolog looks for stale sessions at all (lstat-level work; no NSS, no home).
func hasOtherNodeLocalState(l layout.Layout) bool {
	own := layout.JobDirName(l.JobKey)
	if rt, err := safefs.OpenTrusted(l.RuntimeDir); err == nil {
		names, more, _ := safefs.ReadDirNames(rt, maxJobs)
		for _, n := range names {
			if n == own {
				continue
			}
			if _, err := layout.ParseJobDirName(n); err != nil {
				continue
			}
			if fi, err := safefs.LstatAt(rt, n); err == nil && fi.UID == l.UID {
				rt.Close()
				return true
			}
		}
		rt.Close()
		if more {
			return true
		}
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		return false
	}
	defer tmp.Close()
	fi, err := safefs.LstatAt(tmp, layout.UserTempName(l.UID))
	return (err == nil && fi.UID == l.UID) || runtimedir.Squatted(tmp, l.UID)
}
