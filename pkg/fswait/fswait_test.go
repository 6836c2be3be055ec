package fswait

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestExists: each way a path appears wakes the wait, with no look on a timer (poll and the
// safety look are set beyond the test's deadline, so only the directory's report can end it).
func TestExists(t *testing.T) {
	cases := []struct {
		name   string
		before func(t *testing.T, path string) // run before the wait; nil: nothing
		appear func(t *testing.T, path string) // run while it waits; nil: nothing
	}{
		{name: "there already", before: touch},
		{name: "created", appear: touch},
		{name: "a unix socket bound, as xpra does", appear: func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { l.Close() })
		}},
		{name: "moved in", appear: func(t *testing.T, path string) {
			tmp := filepath.Join(t.TempDir(), "x")
			touch(t, tmp)
			if err := os.Rename(tmp, path); err != nil {
				t.Error(err)
			}
		}},
		{name: "a dangling symlink counts as itself", appear: func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(t.TempDir(), "nothing"), path); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "ffl.sock")
			touch(t, filepath.Join(dir, "other")) // an entry that is not the path
			if c.before != nil {
				c.before(t, path)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c.appear != nil {
				go func() {
					time.Sleep(50 * time.Millisecond)
					touch(t, filepath.Join(dir, "unrelated")) // a report that is not the path
					c.appear(t, path)
				}()
			}
			if err := exists(ctx, path, time.Hour, time.Hour); err != nil {
				t.Fatalf("exists: %v", err)
			}
		})
	}
}

// TestExistsEnds: a path that never appears ends with the context's cause, and the watch's
// reader ends with the wait.
func TestExistsEnds(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	stop := errors.New("the start was given up")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(stop) })
	if err := exists(ctx, filepath.Join(dir, "ffl.sock"), time.Hour, time.Hour); !errors.Is(err, stop) {
		t.Fatalf("exists = %v, want the context's cause %v", err, stop)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the wait, %d before: the watch's reader did not end", n, before)
	}
}

// TestExistsUnwatched: where the directory cannot be watched (it does not exist yet), the
// wait looks every poll and still sees the path when it comes.
func TestExistsUnwatched(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "later")
	path := filepath.Join(dir, "ffl.sock")
	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Error(err)
			return
		}
		touch(t, path)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exists(ctx, path, 5*time.Millisecond, time.Hour); err != nil {
		t.Fatalf("exists: %v", err)
	}
}

// TestExistsNotADirectory: a path whose parent is a file is an error at once, not a wait.
func TestExistsNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	touch(t, file)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exists(ctx, filepath.Join(file, "ffl.sock"), time.Hour, time.Hour); err == nil || ctx.Err() != nil {
		t.Fatalf("exists under a file = %v (context: %v), want an error at once", err, ctx.Err())
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Error(err)
	}
}
