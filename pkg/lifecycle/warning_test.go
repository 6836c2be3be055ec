package lifecycle

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// TestSqueueJobEnd: the time limit is squeue's %e (local time); "Unknown", errors, no squeue
// and jobs Slurm does not know (local-<pid>) mean no warning is scheduled.
func TestSqueueJobEnd(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name, script, job, want string
	}{
		{"time limit", "echo 2026-12-06T03:05:00", "12", "2026-12-06T03:05:00"},
		{"unlimited", "echo Unknown", "12", ""},
		{"error", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", "12", ""},
		{"local job", "echo 2026-12-06T03:05:00", "local-5", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "squeue"), []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755), "squeue")
			end, ok := SqueueJobEnd(nil, dir)(ctx, tt.job)
			got := ""
			if ok {
				got = end.Format("2006-01-02T15:04:05")
			}
			if got != tt.want || (ok && end.Location() != time.Local) {
				t.Errorf("end = %q (%v), want %q in local time", got, end.Location(), tt.want)
			}
		})
	}
	if _, ok := SqueueJobEnd(nil, t.TempDir())(ctx, "12"); ok {
		t.Error("an end time without squeue")
	}
	// In the supervisor a Reaper runs: squeue goes through it, and a reap pass between its exit
	// and its Wait (the worst moment) leaves the answer alone.
	dir := t.TempDir()
	script := "#!/bin/sh\ncase \"$5\" in %T) echo COMPLETED;; *) echo 2026-12-06T03:05:00;; esac\n"
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "squeue"), []byte(script), 0o755), "squeue")
	r := reapBeforeWait{proc.NewReaper()}
	if _, ok := SqueueJobEnd(r, dir)(ctx, "12"); !ok {
		t.Error("squeue's end time lost to a reap pass")
	}
	if SqueueJobLive(r, dir)(ctx, "12") {
		t.Error("squeue's COMPLETED lost to a reap pass")
	}
}

// reapBeforeWait runs a reap pass after the child has exited (a zombie) and before its Wait: a
// child the Reaper does not own is reaped then, and Wait fails with ECHILD.
type reapBeforeWait struct{ *proc.Reaper }

func (r reapBeforeWait) Wait(cmd *exec.Cmd) error {
	testutil.Eventually(10*time.Second, func() bool {
		st, err := proc.ReadStat(cmd.Process.Pid)
		return err != nil || st.State == 'Z'
	})
	r.ReapOnce()
	return r.Reaper.Wait(cmd)
}

// TestWarningText: the warning says when, why and where the downloads are.
func TestWarningText(t *testing.T) {
	end := time.Now().Add(10*time.Minute + 5*time.Second)
	title, body := warningText(end, "the Slurm job reaches its time limit", "/home/u/Downloads")
	for _, want := range []string{WarningTitle + " at " + end.Format("15:04") + " (in about 10 minutes)", "Downloads: /home/u/Downloads"} {
		if !strings.Contains(title, want) {
			t.Errorf("title %q lacks %q", title, want)
		}
	}
	for _, want := range []string{"time limit", "/home/u/Downloads", "NAME.partial"} {
		if !strings.Contains(body, want) {
			t.Errorf("body %q lacks %q", body, want)
		}
	}
	if title, _ := warningText(time.Time{}, "x", ""); title != WarningTitle+" soon" {
		t.Errorf("unknown end: title %q", title)
	}
}
