package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// errNoNSS makes slurmenv skip its NSS lookups on the fast path (a lookup error means "cannot
// cross-check", which it tolerates); the slow path re-reads the environment with NSS.
var errNoNSS = errors.New("NSS not consulted on the fast path")

func noNSS() slurmenv.Options {
	fail := func(string) (int, error) { return 0, errNoNSS }
	return slurmenv.Options{
		Getenv:     os.Getenv,
		LookupUser: fail,
		LookupUID:  func(int) (string, error) { return "", errNoNSS },
		LookupGID:  func(int) (int, error) { return 0, errNoNSS },
	}
}

// epilogAction is the Epilog (no subcommand): for the job in the Slurm environment, or for
// --job/--user.
func epilogAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q (subcommands: sweep)", errUsage, c.Args().First())
	}
	e := setup(c, "ffl-epilog")
	defer e.close()
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout(c))
	defer cancel()

	p := reclaim.EpilogParams{
		RuntimeDir: e.cfg.RuntimeDir, TempDir: e.cfg.TempDir, StateDir: e.cfg.StateDir,
		Grace: e.cfg.CleanupTimeout.Duration, Helper: helper, Log: logrus.NewEntry(e.log), XDir: c.String("x-dir"),
	}
	if c.IsSet("job") || c.IsSet("user") {
		if c.String("job") == "" || c.String("user") == "" {
			return fmt.Errorf("%w: --job and --user go together, e.g. ffl-epilog --job 1234 --user alice", errUsage)
		}
		job, err := slurmenv.Manual(c.String("job"), c.String("user"), slurmenv.Options{})
		if err != nil {
			e.log.WithError(err).Error("manual run: nothing done")
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		p.Job = job
	} else {
		job, err := slurmenv.ForEpilog(noNSS())
		if err == nil {
			p.Job = job
			p.Resolve = func() (slurmenv.Job, error) { return slurmenv.ForEpilog(slurmenv.Options{Getenv: os.Getenv}) }
		} else if job, err = slurmenv.ForEpilog(slurmenv.Options{Getenv: os.Getenv}); err == nil {
			p.Job = job // SLURM_JOB_GID missing: resolved through NSS straight away
		} else {
			e.log.WithFields(logrus.Fields{"job": os.Getenv(slurmenv.EnvJobID), "errors": 1}).
				Warnf("epilog: bad environment: %v: nothing done", err)
			return nil
		}
	}
	res := reclaim.Epilog(ctx, p)
	summary(e.log, res)
	if e.cfg.Epilog.FailOnUnkillable && res.Unkillable > 0 {
		return exitStatus{exitUnkillable}
	}
	return nil
}

// summary logs the one line per job that admins grep for.
func summary(log *logrus.Logger, res reclaim.EpilogResult) {
	errs := len(res.Problems) + res.MoreProblems
	entry := log.WithFields(logrus.Fields{
		"job": res.Job, "user": res.User, "uid": res.UID, "sessions": res.Sessions,
		"termed": res.Termed, "killed": res.Killed, "left": res.Left, "refused": res.Refused,
		"dirs": res.Dirs, "files": res.Files, "bytes": res.Bytes,
		"duration_ms": res.Duration.Round(time.Millisecond).Milliseconds(), "errors": errs, "fast": res.Fast,
	})
	if errs > 0 {
		entry.Warn("epilog done, with problems (see the lines above)")
		return
	}
	entry.Info("epilog done")
}
