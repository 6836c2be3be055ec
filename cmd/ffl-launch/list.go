package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

var listCommand = &cli.Command{
	Name:  "list",
	Usage: "list sessions: the supervisor's, or (without one) this user's on this node, live or stale",
	Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "JSON output"}},
	Action: func(c *cli.Context) error {
		e, err := setup(c)
		if err != nil {
			return err
		}
		if sock, err := e.socketPath(); err == nil {
			infos, err := control.NewClient(sock).List(c.Context)
			if err == nil {
				if c.Bool("json") {
					return json.NewEncoder(os.Stdout).Encode(infos)
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "PORT\tNODE\tJOB\tSTATE\tURL\tSSH")
				for _, i := range infos {
					fmt.Fprintf(w, "%d\t%s\t%s\tlive\t%s\t%s\n", i.Port, i.Node, i.Job, i.URL, i.SSH)
				}
				return w.Flush()
			}
			if !errors.Is(err, control.ErrNoSupervisor) {
				return err
			}
		}
		bootID, err := proc.BootID()
		if err != nil {
			return err
		}
		found, err := reclaim.ListSessions(e.layout, bootID)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return json.NewEncoder(os.Stdout).Encode(found)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "PORT\tNODE\tJOB\tSTATE\tREASON\tDIR")
		for _, s := range found {
			state := "stale"
			if s.Live {
				state = "live"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", s.Port, e.layout.Node, s.Job, state, s.Reason, s.RuntimeDir)
		}
		return w.Flush()
	},
}
