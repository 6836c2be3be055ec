package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

var cleanCommand = &cli.Command{
	Name:  "clean",
	Usage: "remove this user's stale sessions on this node (whose supervisor is gone)",
	Flags: []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "only print what would be removed"}},
	Action: func(c *cli.Context) error {
		e, err := setup(c)
		if err != nil {
			return err
		}
		bootID, err := proc.BootID()
		if err != nil {
			return err
		}
		rep, err := reclaim.Stale(c.Context, e.layout, reclaim.Options{BootID: bootID, Grace: e.cfg.CleanupTimeout.Duration, DryRun: c.Bool("dry-run"), Log: e.log})
		for _, line := range rep.Removed {
			fmt.Println(line)
		}
		fmt.Printf("ffl: %s %d stale sessions, ended %d processes, freed %d bytes\n", reclaim.DoneVerb(c.Bool("dry-run")), rep.Sessions, rep.Killed+rep.Termed, rep.Bytes)
		return err
	},
}
