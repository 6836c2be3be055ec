package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

var proxyCommand = &cli.Command{
	Name:  "proxy",
	Usage: "the jupyter-server-proxy command: start (or reuse) this job's session on PORT and stay while it lives",
	ArgsUsage: "\n\njupyter_server_config.py (contrib/sbatch):\n" +
		`   c.ServerProxy.servers = {"firefox": {"command": ["ffl-launch", "proxy", "--port", "{port}"],` + "\n" +
		`                                        "port": int(os.environ["FFL_PROXY_PORT"]), ...}}` + "\n\n" +
		"It needs the job's supervisor (the notebook server runs under 'ffl-launch run --', which holds\n" +
		"$FFL_PROXY_PORT for it). It exits 0 when Firefox is closed or on SIGTERM (after stopping the\n" +
		"session), 1 when the session cannot start (the browser then shows why).",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "port", Usage: "the port jupyter-server-proxy proxies to ({port}, i.e. $FFL_PROXY_PORT)", Required: true},
		&cli.StringFlag{Name: "url", Usage: "page Firefox opens (default start_url)"},
	},
	Action: func(c *cli.Context) error {
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
		defer signal.Stop(sigs)
		if c.NArg() > 0 {
			return fmt.Errorf("%w: proxy takes no arguments (got %q)", errUsage, c.Args().First())
		}
		port := c.Int("port")
		if port < 1 || port > 65535 {
			return fmt.Errorf("%w: --port %d: not a port number", errUsage, port)
		}
		e, err := setup(c)
		if err != nil {
			return err
		}
		sock, err := e.socketPath()
		if err != nil {
			return fmt.Errorf("%w (ffl-launch proxy runs under the job's supervisor: start the notebook server with 'ffl-launch run -- ...')", err)
		}
		client := control.NewClient(sock)
		ctx, cancel := context.WithCancel(c.Context)
		defer cancel()
		started := make(chan error, 1)
		var info lifecycle.Info
		go func() {
			var err error
			info, err = client.Start(ctx, lifecycle.StartRequest{Port: port, URL: c.String("url"), Reuse: true})
			started <- err
		}()
		select {
		case err := <-started:
			if err != nil {
				return err
			}
		case sig := <-sigs:
			cancel()
			stopQuietly(client, port, e)
			e.log.WithField("signal", sig.String()).Info("proxy stopped before its session was ready")
			return nil
		}
		e.log.WithFields(map[string]any{"port": info.Port, "window_ms": info.WindowMS}).Info("Firefox session ready for the Jupyter proxy")
		ended := make(chan error, 1)
		go func() { ended <- client.Wait(ctx, port) }()
		select {
		case err := <-ended:
			if err != nil && !errors.Is(err, control.ErrNoSupervisor) && !errors.Is(err, lifecycle.ErrNotFound) {
				return err
			}
			e.log.WithField("port", port).Info("Firefox session ended")
			return nil
		case <-sigs:
			stopQuietly(client, port, e)
			return nil
		}
	},
}

// stopQuietly stops the session; a supervisor already tearing down (the job is ending: Slurm
// signals every task) or a session already gone is the normal case, not worth a warning.
func stopQuietly(client *control.Client, port int, e *jobEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.CleanupTimeout.Duration+5*time.Second)
	defer cancel()
	err := client.Stop(ctx, port)
	switch {
	case err == nil:
		e.log.WithField("port", port).Info("Firefox session stopped")
	case errors.Is(err, control.ErrNoSupervisor), errors.Is(err, lifecycle.ErrNotFound), errors.Is(err, lifecycle.ErrStopping):
		e.log.WithField("port", port).Debug("session already gone")
	default:
		e.log.WithError(err).WithField("port", port).Warn("stopping the session")
	}
}
