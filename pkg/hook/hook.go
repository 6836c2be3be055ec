// Package hook runs ffl's root hooks: the Epilog, the Prolog and the periodic sweep, each as an
// ordered list of steps (EpilogPhases, ...) with its own share of the run's time (budget.go),
// built from reclaim's steps and decisions; and what ffl-epilog and ffl-prolog share around
// them: the first thing they do (close what they did not open), their configuration and
// logger, the job as Slurm's environment gives it (without asking NSS on the fast path), the
// hidden subcommands behind their child processes (the privilege-dropped helper, the process
// scan), the one summary line and metrics of a run (Summarize), and the last-resort watchdog
// that ends a run at its timeout plus a margin whatever is stuck, naming the step it was in.
package hook

import (
	"errors"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/metrics"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/reexec"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// Names of the hidden subcommands behind the hooks' child processes.
const (
	HelperName = "helper"
	ScanName   = "scan"
)

// Start is the first thing a hook does: mark every descriptor it inherited (3 and up) close-on-
// exec, so nothing slurmd or an admin's shell left open reaches a child, least of all the
// helper that runs as the user (a process of the user could copy it with pidfd_getfd). They
// stay usable by this process, which uses none of them.
func Start() {
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
}

// Helper is the privilege-dropped helper: this binary's hidden helper subcommand.
var Helper = reexec.Command{Args: []string{HelperName}}

// Scanner runs the marker and slurmstepd scans in a child: this binary's hidden scan subcommand.
var Scanner procscan.Scanner = procscan.Child{Command: reexec.Command{Args: []string{ScanName}}}

// HelperCommand is the helper's side: the root process re-executes this binary as the job's
// user with one argument (reexec's envelope around a reclaim.HelperRequest). Not for humans.
var HelperCommand = &cli.Command{
	Name:      HelperName,
	Usage:     "internal: the part of the cleanup that runs as the user",
	ArgsUsage: "REQUEST",
	Hidden:    true,
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return errors.New("helper takes exactly one REQUEST")
		}
		return reclaim.ServeHelper(c.Args().First(), os.Stdout, Scanner)
	},
}

// ScanCommand is the scan child's side: the root process re-executes this binary (as root)
// to read other processes' memory where a read stuck in the kernel cannot hold up the hook.
var ScanCommand = &cli.Command{
	Name:      ScanName,
	Usage:     "internal: the process scan, in a child of the hook",
	ArgsUsage: "REQUEST",
	Hidden:    true,
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return errors.New("scan takes exactly one REQUEST")
		}
		return procscan.Serve(c.Args().First(), os.Stdout)
	},
}

// Env is what a hook run has: the configuration (the defaults when the file is unusable: the
// cleanup must run anyway) and the logger built from it.
type Env struct {
	Cfg config.Config
	Log *Logger
}

// Setup loads the configuration from --config / $FFL_CONFIG / /etc/ffl/ffl.toml and builds the
// logger (tag names the program in syslog). Problems are logged, never fatal.
func Setup(c *cli.Context, tag string) *Env {
	cfg, path, cfgErr := config.LoadFromEnv(os.Getenv, c.String("config"))
	if cfgErr != nil {
		cfg = config.Default()
	}
	log, errs := Log{Tag: tag, Syslog: cfg.Epilog.Syslog, File: cfg.Epilog.LogFile, Debug: c.Bool("debug")}.New()
	for _, err := range errs {
		log.WithError(err).Warn("logging")
	}
	if cfgErr != nil {
		log.WithError(cfgErr).Warn("configuration unusable; using the defaults")
	} else {
		log.WithField("config", path).Debug("configuration loaded")
	}
	if cfg.Epilog.FailOnUnkillable {
		log.Warn("epilog.fail_on_unkillable is ignored: a user can trigger it at will (a process in D state on the user's own FUSE mount survives SIGKILL) and would drain the node; such processes are counted in left= of the summary")
	}
	return &Env{Cfg: cfg, Log: log}
}

// Record adds a run's counts to epilog.metrics_file (pkg/metrics): nothing where that file's
// directory does not exist, one warning line on a problem, never more than metrics.HookBudget
// of waiting (so it fits the watchdog's path too).
func (e *Env) Record(run metrics.Run) {
	metrics.RecordForHook(e.Cfg.Epilog.MetricsFile, run, e.Entry())
}

// Entry is the logger as a logrus entry, for the library calls.
func (e *Env) Entry() *logrus.Entry { return logrus.NewEntry(e.Log.Logger) }

// errNoNSS makes slurmenv skip its NSS lookups (a lookup error means "cannot cross-check",
// which it tolerates): the fast path asks no directory service.
var errNoNSS = errors.New("NSS not consulted on the fast path")

// JobFromEnv reads the job from Slurm's environment without asking NSS, and returns resolve,
// which re-reads it with NSS for the slow path. When the environment lacks what the fast read
// needs (SLURM_JOB_GID), NSS is asked at once and resolve is nil.
func JobFromEnv(getenv func(string) string) (job slurmenv.Job, resolve func() (slurmenv.Job, error), err error) {
	full := slurmenv.Options{Getenv: getenv}
	fast := slurmenv.Options{
		Getenv:     getenv,
		LookupUser: func(string) (int, error) { return 0, errNoNSS },
		LookupUID:  func(int) (string, error) { return "", errNoNSS },
		LookupGID:  func(int) (int, error) { return 0, errNoNSS },
	}
	if job, err = slurmenv.ForEpilog(fast); err == nil {
		return job, func() (slurmenv.Job, error) { return slurmenv.ForEpilog(full) }, nil
	}
	job, err = slurmenv.ForEpilog(full)
	return job, nil, err
}

// Sanitize makes an error message safe for the one stderr line of a manual run.
func Sanitize(s string) string { return reclaim.Sanitize(s) }

// ErrUsage marks a wrong command line of a manual run (exit 2).
var ErrUsage = errors.New("usage")

// Usagef is an ErrUsage error with a message naming the fix.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
