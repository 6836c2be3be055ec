// Package ffprofile is what ffl's tests and bench know of the files Firefox writes in a profile
// on its own schedule, so that what they measure or assert is ffl's doing, not a race with
// Firefox's writes.
package ffprofile

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// StartupCacheDir and StartupCacheName name Firefox's startup cache below a profile (a 64-bit
// little-endian build's).
const (
	StartupCacheDir  = "startupCache"
	StartupCacheName = "startupCache.8.little"
)

// pollEvery and settled: how often the cache is looked at, and how long it must stay unchanged.
const (
	pollEvery = 100 * time.Millisecond
	settled   = time.Second
)

// StartupCache stats profile's startup cache. Its dir is opened without following a symlink a
// user could plant and must be uid's: the callers run as root in a test user's home.
func StartupCache(profile string, uid int) (safefs.Info, error) {
	d, err := safefs.OpenTrustedOwned(filepath.Join(profile, StartupCacheDir), uid)
	if err != nil {
		return safefs.Info{}, err
	}
	defer d.Close()
	return safefs.LstatAt(d, StartupCacheName)
}

// WaitStartupCache waits, up to limit, until Firefox has written profile's startup cache, and
// returns the file's info and how long the wait took. Firefox writes that file once, in place
// (opened with O_TRUNC, no rename), after its idle start-up tasks: 1-2 s after its window here,
// on a 60 s timer at the latest. A session ended in the middle of the write leaves a truncated
// file that the next start finds corrupt and removes (130 KB and 2.7 MB of 4.9 MB, stopped 850
// and 950 ms after ready), so that start builds the cache again, as a first one does. Written
// means: a regular file, not empty, whose inode, size and time have not changed for a second
// (looked at with StartupCache).
func WaitStartupCache(profile string, uid int, limit time.Duration) (safefs.Info, time.Duration, error) {
	dir := filepath.Join(profile, StartupCacheDir)
	start := time.Now()
	var last safefs.Info
	var since time.Time
	for deadline := start.Add(limit); time.Now().Before(deadline); time.Sleep(pollEvery) {
		fi, err := StartupCache(profile, uid)
		switch {
		case err != nil || !fi.IsRegular() || fi.Size == 0:
			last = safefs.Info{}
		case fi.Ino != last.Ino || fi.Size != last.Size || !fi.Mtime.Equal(last.Mtime):
			last, since = fi, time.Now()
		case time.Since(since) >= settled:
			return fi, time.Since(start), nil
		}
	}
	state := "no such file, or an empty one"
	if last.Ino != 0 {
		state = fmt.Sprintf("still changing, %d bytes", last.Size)
	}
	return safefs.Info{}, time.Since(start), fmt.Errorf("Firefox's startup cache %s was not written within %s: %s", filepath.Join(dir, StartupCacheName), limit, state)
}
