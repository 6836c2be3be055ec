package safefs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// TestOpenTrusted: a symlink root made in a directory only root can write is followed (admins
// link /home to /nfs/home); the same symlink in a user's or a world-writable directory is not.
func TestOpenTrusted(t *testing.T) {
	testutil.RequireRoot(t, "the trusted symlinks are root's, the planted ones another uid's")
	root := t.TempDir()
	target := filepath.Join(root, "target")
	testutil.Must(t, os.Mkdir(target, 0o755))
	testutil.Must(t, os.Symlink(target, filepath.Join(root, "rootlink")))
	d, err := OpenTrusted(filepath.Join(root, "rootlink"))
	if err != nil {
		t.Fatalf("root's symlink refused: %v", err)
	}
	d.Close()
	// Relative targets and chains work too.
	testutil.Must(t, os.Symlink("rootlink", filepath.Join(root, "chain")))
	if d, err := OpenTrusted(filepath.Join(root, "chain")); err != nil {
		t.Errorf("chain refused: %v", err)
	} else {
		d.Close()
	}
	userDir := filepath.Join(root, "userdir")
	testutil.Must(t, os.Mkdir(userDir, 0o755))
	testutil.Must(t, os.Chown(userDir, otherUID, otherUID))
	testutil.Must(t, os.Symlink(target, filepath.Join(userDir, "link")))
	shared := filepath.Join(root, "shared")
	testutil.Must(t, os.Mkdir(shared, 0o755))
	testutil.Must(t, os.Chmod(shared, 0o777|os.ModeSticky))
	testutil.Must(t, os.Symlink(target, filepath.Join(shared, "link")))
	for _, p := range []string{filepath.Join(userDir, "link"), filepath.Join(shared, "link"), filepath.Join(userDir, "link", "x")} {
		if d, err := OpenTrusted(p); err == nil {
			d.Close()
			t.Errorf("%s: followed a symlink a user could have planted", p)
		}
	}
	// A loop ends.
	testutil.Must(t, os.Symlink("loop", filepath.Join(root, "loop")))
	if d, err := OpenTrusted(filepath.Join(root, "loop")); err == nil {
		d.Close()
		t.Error("symlink loop opened")
	}
}
