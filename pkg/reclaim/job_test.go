package reclaim

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// TestJobEndsExactlyItsJob: what the launcher calls for an earlier run of its own job.
func TestJobEndsExactlyItsJob(t *testing.T) {
	f := newFixture(t)
	s := f.Leftovers("111", "112")
	before := testutil.Snapshot(t, f.Root)
	rep, err := Job(context.Background(), f.Layout(f.User, "111"), testOpts(f))
	t.Logf("report: %+v, err: %v", rep, err)
	s.Check(t, f)
	if rep.Sessions != 2 || rep.Termed < 6 || rep.Killed < 2 || rep.Left != 0 {
		t.Errorf("report: want 2 sessions, >= 6 TERMs, >= 2 KILLs (TERM-ignoring children), 0 left: %+v", rep)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, f.Root), s.ARuntime, filepath.Join(f.XDir, ".X4201-lock"), filepath.Join(f.XDir, ".X11-unix", "X4201"))
	rep, err = Job(context.Background(), f.Layout(f.User, "111"), testOpts(f))
	if err != nil || rep.Termed != 0 || rep.Dirs != 0 {
		t.Errorf("second run: %+v, %v", rep, err)
	}
}
