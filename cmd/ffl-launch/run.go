package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "supervise this job's sessions (exec or srun it as the job's task)",
	ArgsUsage: "[-- CMD ARGS...]\n\nEXAMPLES:\n   exec ffl-launch run                       # one browser session until the job ends\n   srun ffl-launch run -- batchspawner-singleuser jupyterhub-singleuser",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "port", Usage: "port of the first session (default: a free port of the range)"},
		&cli.IntFlag{Name: "sessions", Value: -1, Usage: "sessions to start now (default 1 without CMD, 0 with CMD)"},
		&cli.StringFlag{Name: "url", Usage: "page Firefox opens (default start_url)"},
		&cli.BoolFlag{Name: "json", Usage: "print each session's connection info as one JSON line"},
		&cli.BoolFlag{Name: "proxy-port", Value: true, Usage: "with CMD: hold a port for its jupyter-server-proxy entry ($FFL_PROXY_PORT)"},
	},
	Action: runAction,
}

func runAction(c *cli.Context) error {
	// Signals first: a TERM that arrives while we start must still run the grace path.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)
	// SIGUSR1 (#SBATCH --signal=B:USR1@600) shows the end warning; unhandled it would kill us.
	warnings := make(chan os.Signal, 1)
	signal.Notify(warnings, unix.SIGUSR1)
	defer signal.Stop(warnings)
	e, err := setup(c)
	if err != nil {
		return err
	}
	args := c.Args().Slice()
	sessions := c.Int("sessions")
	if sessions < 0 {
		sessions = 1
		if len(args) > 0 {
			sessions = 0
		}
	}
	if c.Int("port") != 0 && sessions == 0 {
		sessions = 1
	}
	if sessions > e.cfg.MaxSessions {
		return fmt.Errorf("%w: --sessions %d exceeds max_sessions %d", errUsage, sessions, e.cfg.MaxSessions)
	}
	// The supervisor idles beside sessions for hours on nodes where memory is the job's: a
	// tighter GC target keeps its heap (a few MiB of short-lived /proc scan buffers) small,
	// at a cost of microseconds per scan.
	debug.SetGCPercent(40)
	cfg, err := e.supervisorConfig(c, sessions, args, os.Stdout, c.Bool("json"))
	if err != nil {
		return err
	}
	cfg.Warnings = warnings
	sup := lifecycle.NewSupervisor(cfg)
	code, err := sup.Run(context.Background(), sigs)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitStatus{code}
	}
	return nil
}

// supervisorConfig wires the library pieces into one `ffl-launch run`: the control API, the
// sweep of other jobs' stale sessions and the reclaim of this job's earlier run (reclaim).
func (e *jobEnv) supervisorConfig(c *cli.Context, sessions int, args []string, out io.Writer, asJSON bool) (lifecycle.SupervisorConfig, error) {
	log := e.log
	settings, err := e.settings()
	if err != nil {
		return lifecycle.SupervisorConfig{}, err
	}
	opts := func(bootID string) reclaim.Options {
		return reclaim.Options{BootID: bootID, Grace: e.cfg.CleanupTimeout.Duration, Log: log}
	}
	return lifecycle.SupervisorConfig{
		Settings:   settings,
		EndWarning: e.cfg.EndWarning.Duration,
		Sessions:   sessions,
		Port:       c.Int("port"),
		URL:        c.String("url"),
		Command:    args,
		ProxyPort:  c.Bool("proxy-port"),
		// The proxy port's session right away (jupyter_prestart), only for a proxy port.
		ProxyPrestart:       c.Bool("proxy-port") && e.cfg.JupyterPrestart == config.PrestartAlways,
		ProxyPrestartRecent: recentWindow(c.Bool("proxy-port") && e.cfg.JupyterPrestart == config.PrestartRecent),
		Log:                 log,
		Announce:            func(info lifecycle.Info) { announce(out, asJSON, info) },
		ServeAPI: func(sock string, m *lifecycle.Manager) (io.Closer, error) {
			return control.Serve(sock, m, log)
		},
		// This user's sessions on this node whose supervisor is gone (a SIGKILLed launcher of an
		// earlier job whose Epilog did not run) are removed beside the first start, not before
		// it: they never share a directory or a port with this job.
		Sweep: func(ctx context.Context, bootID string) {
			if rep, err := reclaim.Stale(ctx, e.layout, opts(bootID)); err != nil {
				log.WithError(err).Warn("removing stale sessions")
			} else if rep.Sessions > 0 {
				log.WithFields(logrus.Fields{"sessions": rep.Sessions, "killed": rep.Killed, "dirs": rep.Dirs}).Info("removed stale sessions")
			}
		},
		ReclaimJob: func(ctx context.Context, bootID string) error {
			rep, err := reclaim.Job(ctx, e.layout, opts(bootID))
			log.WithFields(logrus.Fields{"sessions": rep.Sessions, "termed": rep.Termed, "killed": rep.Killed, "dirs": rep.Dirs}).Info("reclaimed an earlier run of this job")
			return err
		},
	}, nil
}

func announce(out io.Writer, asJSON bool, info lifecycle.Info) {
	if asJSON {
		b, _ := json.Marshal(info)
		fmt.Fprintln(out, string(b))
		return
	}
	fmt.Fprint(out, connectionText(info))
}

func connectionText(info lifecycle.Info) string {
	return fmt.Sprintf(`ffl: Firefox session ready: node %s, port %d, job %s (Firefox visible after %d ms)
  on the node:      %s
  from your laptop: %s
                    then open http://localhost:%d/  (no password: only your own user gets in)
  stop it:          ffl-launch stop %d   (or end the job: scancel %s)
`, info.Node, info.Port, info.Job, info.WindowMS, info.URL, info.SSH, info.Port, info.Port, info.Job)
}

// recentWindow is ProxyPrestartRecent: config.RecentVisit when jupyter_prestart = "recent"
// applies, else 0.
func recentWindow(on bool) time.Duration {
	if on {
		return config.RecentVisit
	}
	return 0
}
