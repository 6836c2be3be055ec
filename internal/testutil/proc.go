package testutil

import (
	"os"
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
