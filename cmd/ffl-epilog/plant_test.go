package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/hostile/htest"
	"github.com/ffl-hpc/ffl/internal/testutil"
)

// TestDoctorRunsNoPlantedCode: root runs `ffl-epilog doctor` from a directory another user
// could write (as an admin does from /tmp or a user's project), with PYTHONPATH and
// PYTHONSTARTUP pointing at more planted modules. The import check of xpra's Python must import
// the real PIL and lz4 and never the planted ones: no planted file ran, as root or anyone, and
// the doctor still reports that xpra can draw.
func TestDoctorRunsNoPlantedCode(t *testing.T) {
	testutil.RequireRoot(t)
	xpra, err := exec.LookPath("xpra")
	if err != nil {
		t.Skip("xpra not installed: the import check runs xpra's interpreter")
	}
	h := newHarness(t, "")
	plant := htest.NewPlant(t, testutil.SharedDir(t))
	testutil.Must(t, os.Chown(plant.Dir, h.other.uid, h.other.gid)) // another user's directory

	// The trap is live: Python as the doctor ran it before (-c, in the caller's directory)
	// imports the planted lz4.py.
	probe := exec.Command("/usr/bin/python3", "-c", "import lz4")
	probe.Dir, probe.Env = plant.Dir, []string{"PATH=/usr/bin:/bin"}
	_ = probe.Run()
	if ran := plant.Ran(t); len(ran) == 0 {
		t.Fatal("the planted lz4.py did not run under a plain python3 -c: the trap is not armed")
	}
	testutil.Must(t, os.RemoveAll(plant.Markers))
	testutil.Must(t, os.RemoveAll(filepath.Join(plant.Dir, "__pycache__")))
	testutil.Must(t, os.Mkdir(plant.Markers, 0o777))
	testutil.Must(t, os.Chmod(plant.Markers, 0o777))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, epilogBin, "--config", h.conf, "--x-dir", h.xdir, "doctor")
	cmd.Dir = plant.Dir
	cmd.Env = append([]string{"PATH=" + plant.Dir + ":/usr/local/bin:/usr/bin:/bin", "HOME=/root"}, plant.Env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run() // the node's Slurm checks may fail here; what matters is what ran
	t.Logf("ffl-epilog doctor (xpra %s):\n%s", xpra, out.String())
	plant.AssertNothingRan(t, "ffl-epilog doctor as root")
	for _, want := range []string{"python: PIL.Image", "python: lz4"} {
		line := lineWith(out.String(), want)
		if !strings.Contains(line, "pass") {
			t.Errorf("doctor: %q line %q: want pass (the real module imports)", want, line)
		}
	}
	if _, err := os.Stat(filepath.Join(plant.Dir, "__pycache__")); err == nil {
		t.Error("a __pycache__ appeared in the planted directory: something imported from it")
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
