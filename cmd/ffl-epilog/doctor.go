package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/doctor"
	"github.com/ffl-hpc/ffl/pkg/execenv"
)

// exitBroken is doctor's exit code when a check failed (a manual run; Slurm never runs it).
const exitBroken = 3

var doctorCommand = &cli.Command{
	Name:      "doctor",
	Usage:     "check this node's side of ffl (root): sessions can draw, dirs, and what slurmd runs: every Prolog/Epilog line, Include files, timeouts, KillWait, per-job namespaces",
	ArgsUsage: "\n\nEXAMPLE:\n   ffl-epilog doctor --slurm-conf /etc/slurm/slurm.conf",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "slurm-conf", Usage: "slurm.conf (default: the one the running slurmd reads, else $SLURM_CONF, else /etc/slurm/slurm.conf, else configless slurmd's /run/slurm/conf/slurm.conf)"},
		&cli.StringFlag{Name: "slurm-version", Usage: "the Slurm release whose rules apply, e.g. 24.11 (default: slurmd --version)"},
	},
	Action: func(c *cli.Context) error {
		cfg, _, err := config.LoadFromEnv(os.Getenv, c.String("config"))
		if err != nil {
			return err
		}
		r := doctor.Run(c.Context, doctor.Options{Config: cfg, Path: execenv.DefaultPath, SlurmConf: c.String("slurm-conf"), SlurmVersion: c.String("slurm-version"), Node: true, XDir: c.String("x-dir")})
		if err := r.Write(os.Stdout); err != nil {
			return err
		}
		if r.Failed() {
			return exitStatus{exitBroken}
		}
		return nil
	},
}
