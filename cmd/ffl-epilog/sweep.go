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
		done := func(rep reclaim.Report) {
			errs, took := len(rep.Problems)+rep.MoreProblems, time.Since(t0)
			defer e.Record(metrics.Run{Hook: metrics.HookSweep, Sessions: rep.Sessions, Termed: rep.Termed, Killed: rep.Killed,
				Left: rep.Left, Refused: rep.Refused, Dirs: rep.Dirs, Files: rep.Files, Bytes: rep.Bytes, Errors: errs,
				Foreign: rep.Foreign, Duration: took, TimedOut: len(rep.Unfinished) > 0})
			e.Log.WithFields(logrus.Fields{
				"node": node, "sessions": rep.Sessions, "termed": rep.Termed, "killed": rep.Killed, "left": rep.Left,
				"dirs": rep.Dirs, "files": rep.Files, "bytes": rep.Bytes, "refused": rep.Refused, "dry_run": c.Bool("dry-run"),
				"unfinished": unfinishedField(rep.Unfinished), "duration_ms": took.Milliseconds(), "errors": errs,
				"foreign": rep.Foreign,
			}).Info("sweep done")
		}
		run.Arm(limit+hook.WatchdogMargin, e.Log, func(string) {
			e.Log.Warn("watchdog: the sweep did not end by its timeout plus " + hook.WatchdogMargin.String())
			done(reclaim.Report{Unfinished: []string{reclaim.PhaseSweep}, Problems: []string{"watchdog"}})
		})
		rep := reclaim.Sweep(ctx, reclaim.SweepParams{
			Node: node, RuntimeDir: e.Cfg.RuntimeDir, TempDir: e.Cfg.TempDir, StateDir: e.Cfg.StateDir,
			OlderThan: olderThan, TempOlderThan: tempOlderThan, Grace: min(e.Cfg.CleanupTimeout.Duration, reclaim.MaxEpilogGrace),
			DryRun: c.Bool("dry-run"), Helper: hook.Helper, Scanner: hook.Scanner, Log: e.Entry(), XDir: c.String("x-dir"),
			SeenDir: e.Cfg.Epilog.SeenDir,
		})
		if run.Claim() {
			for _, line := range rep.Removed {
				fmt.Println(line)
			}
			done(rep)
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
