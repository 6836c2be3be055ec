// Command ffl-prolog is ffl's (optional) Slurm Prolog: run as root on each node before a job, it
// creates the job's node-local runtime dir (<runtime_dir>/job-<id>, the job's user, 0700) inside
// the root-owned runtime root, makes sure /tmp/.X11-unix exists as root's 1777, and sweeps the
// user's stale ffl sessions on the node (as the user, the new job excluded). It always exits 0:
// a Prolog failure would drain the node and requeue the job.
//
//	Prolog=/usr/local/sbin/ffl-prolog                 # slurm.conf
//
// Build with CGO_ENABLED=1 so that users resolve through NSS (LDAP, SSSD). See docs/EPILOG.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// errNoNSS makes slurmenv skip NSS: the runtime dir needs only the uid and gid Slurm gives.
var errNoNSS = errors.New("NSS not consulted")

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "ffl-prolog: %s\n", reclaim.Sanitize(err.Error()))
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
		Commands:       []*cli.Command{helperCommand},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func prologAction(c *cli.Context) error {
	cfg, path, cfgErr := config.LoadFromEnv(os.Getenv, c.String("config"))
	if cfgErr != nil {
		cfg = config.Default()
	}
	log, closeLog, errs := reclaim.HookLog{Tag: "ffl-prolog", Syslog: cfg.Epilog.Syslog, File: cfg.Epilog.LogFile, Debug: c.Bool("debug")}.New()
	defer closeLog()
	for _, err := range errs {
		log.WithError(err).Warn("logging")
	}
	if cfgErr != nil {
		log.WithError(cfgErr).Warn("configuration unusable; using the defaults")
	} else {
		log.WithField("config", path).Debug("configuration loaded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Duration("timeout"))
	defer cancel()

	p := reclaim.PrologParams{
		RuntimeDir: cfg.RuntimeDir, TempDir: cfg.TempDir, StateDir: cfg.StateDir,
		Grace: cfg.CleanupTimeout.Duration, Helper: reclaim.Helper{Args: []string{"helper"}}, Log: logrus.NewEntry(log),
		XDir: c.String("x-dir"),
	}
	full := slurmenv.Options{Getenv: os.Getenv}
	job, err := slurmenv.ForEpilog(slurmenv.Options{
		Getenv:     os.Getenv,
		LookupUser: func(string) (int, error) { return 0, errNoNSS },
		LookupUID:  func(int) (string, error) { return "", errNoNSS },
		LookupGID:  func(int) (int, error) { return 0, errNoNSS },
	})
	if err == nil {
		p.Job = job
		p.Resolve = func() (slurmenv.Job, error) { return slurmenv.ForEpilog(full) }
	} else if job, err = slurmenv.ForEpilog(full); err == nil {
		p.Job = job
	} else {
		log.WithFields(logrus.Fields{"job": os.Getenv(slurmenv.EnvJobID), "errors": 1}).Warnf("prolog: bad environment: %v: nothing done", err)
		return nil
	}
	res := reclaim.Prolog(ctx, p)
	errCount := len(res.Problems) + res.MoreProblems
	entry := log.WithFields(logrus.Fields{
		"job": res.Job, "user": res.User, "uid": res.UID, "runtime_dir": res.RuntimeJobDir, "swept": res.Swept,
		"sessions": res.Sessions, "termed": res.Termed, "killed": res.Killed, "dirs": res.Dirs, "bytes": res.Bytes,
		"duration_ms": res.Duration.Milliseconds(), "errors": errCount,
	})
	if errCount > 0 {
		entry.Warn("prolog done, with problems (see the lines above)")
	} else {
		entry.Info("prolog done")
	}
	return nil
}
