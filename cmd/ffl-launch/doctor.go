package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/doctor"
	"github.com/ffl-hpc/ffl/pkg/front"
)

var doctorCommand = &cli.Command{
	Name:      "doctor",
	Usage:     "check this node for what a session needs (a table with the fix for each problem; exit 3 if something is broken)",
	ArgsUsage: "\n\nEXAMPLE:\n   ffl-launch doctor            # on a compute node, e.g. srun ffl-launch doctor",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "slurm-conf", Usage: "slurm.conf to compare with (default: the one the running slurmd reads, else $SLURM_CONF, else /etc/slurm/slurm.conf, else /run/slurm/conf/slurm.conf)"},
		&cli.StringFlag{Name: "slurm-version", Usage: "the Slurm release whose rules apply, e.g. 24.11 (default: slurmd --version)"},
	},
	Action: func(c *cli.Context) error {
		cfg, _, err := config.LoadFromEnv(os.Getenv, c.String("config"))
		if err != nil {
			return err
		}
		if _, err := cfg.ApplyEnv(os.Getenv); err != nil {
			return err
		}
		r := doctor.Run(c.Context, doctor.Options{Config: cfg, Path: os.Getenv("PATH"), SlurmConf: c.String("slurm-conf"), SlurmVersion: c.String("slurm-version")})
		peerCheck(&r, cfg.BindAddress)
		if err := r.Write(os.Stdout); err != nil {
			return err
		}
		if r.Failed() {
			return exitStatus{exitMissing}
		}
		return nil
	},
}

// peerCheck: the kernel tells who is at the other end of a loopback connection (what a
// session's port admits clients by).
func peerCheck(r *doctor.Report, addr string) {
	const name = "peer check"
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		r.Add(name, doctor.Fail, err.Error(), "bind_address must be an address of this node")
		return
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		acc <- c
	}()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		r.Add(name, doctor.Fail, err.Error(), "check the loopback interface")
		return
	}
	defer c.Close()
	sc := <-acc
	if sc == nil {
		r.Add(name, doctor.Fail, "accept failed", "check the loopback interface")
		return
	}
	defer sc.Close()
	uid, err := front.PeerUID(sc.LocalAddr().(*net.TCPAddr), sc.RemoteAddr().(*net.TCPAddr))
	if err != nil || uid != os.Getuid() {
		r.Add(name, doctor.Fail, fmt.Sprintf("sock_diag answered uid %d, %v", uid, err), "load the inet_diag and tcp_diag kernel modules")
		return
	}
	r.Add(name, doctor.Pass, "the kernel identifies local clients' uid (sessions need no password)", "")
}
