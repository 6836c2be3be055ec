package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

var startCommand = &cli.Command{
	Name:      "start",
	Usage:     "start one more session through this job's supervisor",
	ArgsUsage: "\n\nEXAMPLE:\n   ffl-launch start --json    # from a Jupyter extension: prints {\"port\":...,\"url\":...}",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "port", Usage: "port (default: a free port of the range)"},
		&cli.StringFlag{Name: "url", Usage: "page Firefox opens"},
		&cli.BoolFlag{Name: "json", Usage: "print the connection info as JSON"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("%w: start takes no arguments (got %q): use --port N", errUsage, c.Args().First())
		}
		e, err := setup(c)
		if err != nil {
			return err
		}
		sock, err := e.socketPath()
		if err != nil {
			return err
		}
		info, err := control.NewClient(sock).Start(c.Context, lifecycle.StartRequest{Port: c.Int("port"), URL: c.String("url")})
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return json.NewEncoder(os.Stdout).Encode(info)
		}
		fmt.Print(connectionText(info))
		return nil
	},
}
