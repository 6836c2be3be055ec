package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/proc"
)

// WaitGone waits (generously) until every identity is gone, and fails naming the survivors.
func WaitGone(t testing.TB, ids []proc.Identity) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var alive []proc.Identity
		for _, id := range ids {
			if id.Alive() {
				alive = append(alive, id)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still alive: %v", alive)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AssertAlive fails for every identity that is gone: a cleanup must not have ended it.
func AssertAlive(t testing.TB, what string, ids []proc.Identity) {
	t.Helper()
	for _, id := range ids {
		if !id.Alive() {
			t.Errorf("%s: %s was ended, but must not have been", what, id)
		}
	}
}

// Exists reports whether p exists (without following a final symlink).
func Exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// Owner is a test account files are made for (testutil.User and the packages' own test users).
type Owner interface {
	IDs() (uid, gid int)
}

// IDs returns u's uid and gid.
func (u User) IDs() (int, int) { return u.UID, u.GID }

// MkdirAs creates every missing directory of path, owned by o, with mode (existing ones stay).
func MkdirAs(t testing.TB, path string, o Owner, mode os.FileMode) {
	t.Helper()
	uid, gid := o.IDs()
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		missing = append([]string{p}, missing...)
	}
	for _, p := range missing {
		Must(t, os.Mkdir(p, mode), "mkdir %s", p)
		Must(t, os.Chown(p, uid, gid), "chown %s", p)
		Must(t, os.Chmod(p, mode), "chmod %s", p)
	}
}

// WriteAs writes a 0600 file owned by o.
func WriteAs(t testing.TB, path string, o Owner, data []byte) {
	t.Helper()
	uid, gid := o.IDs()
	Must(t, os.WriteFile(path, data, 0o600), "write %s", path)
	Must(t, os.Chown(path, uid, gid), "chown %s", path)
}

// SymlinkAs plants a symlink owned by o (what a hostile user can do in their own tree).
func SymlinkAs(t testing.TB, target, path string, o Owner) {
	t.Helper()
	uid, gid := o.IDs()
	Must(t, os.Symlink(target, path), "symlink %s", path)
	Must(t, os.Lchown(path, uid, gid), "lchown %s", path)
}
