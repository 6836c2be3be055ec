package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/hook"
	"github.com/ffl-hpc/ffl/pkg/metrics"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// epilogPhases are the Epilog's steps in order: the watchdog names the one in progress and
// those after it as unfinished.
var epilogPhases = []string{reclaim.PhaseProcesses, reclaim.PhaseXFiles, reclaim.PhaseHome, reclaim.PhaseDirs}

// epilogAction is the Epilog (no subcommand): for the job in the Slurm environment, or for
// --job/--user.
func epilogAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return hook.Usagef("unexpected argument %q (subcommands: sweep)", c.Args().First())
	}
	if c.IsSet("job") || c.IsSet("user") {
		if c.String("job") == "" || c.String("user") == "" {
			return hook.Usagef("--job and --user go together, e.g. ffl-epilog --job 1234 --user alice")
		}
	}
	e := hook.Setup(c, "ffl-epilog")
	defer e.Log.Close()
	limit := timeout(c, e)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	run := &hook.Run{}
	p := reclaim.EpilogParams{
		RuntimeDir: e.Cfg.RuntimeDir, TempDir: e.Cfg.TempDir, StateDir: e.Cfg.StateDir,
		Grace: e.Cfg.CleanupTimeout.Duration, Helper: hook.Helper, Scanner: hook.Scanner, Phase: run.Phase,
		Log: e.Entry(), XDir: c.String("x-dir"),
	}
	if c.IsSet("job") {
		job, err := slurmenv.Manual(c.String("job"), c.String("user"), slurmenv.Options{})
		if err != nil {
			e.Log.WithError(err).Error("manual run: nothing done")
			return hook.Usagef("%v", err)
		}
		p.Job = job
	} else {
		job, resolve, err := hook.JobFromEnv(os.Getenv)
		if err != nil {
			e.Log.WithFields(logrus.Fields{"job": os.Getenv(slurmenv.EnvJobID), "errors": 1}).
				Warnf("epilog: bad environment: %v: nothing done", err)
			return nil
		}
		p.Job, p.Resolve = job, resolve
	}
	run.Arm(limit+hook.WatchdogMargin, e.Log, func(phase string) {
		res := reclaim.EpilogResult{Job: p.Job.ID, UID: p.Job.UID, User: p.Job.User, Duration: time.Since(t0)}
		res.Unfinished = from(epilogPhases, phase)
		res.Problems = []string{"watchdog: the run did not end by its timeout plus " + hook.WatchdogMargin.String()}
		e.Log.Warn(res.Problems[0])
		summary(e, res)
	})
	res := reclaim.Epilog(ctx, p)
	if run.Claim() {
		summary(e, res)
	}
	return nil
}

// from returns the phases from phase on ("" : all of them).
func from(phases []string, phase string) []string {
	for i, p := range phases {
		if p == phase {
			return phases[i:]
		}
	}
	return phases
}

// unfinishedField renders Report.Unfinished for the summary line ("none" when all finished).
func unfinishedField(u []string) string {
	if len(u) == 0 {
		return "none"
	}
	return strings.Join(u, ",")
}

// summary logs the one line per job that admins grep for, and adds the run to the metrics.
func summary(e *hook.Env, res reclaim.EpilogResult) {
	errs := len(res.Problems) + res.MoreProblems
	leftovers := 0
	if !res.Fast && res.Job != "" && (res.Sessions > 0 || res.Termed > 0 || res.Dirs > 0 || res.Left > 0) {
		leftovers = 1
	}
	defer e.Record(metrics.Run{Hook: metrics.HookEpilog, Jobs: 1, JobsWithLeftovers: leftovers, Sessions: res.Sessions,
		Termed: res.Termed, Killed: res.Killed, Left: res.Left, Refused: res.Refused, Dirs: res.Dirs, Files: res.Files,
		Bytes: res.Bytes, Errors: errs, Foreign: res.Foreign, Duration: res.Duration, TimedOut: len(res.Unfinished) > 0})
	entry := e.Log.WithFields(logrus.Fields{
		"job": res.Job, "user": res.User, "uid": res.UID, "sessions": res.Sessions,
		"termed": res.Termed, "killed": res.Killed, "left": res.Left, "refused": res.Refused,
		"dirs": res.Dirs, "files": res.Files, "bytes": res.Bytes, "unfinished": unfinishedField(res.Unfinished),
		"duration_ms": res.Duration.Round(time.Millisecond).Milliseconds(), "errors": errs, "fast": res.Fast,
		"foreign": res.Foreign,
	})
	if errs > 0 {
		entry.Warn("epilog done, with problems (see the lines above)")
		return
	}
	entry.Info("epilog done")
}
