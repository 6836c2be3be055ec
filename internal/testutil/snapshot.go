package testutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Snapshot records every entry below the roots (type, mode, owner, size, mtime, link target),
// to prove later with AssertUnchanged that a cleanup changed nothing outside what it was meant
// to remove.
func Snapshot(t testing.TB, roots ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				out[p] = "error: " + err.Error()
				return nil
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(p, &st); err != nil {
				out[p] = "gone"
				return nil
			}
			desc := fmt.Sprintf("mode=%o uid=%d", st.Mode, st.Uid)
			if d.IsDir() {
				desc = "dir " + desc // its entries are listed themselves
			} else {
				desc += fmt.Sprintf(" size=%d mtime=%d", st.Size, st.Mtim.Nano())
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				desc += " -> " + target
			}
			out[p] = desc
			return nil
		})
	}
	return out
}

// AssertUnchanged compares two snapshots, ignoring every path at or below one of allowed (what
// the cleanup was meant to remove).
func AssertUnchanged(t testing.TB, before, after map[string]string, allowed ...string) {
	t.Helper()
	inAllowed := func(p string) bool {
		for _, a := range allowed {
			if p == a || strings.HasPrefix(p, a+"/") {
				return true
			}
		}
		return false
	}
	n := 0
	for p, b := range before {
		if inAllowed(p) {
			continue
		}
		if a, ok := after[p]; !ok {
			t.Errorf("%q was removed (it is outside the job's subtree)", p)
			n++
		} else if a != b {
			t.Errorf("%q changed: %s -> %s", p, b, a)
			n++
		}
		if n > 20 {
			t.Fatal("too many differences")
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !inAllowed(p) {
			t.Errorf("%q appeared", p)
		}
	}
}
