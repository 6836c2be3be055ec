package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/hook"
	"github.com/ffl-hpc/ffl/pkg/metrics"
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
			return hook.Usagef("unexpected argument %q", c.Args().First())
		}
		if os.Geteuid() != 0 {
			return hook.Usagef("ffl-epilog sweep runs as root (this is uid %d): sudo ffl-epilog sweep", os.Geteuid())
		}
		node, err := nodeName(c.String("node"))
		if err != nil {
			return hook.Usagef("%v", err)
		}
		e := hook.Setup(c, "ffl-epilog")
		defer e.Log.Close()
		olderThan, tempOlderThan := e.Cfg.Epilog.SweepOlderThan.Duration, e.Cfg.Epilog.TempOlderThan.Duration
		if c.IsSet("older-than") {
			olderThan = c.Duration("older-than")
		}
		if c.IsSet("temp-older-than") {
			tempOlderThan = c.Duration("temp-older-than")
		}
		if olderThan < 0 || tempOlderThan < 0 {
			return hook.Usagef("--older-than and --temp-older-than must not be negative")
		}
		limit := c.Duration("timeout")
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		t0 := time.Now()
		run := &hook.Run{}
		dryRun := c.Bool("dry-run")
		summary := func(rep reclaim.Report) hook.Summary {
			return hook.Summary{Hook: metrics.HookSweep, Report: rep, Took: time.Since(t0), Fields: logrus.Fields{"node": node, "dry_run": dryRun}}
		}
		run.Arm(limit+hook.WatchdogMargin, e.Log, func(phase string) {
			e.Watchdog(summary(reclaim.Report{}), hook.SweepPhases, phase)
		})
		rep := hook.Sweep(ctx, hook.SweepParams{
			Node: node, RuntimeDir: e.Cfg.RuntimeDir, TempDir: e.Cfg.TempDir, StateDir: e.Cfg.StateDir,
			OlderThan: olderThan, TempOlderThan: tempOlderThan, Grace: min(e.Cfg.CleanupTimeout.Duration, hook.MaxEpilogGrace),
			DryRun: dryRun, Helper: hook.Helper, Scanner: hook.Scanner, Log: e.Entry(), XDir: c.String("x-dir"),
			SeenDir: e.Cfg.Epilog.SeenDir,
		})
		if run.Claim() {
			for _, line := range rep.Removed {
				fmt.Println(line)
			}
			e.Summarize(summary(rep))
		}
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
