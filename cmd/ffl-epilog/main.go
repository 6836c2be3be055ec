// Command ffl-epilog is ffl's Slurm Epilog: run as root on every node after every job, it ends
// the processes of the job's ffl sessions and removes their files (node-local runtime dirs, the
// session trees in the home, stale X locks). It never drains a node for a user's mess: it exits
// 0 on every problem, each logged (syslog and/or epilog.log_file, since slurmd discards its
// output), and it returns within its timeout plus a margin whatever a user does.
//
//	Epilog=/usr/local/sbin/ffl-epilog                 # slurm.conf
//	ffl-epilog --job 1234 --user alice          # by hand, after a job whose Epilog did not run
//	ffl-epilog sweep --older-than 168h          # periodically (systemd timer, cron)
//
// Build with CGO_ENABLED=1 so that users resolve through NSS (LDAP, SSSD). See docs/EPILOG.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/hook"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (docs/EPILOG.md).
const (
	exitOK    = 0
	exitUsage = 2 // a human gave bad flags (Slurm passes none)
)

func main() {
	hook.Start()
	os.Exit(exitCode(newApp().Run(os.Args)))
}

// newApp is the whole command line; docs_test.go renders the man page and completion from it.
func newApp() *cli.App {
	return &cli.App{
		Name:    "ffl-epilog",
		Usage:   "Slurm Epilog: end and remove what the ffl sessions of a job left on this node",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "config file (default $FFL_CONFIG, else /etc/ffl/ffl.toml)"},
			&cli.StringFlag{Name: "job", Usage: "job ID (manual run; with --user), instead of SLURM_JOB_ID"},
			&cli.StringFlag{Name: "user", Usage: "job owner's user name (manual run; with --job)"},
			&cli.DurationFlag{Name: "timeout", Usage: "bound on the whole run (default epilog.timeout, 10s)"},
			&cli.BoolFlag{Name: "debug", Usage: "debug logging"},
			// Xvfb hard-codes /tmp; only tests point this elsewhere.
			&cli.StringFlag{Name: "x-dir", Hidden: true, Usage: "directory of X lock files (default /tmp)"},
		},
		ArgsUsage: "\n\nEXAMPLES:\n   Epilog=/usr/local/sbin/ffl-epilog            (slurm.conf)\n   ffl-epilog --job 1234 --user alice",
		Action:    epilogAction,
		Commands:  []*cli.Command{sweepCommand, doctorCommand, hook.HelperCommand, hook.ScanCommand},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w: %v", hook.ErrUsage, err)
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// exitStatus carries an exit code through urfave/cli (doctor's).
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var es exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	fmt.Fprintf(os.Stderr, "ffl-epilog: %s\n", hook.Sanitize(err.Error()))
	if errors.Is(err, hook.ErrUsage) {
		return exitUsage
	}
	return exitOK // never drain a node for our own failure
}

// timeout is --timeout, else epilog.timeout.
func timeout(c *cli.Context, e *hook.Env) time.Duration {
	if d := c.Duration("timeout"); d > 0 {
		return d
	}
	return e.Cfg.Epilog.Timeout.Duration
}
