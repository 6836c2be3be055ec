package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/control"
)

var stopCommand = &cli.Command{
	Name:      "stop",
	Usage:     "stop one session of this job (the others keep running)",
	ArgsUsage: "PORT\n\nEXAMPLE:\n   ffl-launch stop 8001",
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return fmt.Errorf("%w: stop needs exactly one PORT (see 'ffl-launch list')", errUsage)
		}
		port, err := strconv.Atoi(c.Args().First())
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("%w: PORT %q: not a port number (1-65535)", errUsage, c.Args().First())
		}
		e, err := setup(c)
		if err != nil {
			return err
		}
		sock, err := e.socketPath()
		if err != nil {
			return err
		}
		if err := control.NewClient(sock).Stop(c.Context, port); err != nil {
			return err
		}
		fmt.Printf("ffl: session on port %d stopped\n", port)
		return nil
	},
}
