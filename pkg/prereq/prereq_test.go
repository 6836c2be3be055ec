package prereq

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/proc"
)

// racingReaper is a proc.Reaper that runs a reap pass at the worst moment: after the child has
// exited (a zombie) and before its Wait. A child it does not own is reaped then, and Wait fails
// with ECHILD, which is what the supervisor's reaper did to the draw check's python3.
type racingReaper struct {
	*proc.Reaper
	waits int
}

func (r *racingReaper) Wait(cmd *exec.Cmd) error {
	r.waits++
	pid := cmd.Process.Pid
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		if f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			break
		}
	}
	r.ReapOnce()
	return r.Reaper.Wait(cmd)
}

func TestMissingModulesWithReaper(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 missing")
	}
	mods := []Module{{Name: "os", Package: "python3"}, {Name: "no_such_module_ffl", Package: "nothing"}}
	r := &racingReaper{Reaper: proc.NewReaper()}
	missing, err := MissingModulesWith(context.Background(), r, []string{py}, mods)
	if err != nil {
		t.Fatalf("with a reaper reaping between exit and wait: %v", err)
	}
	if r.waits != 1 {
		t.Errorf("the interpreter ran %d times through the runner, want 1", r.waits)
	}
	if len(missing) != 1 || missing[0].Name != "no_such_module_ffl" {
		t.Errorf("missing = %v, want [no_such_module_ffl]", missing)
	}
}
