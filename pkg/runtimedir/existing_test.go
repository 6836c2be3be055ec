package runtimedir

import (
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// TestExistingSkipsForeign: the job dirs a launcher looks in for its supervisor's socket and
// for leftovers of an earlier run are the user's only: another user's job dir in the runtime
// root, and a squatted <temp>/ffl-<uid> with a job dir of the victim's job planted in it, are
// skipped; the user's own dirs are listed.
func TestExistingSkipsForeign(t *testing.T) {
	testutil.RequireRoot(t)
	u, o := testutil.TestUser(t, "ffltest1"), testutil.TestUser(t, "ffltest2")
	temp, runtime := world(t)
	l := lay(u, temp, runtime, "78")
	testutil.MkdirAs(t, l.PreferredRuntimeJobDir(), o, 0o755)
	testutil.MkdirAs(t, l.FallbackRuntimeParent(), o, 0o755)
	testutil.MkdirAs(t, l.FallbackRuntimeJobDir(), o, 0o755)
	if got := Existing(l); len(got) != 0 {
		t.Errorf("Existing = %v: another user's dirs listed", got)
	}
	private := filepath.Join(temp, layout.PrivateTempName(u.UID, "0123456789abcdef"))
	testutil.MkdirAs(t, private, u, 0o700)
	testutil.MkdirAs(t, filepath.Join(private, layout.JobDirName("78")), u, 0o700)
	if got := Existing(l); len(got) != 1 || got[0] != filepath.Join(private, layout.JobDirName("78")) {
		t.Errorf("Existing = %v, want the user's private job dir alone", got)
	}
}
