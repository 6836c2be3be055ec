// Package fswait waits for a path to appear, woken by the kernel (inotify on the path's
// directory) instead of looking every few milliseconds: a look costs little, but a wait of
// seconds made of them does not (measured: a dial of a missing unix socket every 2 ms took
// about 68 ms of CPU per second of waiting, timer wake-ups included), and the waits that
// matter here are a session's start on a node busy with other starts.
package fswait

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// safetyLook is the longest time between two looks while the directory is watched: a
// watch reports every new entry, so this only bounds what an unforeseen miss could cost.
const safetyLook = 250 * time.Millisecond

// Exists returns once path exists (lstat: a symlink counts as itself, never followed), or
// ctx's cause when ctx ends first. It looks again whenever path's directory reports a new
// entry (created, or moved in). Where the directory cannot be watched (no inotify, too many
// watches, the directory missing) it looks every poll instead.
func Exists(ctx context.Context, path string, poll time.Duration) error {
	return exists(ctx, path, poll, safetyLook)
}

// exists is Exists with the safety look's interval as a parameter (the tests set it beyond
// their deadline, so only a reported event can end their wait).
func exists(ctx context.Context, path string, poll, safety time.Duration) error {
	w, werr := watchDir(filepath.Dir(path))
	if werr == nil {
		defer w.close()
	}
	for {
		if _, err := os.Lstat(path); err == nil {
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		look := poll
		var changed <-chan struct{}
		if werr == nil {
			look, changed = safety, w.changed
		}
		t := time.NewTimer(look)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// dirWatch is an inotify watch of one directory for new entries; changed receives (coalesced)
// after each batch of events.
type dirWatch struct {
	f       *os.File
	changed chan struct{}
}

func watchDir(dir string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR|unix.IN_DONT_FOLLOW); err != nil {
		_ = unix.Close(fd)
		return nil, &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	// A non-blocking descriptor in an *os.File waits in Go's poller, and close ends that wait.
	w := &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), changed: make(chan struct{}, 1)}
	go w.pump()
	return w, nil
}

// pump turns the watch's events into receives on changed until the watch is closed. What the
// events say is not needed: the caller looks at the path itself.
func (w *dirWatch) pump() {
	buf := make([]byte, 4096)
	for {
		if _, err := w.f.Read(buf); err != nil {
			return
		}
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func (w *dirWatch) close() { _ = w.f.Close() }
