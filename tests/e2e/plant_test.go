package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/hostile/htest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// plantedCommand is e.command run from a directory another user planted Python modules in (a
// group-writable project directory), with that user's PYTHONPATH and PYTHONSTARTUP in the
// environment and the planted directory first on PATH.
func plantedCommand(e *env, plant htest.Plant, args ...string) *exec.Cmd {
	cmd := e.command(args...)
	cmd.Dir = plant.Dir
	for i, v := range cmd.Env {
		if strings.HasPrefix(v, "PATH=") {
			cmd.Env[i] = "PATH=" + plant.Dir + ":.::" + strings.TrimPrefix(v, "PATH=")
		}
	}
	cmd.Env = append(cmd.Env, plant.Env...)
	return cmd
}

// newPlant makes the planted directory, owned by another user and writable by everyone.
func newPlant(t *testing.T) htest.Plant {
	plant := htest.NewPlant(t, testutil.SharedDir(t))
	other := testutil.TestUser(t, "ffltest2")
	testutil.Must(t, os.Chown(plant.Dir, other.UID, other.GID))
	return plant
}

// TestLaunchDoctorRunsNoPlantedCode: `ffl-launch doctor` from a planted directory imports the
// real PIL and lz4 (the doctor says xpra can draw) and runs no planted module as the user.
func TestLaunchDoctorRunsNoPlantedCode(t *testing.T) {
	require(t, "xpra", "firefox-esr")
	e := newEnv(t, "ffltest", "9301", nil)
	plant := newPlant(t)
	var out bytes.Buffer
	cmd := plantedCommand(e, plant, "doctor")
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // checks of the node (the X dir, Slurm) may fail here; what matters is what ran
	t.Logf("ffl-launch doctor:\n%s", out.String())
	plant.AssertNothingRan(t, "ffl-launch doctor")
	for _, want := range []string{"python: PIL.Image", "python: lz4"} {
		found := false
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, want) {
				found = true
				if !strings.Contains(l, "pass") {
					t.Errorf("doctor: %q: want pass (the real module imports)", l)
				}
			}
		}
		if !found {
			t.Errorf("doctor printed no %q line", want)
		}
	}
}

// TestRunRunsNoPlantedCode: `ffl-launch run` started in a planted directory checks that xpra
// can draw, starts a real session whose Firefox paints, and no planted module ran as the user.
func TestRunRunsNoPlantedCode(t *testing.T) {
	require(t, "xpra", "firefox-esr")
	e := newEnv(t, "ffltest", "9302", nil)
	plant := newPlant(t)
	cmd := plantedCommand(e, plant, "run", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	testutil.Must(t, err)
	testutil.Must(t, cmd.Start())
	done := make(chan struct{})
	infos := make(chan lifecycle.Info, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var info lifecycle.Info
			if json.Unmarshal(sc.Bytes(), &info) == nil && info.Port != 0 {
				infos <- info
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	select {
	case info := <-infos:
		t.Logf("session ready on port %d (window_ms=%d)", info.Port, info.WindowMS)
		if code := httpAs(e.user, info.URL); code != 200 {
			t.Errorf("the owner got HTTP %d from the session, want 200", code)
		}
	case <-done:
		t.Fatalf("ffl-launch run exited before a session was ready: %v\n%s", cmd.ProcessState, stderr.String())
	case <-time.After(120 * time.Second):
		t.Fatalf("no session within 120 s\n%s", stderr.String())
	}
	plant.AssertNothingRan(t, "ffl-launch run")
}
