// Command ffl-launch runs Firefox sessions in Xpra inside a Slurm job and guarantees that a
// session leaves nothing behind when the job ends. `ffl-launch run` is the job's supervisor (exec
// it, or srun it, so that it is the process Slurm sends SIGTERM to); start, stop and list talk to
// it; clean removes this user's stale sessions on this node.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (docs/DESIGN.md).
const (
	exitOK         = 0
	exitFailure    = 1
	exitBadInput   = 2
	exitMissing    = 3
	exitNoSession  = 4
	exitSignalBase = lifecycle.ExitSignalBase // 128+N: ended by signal N
)

// exitStatus carries an exit code chosen by a command (a signal's 128+N, a wrapped command's own
// status) through urfave/cli without printing anything.
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(report(newApp().Run(os.Args)))
}

// newApp is the whole command line; docs_test.go renders the man page and completion from it.
func newApp() *cli.App {
	return &cli.App{
		Name:    "ffl-launch",
		Usage:   "Firefox in Xpra sessions tied to a Slurm job, cleaned up when the job ends",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "config file (default $FFL_CONFIG, else /etc/ffl/ffl.toml)"},
			&cli.BoolFlag{Name: "debug", Usage: "debug logging (also FIREFOX_LAUNCHER_DEBUG=1)"},
			&cli.StringFlag{Name: "log-format", Usage: "text or json (default from config: text)"},
		},
		Commands: []*cli.Command{
			runCommand, startCommand, stopCommand, listCommand, cleanCommand, proxyCommand, doctorCommand,
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// report prints err as one line and picks the exit code with errors.As/Is (cli's own handler
// uses a type assertion and loses wrapped codes).
func report(err error) int {
	if err == nil {
		return exitOK
	}
	var es exitStatus
	if errors.As(err, &es) {
		return es.code
	}
	fmt.Fprintf(os.Stderr, "ffl-launch: %v\n", oneline.Line(err.Error()))
	return codeFor(err)
}

func codeFor(err error) int {
	var envErr *slurmenv.EnvError
	var cfgErr *config.Error
	switch {
	case errors.Is(err, lifecycle.ErrMissing):
		return exitMissing
	case errors.Is(err, lifecycle.ErrNotFound), errors.Is(err, control.ErrNoSupervisor):
		return exitNoSession
	case errors.Is(err, lifecycle.ErrBadInput), errors.As(err, &envErr), errors.As(err, &cfgErr), errors.Is(err, errUsage):
		return exitBadInput
	}
	return exitFailure
}

// errUsage marks a wrong command line.
var errUsage = errors.New("usage")

func newLogger(format string, debug bool) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	if format == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00"})
	}
	if debug {
		log.SetLevel(logrus.DebugLevel)
	}
	return log
}
