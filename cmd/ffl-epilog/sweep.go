package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

var sweepCommand = &cli.Command{
	Name:  "sweep",
	Usage: "remove every user's stale ffl sessions on this node (run periodically as root)",
	ArgsUsage: "\n\nEXAMPLES:\n   ffl-epilog sweep                          # defaults: epilog.sweep_older_than, epilog.temp_older_than\n" +
		"   ffl-epilog sweep --older-than 24h --dry-run",
	Flags: []cli.Flag{
		&cli.DurationFlag{Name: "older-than", Usage: "remove stale sessions idle longer than this (default epilog.sweep_older_than, 168h)"},
		&cli.DurationFlag{Name: "temp-older-than", Usage: "remove node-local dirs of dead jobs idle longer than this (default epilog.temp_older_than, 24h)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "only print what would be removed"},
		&cli.StringFlag{Name: "node", Usage: "this node's Slurm name (default $SLURMD_NODENAME, else the short hostname)"},
		&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "bound on the whole sweep"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, c.Args().First())
		}
		node, err := nodeName(c.String("node"))
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		e := setup(c, "ffl-epilog")
		defer e.close()
		olderThan, tempOlderThan := e.cfg.Epilog.SweepOlderThan.Duration, e.cfg.Epilog.TempOlderThan.Duration
		if c.IsSet("older-than") {
			olderThan = c.Duration("older-than")
		}
		if c.IsSet("temp-older-than") {
			tempOlderThan = c.Duration("temp-older-than")
		}
		if olderThan < 0 || tempOlderThan < 0 {
			return fmt.Errorf("%w: --older-than and --temp-older-than must not be negative", errUsage)
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.Duration("timeout"))
		defer cancel()
		t0 := time.Now()
		rep := reclaim.Sweep(ctx, reclaim.SweepParams{
			Node: node, RuntimeDir: e.cfg.RuntimeDir, TempDir: e.cfg.TempDir, StateDir: e.cfg.StateDir,
			OlderThan: olderThan, TempOlderThan: tempOlderThan, Grace: min(e.cfg.CleanupTimeout.Duration, reclaim.MaxEpilogGrace),
			DryRun: c.Bool("dry-run"), Helper: helper, Log: logrus.NewEntry(e.log), XDir: c.String("x-dir"),
		})
		for _, line := range rep.Removed {
			fmt.Println(line)
		}
		e.log.WithFields(logrus.Fields{
			"node": node, "sessions": rep.Sessions, "termed": rep.Termed, "killed": rep.Killed, "left": rep.Left,
			"dirs": rep.Dirs, "files": rep.Files, "bytes": rep.Bytes, "refused": rep.Refused, "dry_run": c.Bool("dry-run"),
			"duration_ms": time.Since(t0).Milliseconds(), "errors": len(rep.Problems) + rep.MoreProblems,
		}).Info("sweep done")
		return nil
	},
}

// nodeName is --node, else SLURMD_NODENAME, else the short hostname, validated like slurmenv does.
func nodeName(flag string) (string, error) {
	n := flag
	if n == "" {
		n = os.Getenv(slurmenv.EnvNodeName)
	}
	if n == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("cannot read the host name (give --node): %w", err)
		}
		n, _, _ = strings.Cut(h, ".")
	}
	if err := slurmenv.ValidNodeName(n); err != nil {
		return "", fmt.Errorf("node name %q: %v (give --node)", n, err)
	}
	return n, nil
}
