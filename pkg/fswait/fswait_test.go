package fswait

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestWatch: each change a start makes (xpra's socket bound in its directory, a line written to
// its log, a file created or moved in) is reported; nothing is reported while nothing changes.
func TestWatch(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, dir, log string)
	}{
		{"a unix socket bound, as xpra does", func(t *testing.T, dir, _ string) {
			l, err := net.Listen("unix", filepath.Join(dir, "ffl.sock"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}},
		{"a line written to the log", func(t *testing.T, _, log string) {
			f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("xpra is ready.\n"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file created", func(t *testing.T, dir, _ string) { touch(t, filepath.Join(dir, "new")) }},
		{"a file moved in", func(t *testing.T, dir, _ string) {
			tmp := filepath.Join(t.TempDir(), "x")
			touch(t, tmp)
			if err := os.Rename(tmp, filepath.Join(dir, "moved")); err != nil {
				t.Fatal(err)
			}
		}},
		{"a dangling symlink made", func(t *testing.T, dir, _ string) {
			if err := os.Symlink(filepath.Join(t.TempDir(), "nothing"), filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "xpra")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(t.TempDir(), "xpra.log")
			touch(t, log)
			w, err := New(dir, log)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			select {
			case <-w.Changed():
				t.Fatal("a change reported before anything changed")
			case <-time.After(100 * time.Millisecond):
			}
			c.change(t, dir, log)
			select {
			case <-w.Changed():
			case <-time.After(30 * time.Second):
				t.Fatal("the change was not reported")
			}
		})
	}
}

// TestWatchPaths: a path that cannot be watched is an error (the caller then looks on a timer),
// and a symlink is watched as itself, never followed to a directory it names.
func TestWatchPaths(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "missing")); err == nil {
		t.Error("New on a missing path: no error")
	}
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	w, err := New(link)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	touch(t, filepath.Join(target, "new"))
	select {
	case <-w.Changed():
		t.Fatal("a change in the directory a symlink names was reported: the symlink was followed")
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWatchClose: the reader of a closed watch ends.
func TestWatchClose(t *testing.T) {
	before := runtime.NumGoroutine()
	w, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before: the watch's reader did not end", n, before)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}
