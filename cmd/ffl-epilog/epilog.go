package main

import (
	"context"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/hook"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

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
	manual := c.IsSet("job")
	if manual && os.Geteuid() != 0 {
		return hook.Usagef("ffl-epilog --job runs as root (this is uid %d): sudo ffl-epilog --job %s --user %s", os.Geteuid(), c.String("job"), c.String("user"))
	}
	e := hook.Setup(c, "ffl-epilog")
	defer e.Log.Close()
	limit := timeout(c, e)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	run := &hook.Run{}
	p := hook.EpilogParams{
		RuntimeDir: e.Cfg.RuntimeDir, TempDir: e.Cfg.TempDir, StateDir: e.Cfg.StateDir,
		Grace: e.Cfg.CleanupTimeout.Duration, Helper: hook.Helper, Scanner: hook.Scanner, Phase: run.Phase,
		Log: e.Entry(), XDir: c.String("x-dir"),
	}
	if manual {
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
		if problem := hook.NotRoot("the Epilog", os.Geteuid(), os.Getegid()); problem != "" {
			res := hook.EpilogResult{Job: job.ID, UID: job.UID, User: job.User, Duration: time.Since(t0)}
			e.RefuseNotRoot(res.Summary(), hook.EpilogPhases, problem)
			return nil
		}
	}
	run.Arm(limit+hook.WatchdogMargin, e.Log, func(phase string) {
		res := hook.EpilogResult{Job: p.Job.ID, UID: p.Job.UID, User: p.Job.User, Duration: time.Since(t0)}
		e.Watchdog(res.Summary(), hook.EpilogPhases, phase)
	})
	res := hook.Epilog(ctx, p)
	if run.Claim() {
		e.Summarize(res.Summary())
	}
	return nil
}
