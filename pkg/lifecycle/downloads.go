package lifecycle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// userDirsMax caps the read of ~/.config/user-dirs.dirs: xdg-user-dirs writes a few hundred
// bytes; anything much larger is not that file.
const userDirsMax = 64 << 10

// ResolveDownloadDir says where Firefox saves downloads: configured when set (already
// expanded, absolute), else the XDG download dir of ~/.config/user-dirs.dirs, else ~/Downloads.
// home is the user's home as NSS reports it. The file is the user's (xdg-user-dirs writes it),
// so it is parsed strictly and a line that is not a plain path is ignored, never interpreted:
// only "$HOME/..." and absolute paths, no other variables, no "..", no control characters.
// It returns where the answer came from, for the log.
func ResolveDownloadDir(home, configured string) (dir, source string) {
	if configured != "" {
		return configured, "download_dir"
	}
	if d, ok := xdgDownloadDir(home); ok {
		return d, "user-dirs.dirs"
	}
	return filepath.Join(home, "Downloads"), "default"
}

// xdgDownloadDir reads XDG_DOWNLOAD_DIR from home/.config/user-dirs.dirs (not from
// $XDG_CONFIG_HOME: the caller's environment is not ffl's configuration).
func xdgDownloadDir(home string) (string, bool) {
	f, err := os.OpenFile(filepath.Join(home, ".config", "user-dirs.dirs"), os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "", false // a FIFO or device would block or never end
	}
	data, err := io.ReadAll(io.LimitReader(f, userDirsMax))
	if err != nil {
		return "", false
	}
	return parseUserDirs(data, home)
}

// parseUserDirs returns the last valid XDG_DOWNLOAD_DIR of a user-dirs.dirs file, expanded.
// The format (xdg-user-dirs) is shell-like: XDG_NAME_DIR="$HOME/path" or "/absolute/path".
// Backslash escapes are not interpreted: a value with a backslash is refused.
func parseUserDirs(data []byte, home string) (string, bool) {
	var out string
	found := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), userDirsMax)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		v, ok := strings.CutPrefix(line, "XDG_DOWNLOAD_DIR=")
		if !ok {
			continue
		}
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			continue
		}
		v = v[1 : len(v)-1]
		var base, rel string
		switch {
		case v == "$HOME":
			base = home
		case strings.HasPrefix(v, "$HOME/"):
			base, rel = home, strings.TrimPrefix(v, "$HOME/")
		case strings.HasPrefix(v, "/"):
			base, rel = "/", strings.TrimPrefix(v, "/")
		default:
			continue
		}
		if strings.ContainsAny(rel, "\"\\`$") || hasControl(rel) || hasDotDot(rel) {
			continue
		}
		p := filepath.Join(base, rel)
		if p == "/" {
			continue
		}
		out, found = filepath.Clean(p), true
	}
	return out, found
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

// checkDownloadDir refuses a download dir inside what ffl removes: the session trees in the
// state dir, the persistent profile, the node-local runtime dirs. Downloads there would go with
// the session.
func checkDownloadDir(dir string, l layout.Layout) error {
	dir = filepath.Clean(dir)
	for _, root := range []string{filepath.Join(l.StateDir, layout.SessionsDir), l.PersistentProfileDir(), l.RuntimeDir, l.FallbackRuntimeParent()} {
		if dir == root || strings.HasPrefix(dir, root+"/") || strings.HasPrefix(dir, l.FallbackRuntimeParent()+".") {
			return fmt.Errorf("%w: download dir %s is inside %s, which ffl removes: set download_dir in ffl.toml (or XDG_DOWNLOAD_DIR in ~/.config/user-dirs.dirs) to a directory of your own", ErrBadInput, dir, root)
		}
	}
	return nil
}

// EnsureDownloadDir makes dir (and missing parents) with the process's umask, like mkdir -p:
// the launcher runs with the user's umask (the job's), so the new directory is what the user
// would have made. An existing dir (or a symlink to one: a common way to put downloads on
// scratch) is used as is.
func EnsureDownloadDir(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("%w: download dir %s: %v: set download_dir in ffl.toml to a directory you can write", ErrBadInput, dir, err)
	}
	return nil
}

// downloadsFile is Firefox's list of the session's downloads in the profile: each entry names
// its target and, while it runs, its .part file.
const downloadsFile = "downloads.json"

// downloadEntry is the part of a downloads.json entry ffl reads.
type downloadEntry struct {
	Target struct {
		Path         string `json:"path"`
		PartFilePath string `json:"partFilePath"`
	} `json:"target"`
	StartTime string `json:"startTime"`
	Succeeded bool   `json:"succeeded"`
}

// CutShort is one download a session's end cut short: what arrived is kept in Kept.
type CutShort struct {
	Target, Kept string
}

// partialSuffix marks what ffl kept of a download cut short: <final name>.partial.
const partialSuffix = ".partial"

// tidyCutDownloads runs once the profile's Firefox is gone (at the end of a session, and before
// Firefox starts on a persistent profile a killed session left). Firefox (since 98) makes an
// empty placeholder under a download's final name and writes the data to
// NAME.XXXXXXXX.EXT.part; a download cut short leaves both, an empty file that looks like the
// finished download, and a .part that Firefox itself deletes the next time it starts on that
// profile. For each unfinished download of downloads.json whose .part is there:
//   - the .part, a regular file of uid beside the target, is renamed (never over an existing
//     name) to <final name>.partial, out of Firefox's reach, with whatever had arrived;
//   - the placeholder goes when it is still what Firefox made: an empty regular file of uid, not
//     a symlink, not older than the download;
//   - the entry leaves downloads.json, so that Firefox does not act on those names again.
//
// Nothing else is touched. Run as the user (never by a root hook).
func tidyCutDownloads(profile string, uid int) ([]CutShort, error) {
	data, err := os.ReadFile(filepath.Join(profile, downloadsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", downloadsFile, err)
	}
	var doc map[string]json.RawMessage
	var list []json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(profile, downloadsFile), err)
	}
	if err := json.Unmarshal(doc["list"], &list); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(profile, downloadsFile), err)
	}
	var cut []CutShort
	var errs []error
	keep := list[:0:0]
	for _, raw := range list {
		var d downloadEntry
		if json.Unmarshal(raw, &d) != nil || d.Succeeded || !filepath.IsAbs(d.Target.Path) || !filepath.IsAbs(d.Target.PartFilePath) ||
			filepath.Dir(d.Target.Path) != filepath.Dir(d.Target.PartFilePath) {
			keep = append(keep, raw)
			continue
		}
		started, err := time.Parse(time.RFC3339Nano, d.StartTime)
		if err != nil {
			keep = append(keep, raw)
			continue
		}
		kept, err := keepPartial(d.Target.PartFilePath, d.Target.Path, uid)
		if err != nil {
			errs = append(errs, err)
		}
		if kept == "" {
			keep = append(keep, raw)
			continue
		}
		if _, err := removePlaceholder(d.Target.Path, uid, started); err != nil {
			errs = append(errs, err)
		}
		cut = append(cut, CutShort{Target: d.Target.Path, Kept: kept})
	}
	if len(cut) > 0 {
		if doc["list"], err = json.Marshal(keep); err == nil {
			data, err = json.Marshal(doc)
		}
		if err == nil {
			err = replaceIn(profile, downloadsFile, data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("update %s: %w", filepath.Join(profile, downloadsFile), err))
		}
	}
	return cut, errors.Join(errs...)
}

// keepPartial renames part (a regular file of uid, not a symlink) to target.partial, or
// target.partial-2 ... -9 when taken, never replacing a file (link, then unlink: also on NFS).
// It returns the new name, "" when part is not there or not Firefox's.
func keepPartial(part, target string, uid int) (string, error) {
	fi, err := os.Lstat(part)
	if err != nil {
		return "", nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || int(st.Uid) != uid {
		return "", nil
	}
	for i := 1; i <= 9; i++ {
		name := target + partialSuffix
		if i > 1 {
			name += "-" + strconv.Itoa(i)
		}
		err := os.Link(part, name)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("keep the partial download %s: %w", part, err)
		}
		if err := os.Remove(part); err != nil {
			return name, fmt.Errorf("keep the partial download %s: %w", part, err)
		}
		return name, nil
	}
	return "", fmt.Errorf("keep the partial download %s: %s%s to -9 all exist", part, target, partialSuffix)
}

// replaceIn atomically replaces name in dir (the user's profile) with data.
func replaceIn(dir, name string, data []byte) error {
	d, err := safefs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return safefs.ReplaceFile(d, name, data, 0o600)
}

// removePlaceholder removes path when it is an empty regular file of uid modified no earlier
// than the download's start (less a minute of clock skew between the node and a file server).
// The checks are made on the file opened without following a symlink, and the name is unlinked
// only while it still is that file.
func removePlaceholder(path string, uid int, started time.Time) (bool, error) {
	dir, err := os.OpenFile(filepath.Dir(path), os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil // the directory is gone or not ours to read: nothing to tidy
	}
	defer dir.Close()
	name := filepath.Base(path)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, nil
	}
	mtime := time.Unix(st.Mtim.Unix())
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != uid || st.Size != 0 || mtime.Before(started.Add(-time.Minute)) {
		return false, nil
	}
	if fi, err := safefs.LstatAt(dir, name); err != nil || fi.Dev != st.Dev || fi.Ino != st.Ino {
		return false, nil
	}
	if err := safefs.UnlinkAt(dir, name, 0); err != nil && !safefs.IsNotExist(err) {
		return false, fmt.Errorf("remove the empty placeholder of a cut download %s: %w", path, err)
	}
	return true, nil
}
