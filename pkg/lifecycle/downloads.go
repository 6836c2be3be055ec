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
	"strings"
	"time"

	"golang.org/x/sys/unix"

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

// CutShort is one download a session's end cut short: the data Firefox had is kept in Part.
type CutShort struct {
	Target, Part string
}

// tidyCutDownloads runs once the profile's Firefox is gone. Firefox (since 98) makes an empty
// placeholder under a download's final name and writes the data to NAME.XXXXXXXX.EXT.part;
// a download cut short leaves both, so an empty file would look like the finished download.
// For each unfinished download of downloads.json, the placeholder goes when it is still what
// Firefox made: an empty regular file of uid, not a symlink, not older than the download. The
// .part file, which says it is partial, is kept with whatever data arrived. Nothing else is
// touched. Run as the user (never by a root hook), in the user's download dir.
func tidyCutDownloads(profile string, uid int) ([]CutShort, error) {
	data, err := os.ReadFile(filepath.Join(profile, downloadsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", downloadsFile, err)
	}
	var list struct {
		List []downloadEntry `json:"list"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(profile, downloadsFile), err)
	}
	var cut []CutShort
	var errs []error
	for _, d := range list.List {
		if d.Succeeded || !filepath.IsAbs(d.Target.Path) || !filepath.IsAbs(d.Target.PartFilePath) {
			continue
		}
		// Only while the data is there under the partial name: a finished download has none.
		if fi, err := os.Lstat(d.Target.PartFilePath); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		started, err := time.Parse(time.RFC3339Nano, d.StartTime)
		if err != nil {
			continue
		}
		removed, err := removePlaceholder(d.Target.Path, uid, started)
		if err != nil {
			errs = append(errs, err)
		}
		if removed {
			cut = append(cut, CutShort{Target: d.Target.Path, Part: d.Target.PartFilePath})
		}
	}
	return cut, errors.Join(errs...)
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
