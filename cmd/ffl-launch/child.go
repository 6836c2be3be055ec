package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// startChild starts the wrapped command (e.g. jupyterhub-singleuser) in its own process group with
// the supervisor's socket in its environment. Its stdio is the launcher's own: it is the job's
// real work and its output belongs in the job log.
func startChild(r *proc.Reaper, args []string, sock string) (*exec.Cmd, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), control.EnvSocket+"="+sock)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.Start(cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// waitStatus waits for the command and returns its exit status the shell way (128+N by signal).
func waitStatus(cmd *exec.Cmd) int {
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exitSignalBase + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return exitFailure
}

// endChild forwards sig to the wrapped command's process group, waits up to grace (or until ctx
// is cancelled by a second signal), then KILLs the group.
func endChild(ctx context.Context, cmd *exec.Cmd, done <-chan int, sig syscall.Signal, grace time.Duration) {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		// The leader is gone; end what it left in its group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return
	case <-t.C:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
	}
}
