package runtimedir

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// TestJobUsed: the Epilog's fast path (JobUsed) says unused only where no session or record of
// the job can be, and used (the slow path looks closely) for anything unexpected.
func TestJobUsed(t *testing.T) {
	testutil.RequireRoot(t)
	u, o := testutil.TestUser(t, "ffltest1"), testutil.TestUser(t, "ffltest2")
	temp, runtime := world(t)
	for _, tc := range []struct {
		name  string
		setup func(job string)
		used  bool
	}{
		{"nothing", func(string) {}, false},
		{"empty prolog dir", func(job string) { testutil.MkdirAs(t, filepath.Join(runtime, "job-"+job), u, 0o700) }, false},
		{"prolog dir with junk", func(job string) {
			d := filepath.Join(runtime, "job-"+job)
			testutil.MkdirAs(t, d, u, 0o700)
			testutil.WriteAs(t, filepath.Join(d, "junk"), u, nil)
		}, false},
		{"session dir", func(job string) {
			testutil.MkdirAs(t, filepath.Join(runtime, "job-"+job, "session-8001"), u, 0o700)
		}, true},
		{"supervisor in fallback", func(job string) {
			d := filepath.Join(temp, layout.UserTempName(u.UID), "job-"+job)
			testutil.MkdirAs(t, d, u, 0o700)
			testutil.WriteAs(t, filepath.Join(d, layout.SupervisorFile), u, []byte("{}"))
		}, true},
		{"symlink as job dir", func(job string) {
			testutil.Must(t, os.Symlink("/etc", filepath.Join(runtime, "job-"+job)))
		}, true},
		// Another user's squat alone keeps the fast path (a user must not send every Epilog of
		// the victim down the slow one); a session in a private parent under the squat does not.
		{"foreign ffl-uid", func(job string) {
			d := filepath.Join(temp, layout.UserTempName(u.UID))
			testutil.MkdirAs(t, filepath.Join(d, "job-"+job), o, 0o700)
		}, false},
		{"foreign ffl-uid, session in a private parent", func(job string) {
			d := filepath.Join(temp, layout.UserTempName(u.UID))
			testutil.MkdirAs(t, filepath.Join(d, "job-"+job), o, 0o700)
			p := filepath.Join(temp, layout.PrivateTempName(u.UID, "00112233445566ff"))
			os.RemoveAll(p)
			t.Cleanup(func() { os.RemoveAll(p) })
			testutil.MkdirAs(t, p, u, 0o700)
			testutil.MkdirAs(t, filepath.Join(p, "job-"+job), u, 0o700)
			testutil.MkdirAs(t, filepath.Join(p, "job-"+job, "session-8001"), u, 0o700)
		}, true},
		{"crowded", func(job string) {
			d := filepath.Join(runtime, "job-"+job)
			testutil.MkdirAs(t, d, u, 0o700)
			for i := 0; i < 100; i++ {
				testutil.WriteAs(t, filepath.Join(d, fmt.Sprintf("f%d", i)), u, nil)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := fmt.Sprintf("4%d", len(tc.name))
			os.RemoveAll(filepath.Join(runtime, "job-"+job))
			os.RemoveAll(filepath.Join(temp, layout.UserTempName(u.UID)))
			tc.setup(job)
			used, why := JobUsed(lay(u, temp, runtime, job))
			if used != tc.used {
				t.Errorf("used = %v (%s), want %v", used, why, tc.used)
			}
		})
	}
}
