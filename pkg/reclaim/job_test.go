package reclaim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
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

func TestNodeLocalUsage(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		setup func(job string)
		used  bool
	}{
		{"nothing", func(string) {}, false},
		{"empty prolog dir", func(job string) { testutil.MkdirAs(t, filepath.Join(f.Runtime, "job-"+job), f.User, 0o700) }, false},
		{"prolog dir with junk", func(job string) {
			d := filepath.Join(f.Runtime, "job-"+job)
			testutil.MkdirAs(t, d, f.User, 0o700)
			testutil.WriteAs(t, filepath.Join(d, "junk"), f.User, nil)
		}, false},
		{"session dir", func(job string) {
			testutil.MkdirAs(t, filepath.Join(f.Runtime, "job-"+job, "session-8001"), f.User, 0o700)
		}, true},
		{"supervisor in fallback", func(job string) {
			d := filepath.Join(f.Temp, layout.UserTempName(f.User.UID), "job-"+job)
			testutil.MkdirAs(t, d, f.User, 0o700)
			testutil.WriteAs(t, filepath.Join(d, layout.SupervisorFile), f.User, []byte("{}"))
		}, true},
		{"symlink as job dir", func(job string) {
			testutil.Must(t, os.Symlink("/etc", filepath.Join(f.Runtime, "job-"+job)))
		}, true},
		// Another user's squat alone keeps the fast path (a user must not send every Epilog of
		// the victim down the slow one); a session in a private parent under the squat does not.
		{"foreign ffl-uid", func(job string) {
			d := filepath.Join(f.Temp, layout.UserTempName(f.User.UID))
			testutil.MkdirAs(t, filepath.Join(d, "job-"+job), f.Other, 0o700)
		}, false},
		{"foreign ffl-uid, session in a private parent", func(job string) {
			d := filepath.Join(f.Temp, layout.UserTempName(f.User.UID))
			testutil.MkdirAs(t, filepath.Join(d, "job-"+job), f.Other, 0o700)
			p := filepath.Join(f.Temp, layout.PrivateTempName(f.User.UID, "00112233445566ff"))
			os.RemoveAll(p)
			t.Cleanup(func() { os.RemoveAll(p) })
			testutil.MkdirAs(t, p, f.User, 0o700)
			testutil.MkdirAs(t, filepath.Join(p, "job-"+job), f.User, 0o700)
			testutil.MkdirAs(t, filepath.Join(p, "job-"+job, "session-8001"), f.User, 0o700)
		}, true},
		{"crowded", func(job string) {
			d := filepath.Join(f.Runtime, "job-"+job)
			testutil.MkdirAs(t, d, f.User, 0o700)
			for i := 0; i < 100; i++ {
				testutil.WriteAs(t, filepath.Join(d, fmt.Sprintf("f%d", i)), f.User, nil)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := fmt.Sprintf("4%d", len(tc.name))
			os.RemoveAll(filepath.Join(f.Runtime, "job-"+job))
			os.RemoveAll(filepath.Join(f.Temp, layout.UserTempName(f.User.UID)))
			tc.setup(job)
			used, why := NodeLocalUsage(f.Layout(f.User, job))
			if used != tc.used {
				t.Errorf("used = %v (%s), want %v", used, why, tc.used)
			}
		})
	}
}
