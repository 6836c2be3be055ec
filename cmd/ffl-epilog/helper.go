package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

// helperCommand is the privilege-dropped side of the Epilog and the sweep: the root process
// re-executes this binary as the job's user with one JSON argument (reclaim.HelperRequest) and
// reads one JSON result from stdout. Not for humans.
var helperCommand = &cli.Command{
	Name:      "helper",
	Usage:     "internal: the part of the cleanup that runs as the user",
	ArgsUsage: "REQUEST",
	Hidden:    true,
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return fmt.Errorf("%w: helper takes exactly one REQUEST", errUsage)
		}
		return reclaim.ServeHelper(c.Args().First(), os.Stdout)
	},
}
