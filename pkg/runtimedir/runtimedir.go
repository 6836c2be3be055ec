// Package runtimedir chooses and prepares a job's node-local runtime directory, for the Prolog
// (root), the launcher (the job's user) and the cleanup that must find it again:
//
//   - <runtime_dir>/job-<key>: made by ffl-prolog as root, inside a root-owned directory, so no
//     other user can squat it. Preferred whenever it exists.
//   - <temp_dir>/ffl-<uid>/job-<key>: the fallback without a Prolog, in the user's own 0700
//     parent in a world-writable, sticky temp dir.
//   - <temp_dir>/ffl-<uid>.<16 random hex>/job-<key>: when another user has created
//     <temp_dir>/ffl-<uid> first (sticky /tmp: the victim can neither use nor remove it), the
//     launcher makes a private parent with a name nobody can predict, so no user can deny
//     another a session.
//
// The cleanup finds the first two with a few lstat calls. The private parents it finds by
// listing temp_dir, which it does only where a squat is seen (<temp>/ffl-<uid> exists but is
// not the user's directory): the Epilog's fast path for jobs that never used ffl stays a few
// lstat calls. A squatter who removes its plant after the victim's launcher started hides the
// victim's private parent from the Epilog's cheap look; the sweep, which always lists
// temp_dir, removes it (see docs/EPILOG.md).
package runtimedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Modes of the node-local directories.
const (
	// RootMode is the runtime root: root's, everyone may enter, nobody else may write.
	RootMode = 0o755
	// JobMode is a job's runtime dir, and a per-user temp parent: the job's user only.
	JobMode = 0o700
	// MaxTempNames caps the names read from temp_dir when looking for private parents.
	MaxTempNames = 1 << 20
	// ListTimeout bounds one listing of temp_dir (a user can fill /tmp).
	ListTimeout = 300 * time.Millisecond
	// privateAttempts bounds the names tried for a private parent.
	privateAttempts = 8
)

// ErrSquatted means <temp>/ffl-<uid> exists but is not the user's real 0700 directory.
var ErrSquatted = errors.New("squatted by another user")

// PrepareForJob is the Prolog's part, as root: create runtimeDir (root's, 0755, when missing)
// and runtimeDir/job-<key> owned by uid:gid with mode 0700, and return the job dir. Everything
// is done through descriptors (safefs.EnsureDirAt), so no path a user controls is ever chowned.
// An existing runtime root must be root's, a real directory and not writable by others; an
// existing job dir (a requeued job) must already be uid's with mode 0700. Anything else is left
// alone and reported.
func PrepareForJob(runtimeDir string, uid, gid int, key string) (string, error) {
	if !filepath.IsAbs(runtimeDir) || filepath.Clean(runtimeDir) != runtimeDir || runtimeDir == "/" {
		return "", fmt.Errorf("runtime dir %q: not a clean absolute path", runtimeDir)
	}
	if err := layout.ValidComponent(key); err != nil {
		return "", fmt.Errorf("job key: %w", err)
	}
	if uid <= 0 || gid < 0 {
		return "", fmt.Errorf("runtime dir for uid %d gid %d: refused", uid, gid)
	}
	parent, err := safefs.OpenTrusted(filepath.Dir(runtimeDir))
	if err != nil {
		return "", fmt.Errorf("runtime dir %s: parent: %w", runtimeDir, err)
	}
	defer parent.Close()
	root, err := safefs.EnsureDirAt(parent, filepath.Base(runtimeDir), safefs.DirSpec{UID: 0, GID: 0, Mode: RootMode})
	if err != nil {
		return "", fmt.Errorf("runtime dir %s: %w: skipped (ffl-launch falls back to temp_dir)", runtimeDir, err)
	}
	defer root.Close()
	name := layout.JobDirName(key)
	job, err := safefs.EnsureDirAt(root, name, safefs.DirSpec{UID: uid, GID: gid, Mode: JobMode, Exact: true})
	if err != nil {
		return "", fmt.Errorf("job dir %s: %w", filepath.Join(runtimeDir, name), err)
	}
	job.Close()
	return filepath.Join(runtimeDir, name), nil
}

// Prepare is the launcher's part, as the job's user: return the job's node-local runtime dir,
// the Prolog's when it exists (it must be the user's), else the fallback under temp_dir,
// created as needed. Every component is opened without following symlinks and checked to be
// the user's with mode 0700. When <temp>/ffl-<uid> is squatted, a private parent with a random
// name is made instead: no other user can keep this user from a session.
func Prepare(l layout.Layout) (string, error) {
	if err := l.ValidateNodeLocal(); err != nil {
		return "", err
	}
	pref := l.PreferredRuntimeJobDir()
	f, err := safefs.OpenDir(pref)
	if err == nil {
		defer f.Close()
		if err := safefs.CheckOwner(f, l.UID, true); err != nil {
			return "", fmt.Errorf("runtime dir %s: %w: ask the admin to check ffl-prolog", pref, err)
		}
		return pref, nil
	}
	if !safefs.IsNotExist(err) {
		return "", fmt.Errorf("runtime dir %s: %w", pref, err)
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		return "", fmt.Errorf("temp dir %s: %w", l.TempDir, err)
	}
	defer tmp.Close()
	parent, err := safefs.MkdirAt(tmp, layout.UserTempName(l.UID), JobMode, l.UID)
	if err != nil {
		if !safefs.Refused(err) {
			return "", fmt.Errorf("node-local dir %s: %w", l.FallbackRuntimeParent(), err)
		}
		if parent, err = makePrivate(tmp, l.UID); err != nil {
			return "", fmt.Errorf("node-local dir: %s is not yours (%v), and no private one could be made: %w", l.FallbackRuntimeParent(), ErrSquatted, err)
		}
	}
	defer parent.Close()
	job, err := safefs.MkdirAt(parent, layout.JobDirName(l.JobKey), JobMode, l.UID)
	if err != nil {
		return "", fmt.Errorf("node-local dir: %w", err)
	}
	job.Close()
	return filepath.Join(parent.Name(), layout.JobDirName(l.JobKey)), nil
}

// makePrivate creates a private parent ffl-<uid>.<random> below tmp (0700, the caller's).
func makePrivate(tmp *os.File, uid int) (*os.File, error) {
	var last error
	for i := 0; i < privateAttempts; i++ {
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		f, err := safefs.MkdirAt(tmp, layout.PrivateTempName(uid, hex.EncodeToString(rnd[:])), JobMode, uid)
		if err == nil {
			return f, nil
		}
		last = err
	}
	return nil, last
}

// Release is the launcher's cleanup of dir (what Prepare returned) when its job ends: a
// fallback job dir is removed (nobody else would), and a private parent with it; the Prolog's
// dir is the Epilog's to remove. Only the user's files go; deadline bounds the removal.
func Release(l layout.Layout, dir string, deadline time.Time) error {
	if dir == l.PreferredRuntimeJobDir() {
		return nil
	}
	if filepath.Base(dir) != layout.JobDirName(l.JobKey) || filepath.Dir(filepath.Dir(dir)) != filepath.Clean(l.TempDir) {
		return fmt.Errorf("release %s: not a node-local dir of job %s", dir, l.JobKey)
	}
	if _, err := safefs.RemoveAll(dir, safefs.RemoveOptions{UID: l.UID, Deadline: deadline}); err != nil && !safefs.IsNotExist(err) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	name := filepath.Base(filepath.Dir(dir))
	if uid, err := layout.ParsePrivateTempName(name); err == nil && uid == l.UID {
		// Per job: it goes with the job (rmdir fails harmlessly if something is still in it).
		if tmp, err := safefs.OpenTrusted(l.TempDir); err == nil {
			if fi, err := safefs.LstatAt(tmp, name); err == nil && fi.IsDir() && fi.UID == l.UID {
				_ = safefs.UnlinkAt(tmp, name, unix.AT_REMOVEDIR)
			}
			tmp.Close()
		}
	}
	// <temp>/ffl-<uid> stays: another job of the user may be using it right now.
	return nil
}

// Existing returns the job's node-local dirs that exist and are the user's, preferred first:
// what a launcher looks in for its job's supervisor socket and for leftovers of an earlier run.
// A directory of another uid at any level (a squatted <temp>/ffl-<uid>, a planted job dir) is
// skipped: what another user put there must neither answer for the user's supervisor nor block
// the user's start. Private parents are listed only when <temp>/ffl-<uid> is squatted.
func Existing(l layout.Layout) []string {
	var out []string
	if ownDir(l.PreferredRuntimeJobDir(), l.UID) {
		out = append(out, l.PreferredRuntimeJobDir())
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		return out
	}
	defer tmp.Close()
	if !Squatted(tmp, l.UID) {
		if ownDir(l.FallbackRuntimeJobDir(), l.UID) && ownDir(l.FallbackRuntimeParent(), l.UID) {
			out = append(out, l.FallbackRuntimeJobDir())
		}
		return out
	}
	names, _ := PrivateParents(tmp, l.UID, time.Now().Add(ListTimeout))
	for _, n := range names {
		d := filepath.Join(l.TempDir, n, layout.JobDirName(l.JobKey))
		if ownDir(d, l.UID) {
			out = append(out, d)
		}
	}
	return out
}

// ownDir reports whether p is a real directory (not a symlink) owned by uid.
func ownDir(p string, uid int) bool {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == uid
}

// Squatted reports whether <tmp>/ffl-<uid> exists but is not uid's real directory: then the
// user's sessions may live in private parents.
func Squatted(tmp *os.File, uid int) bool {
	fi, err := safefs.LstatAt(tmp, layout.UserTempName(uid))
	if err != nil {
		return !safefs.IsNotExist(err)
	}
	return !fi.IsDir() || fi.UID != uid
}

// PrivateParents lists the private parents of uid in tmp (ffl-<uid>.<hex> names that are
// uid's real directories), reading at most MaxTempNames names and stopping at deadline; a
// listing cut short returns what it found with an error.
func PrivateParents(tmp *os.File, uid int, deadline time.Time) ([]string, error) {
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind %s: %w", tmp.Name(), err)
	}
	prefix := layout.UserTempName(uid) + "."
	var out []string
	read := 0
	for {
		if time.Now().After(deadline) {
			return out, fmt.Errorf("listing %s: %w after %d names", tmp.Name(), safefs.ErrDeadline, read)
		}
		names, err := tmp.Readdirnames(512)
		for _, n := range names {
			if !strings.HasPrefix(n, prefix) {
				continue
			}
			if u, perr := layout.ParsePrivateTempName(n); perr != nil || u != uid {
				continue
			}
			if fi, serr := safefs.LstatAt(tmp, n); serr == nil && fi.IsDir() && fi.UID == uid {
				out = append(out, n)
			}
		}
		if read += len(names); read > MaxTempNames {
			return out, fmt.Errorf("listing %s: more than %d names; only the first were read", tmp.Name(), MaxTempNames)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("listing %s: %w", tmp.Name(), err)
		}
	}
}
