package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{exitStatus{143}, 143},
		{fmt.Errorf("wrap: %w", exitStatus{130}), 130},
		{fmt.Errorf("x: %w", lifecycle.ErrBadInput), 2},
		{&slurmenv.EnvError{Var: "SLURM_JOB_ID", Value: "x", Reason: "bad"}, 2},
		{fmt.Errorf("load: %w", &config.Error{File: "f", Key: "k", Reason: "r"}), 2},
		{fmt.Errorf("%w: --port", errUsage), 2},
		{fmt.Errorf("%w: xpra", lifecycle.ErrMissing), 3},
		{fmt.Errorf("%w: 8001", lifecycle.ErrNotFound), 4},
		{&control.RemoteError{Msg: "gone", Kind: lifecycle.ErrNotFound}, 4},
		{fmt.Errorf("%w at /x", control.ErrNoSupervisor), 4},
		{errors.New("xpra exited"), 1},
	} {
		if got := report(c.err); got != c.code {
			t.Errorf("report(%v) = %d, want %d", c.err, got, c.code)
		}
	}
}
