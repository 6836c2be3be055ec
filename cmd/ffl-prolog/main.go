// Command ffl-prolog is ffl's (optional) Slurm Prolog: run as root on each node before a job, it
// creates the job's node-local runtime dir (<runtime_dir>/job-<id>, the job's user, 0700) inside
// the root-owned runtime root, makes sure /tmp/.X11-unix exists as root's 1777, and sweeps the
// user's stale ffl sessions on the node (as the user, the new job excluded). It always exits 0
// (a Prolog failure would drain the node and requeue the job) and returns within its timeout
// plus a margin whatever a user does.
//
//	Prolog=/usr/local/sbin/ffl-prolog                 # slurm.conf
//
// Build with CGO_ENABLED=1 so that users resolve through NSS (LDAP, SSSD). See docs/EPILOG.md.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/hook"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	hook.Start()
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "ffl-prolog: %s\n", hook.Sanitize(err.Error()))
	}
	os.Exit(0) // never drain a node or requeue a job for ffl's sake
}

// newApp is the whole command line; docs_test.go renders the man page and completion from it.
func newApp() *cli.App {
	return &cli.App{
		Name:    "ffl-prolog",
		Usage:   "Slurm Prolog: prepare this node for a job's ffl sessions",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "config file (default $FFL_CONFIG, else /etc/ffl/ffl.toml)"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "bound on the whole run"},
			&cli.BoolFlag{Name: "debug", Usage: "debug logging"},
			// Xvfb hard-codes /tmp; only tests point this elsewhere.
			&cli.StringFlag{Name: "x-dir", Hidden: true, Usage: "directory holding .X11-unix (default /tmp)"},
		},
		Action:         prologAction,
		Commands:       []*cli.Command{hook.HelperCommand, hook.ScanCommand},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func prologAction(c *cli.Context) error {
	e := hook.Setup(c, "ffl-prolog")
	defer e.Log.Close()
	limit := c.Duration("timeout")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	p := hook.PrologParams{
		RuntimeDir: e.Cfg.RuntimeDir, TempDir: e.Cfg.TempDir, StateDir: e.Cfg.StateDir,
		Grace: e.Cfg.CleanupTimeout.Duration, Helper: hook.Helper, Scanner: hook.Scanner, Log: e.Entry(),
		XDir: c.String("x-dir"), SeenDir: e.Cfg.Epilog.SeenDir,
	}
	job, resolve, err := hook.JobFromEnv(os.Getenv)
	if err != nil {
		e.Log.WithFields(logrus.Fields{"job": os.Getenv(slurmenv.EnvJobID), "errors": 1}).Warnf("prolog: bad environment: %v: nothing done", err)
		return nil
	}
	p.Job, p.Resolve = job, resolve
	if problem := hook.NotRoot("the Prolog", os.Geteuid(), os.Getegid()); problem != "" {
		res := hook.PrologResult{Job: job.ID, UID: job.UID, User: job.User, Duration: time.Since(t0)}
		e.RefuseNotRoot(res.Summary(), hook.PrologPhases, problem)
		return nil
	}
	run := &hook.Run{}
	run.Arm(limit+hook.WatchdogMargin, e.Log, func(phase string) {
		res := hook.PrologResult{Job: job.ID, UID: job.UID, User: job.User, Duration: time.Since(t0)}
		e.Watchdog(res.Summary(), hook.PrologPhases, phase)
	})
	res := hook.Prolog(ctx, p)
	if run.Claim() {
		e.Summarize(res.Summary())
	}
	return nil
}
