package lifecycle

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// TestParseUserDirs: the XDG download dir is taken from what xdg-user-dirs writes, and
// anything that is not a plain path ($HOME/..., /...) is ignored, never expanded.
func TestParseUserDirs(t *testing.T) {
	const home = "/home/u"
	for _, tt := range []struct {
		name, file, want string
		ok               bool
	}{
		{"xdg default", "# comment\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\nXDG_DOWNLOAD_DIR=\"$HOME/Downloads\"\n", "/home/u/Downloads", true},
		{"localised", "XDG_DOWNLOAD_DIR=\"$HOME/Téléchargements\"\n", "/home/u/Téléchargements", true},
		{"absolute", "XDG_DOWNLOAD_DIR=\"/scratch/u/dl\"\n", "/scratch/u/dl", true},
		{"disabled: the home", "XDG_DOWNLOAD_DIR=\"$HOME\"\n", "/home/u", true},
		{"spaces kept", "XDG_DOWNLOAD_DIR=\"$HOME/My Files\"\n", "/home/u/My Files", true},
		{"last valid wins", "XDG_DOWNLOAD_DIR=\"$HOME/a\"\nXDG_DOWNLOAD_DIR=\"$(rm -rf ~)\"\n", "/home/u/a", true},
		{"command substitution", "XDG_DOWNLOAD_DIR=\"$(touch /tmp/x)\"\n", "", false},
		{"backquote", "XDG_DOWNLOAD_DIR=\"$HOME/`id`\"\n", "", false},
		{"other variable", "XDG_DOWNLOAD_DIR=\"$XDG_DATA_HOME/dl\"\n", "", false},
		{"escape", "XDG_DOWNLOAD_DIR=\"$HOME/a\\\"b\"\n", "", false},
		{"dot dot", "XDG_DOWNLOAD_DIR=\"$HOME/../other/dl\"\n", "", false},
		{"relative", "XDG_DOWNLOAD_DIR=\"Downloads\"\n", "", false},
		{"unquoted", "XDG_DOWNLOAD_DIR=$HOME/Downloads\n", "", false},
		{"root", "XDG_DOWNLOAD_DIR=\"/\"\n", "", false},
		{"control character", "XDG_DOWNLOAD_DIR=\"$HOME/a\x1b[2Jb\"\n", "", false},
		{"other key only", "XDG_MUSIC_DIR=\"$HOME/Music\"\n", "", false},
		{"empty", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseUserDirs([]byte(tt.file), home)
			if got != tt.want || ok != tt.ok {
				t.Errorf("parseUserDirs = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestResolveDownloadDir: download_dir first, then user-dirs.dirs in the home (a FIFO there
// neither blocks nor counts), else ~/Downloads.
func TestResolveDownloadDir(t *testing.T) {
	home := t.TempDir()
	if d, src := ResolveDownloadDir(home, "/data/dl"); d != "/data/dl" || src != "download_dir" {
		t.Errorf("configured: %q %q", d, src)
	}
	if d, src := ResolveDownloadDir(home, ""); d != filepath.Join(home, "Downloads") || src != "default" {
		t.Errorf("no user-dirs.dirs: %q %q", d, src)
	}
	testutil.Must(t, os.MkdirAll(filepath.Join(home, ".config"), 0o700), "mkdir")
	fifo := filepath.Join(home, ".config", "user-dirs.dirs")
	testutil.Must(t, mkfifo(fifo), "fifo")
	if d, src := ResolveDownloadDir(home, ""); d != filepath.Join(home, "Downloads") || src != "default" {
		t.Errorf("FIFO user-dirs.dirs: %q %q", d, src)
	}
	testutil.Must(t, os.Remove(fifo), "rm")
	testutil.Must(t, os.WriteFile(fifo, []byte("XDG_DOWNLOAD_DIR=\"$HOME/Incoming\"\n"), 0o600), "write")
	if d, src := ResolveDownloadDir(home, ""); d != filepath.Join(home, "Incoming") || src != "user-dirs.dirs" {
		t.Errorf("user-dirs.dirs: %q %q", d, src)
	}
}

// TestTidyCutDownloads: of a download cut short, the .part is kept as <name>.partial (never
// over an existing file), the empty placeholder under the final name goes, and the entry leaves
// downloads.json; finished downloads, non-empty files, symlinks, files older than the download
// and downloads without their .part are left alone.
func TestTidyCutDownloads(t *testing.T) {
	dir := t.TempDir()
	profile := t.TempDir()
	uid := os.Getuid()
	now := time.Now().UTC()
	p := func(name string) string { return filepath.Join(dir, name) }
	write := func(name, data string) string {
		testutil.Must(t, os.WriteFile(p(name), []byte(data), 0o644), "write")
		return p(name)
	}
	var list []map[string]any
	add := func(target, part string, start time.Time, succeeded bool) {
		e := map[string]any{"target": map[string]string{"path": target, "partFilePath": part}, "startTime": start.Format(time.RFC3339Nano)}
		if succeeded {
			e["succeeded"] = true
		}
		list = append(list, e)
	}
	add(write("cut.dat", ""), write("cut.ABCDEFGH.dat.part", "half"), now, false)
	add(write("done.dat", "complete"), p("done.X.dat.part"), now, true)
	add(write("full.dat", "user data"), write("full.Y.dat.part", "y"), now, false)
	write("victim", "")
	testutil.Must(t, os.Symlink(p("victim"), p("link.dat")), "symlink")
	add(p("link.dat"), write("link.Z.dat.part", "z"), now, false)
	add(write("old.dat", ""), write("old.W.dat.part", "w"), now, false)
	past := now.Add(-time.Hour)
	testutil.Must(t, os.Chtimes(p("old.dat"), past, past), "age")
	add(write("nopart.dat", ""), p("nopart.V.dat.part"), now, false)
	add(write("taken.dat", ""), write("taken.U.dat.part", "u"), now, false)
	write("taken.dat.partial", "the user's own file")
	b, err := json.Marshal(map[string]any{"list": list})
	testutil.Must(t, err, "json")
	testutil.Must(t, os.WriteFile(filepath.Join(profile, downloadsFile), b, 0o600), "downloads.json")

	got, err := tidyCutDownloads(profile, uid)
	testutil.Must(t, err, "tidy")
	want := map[string]string{p("cut.dat"): p("cut.dat.partial"), p("full.dat"): p("full.dat.partial"), p("link.dat"): p("link.dat.partial"),
		p("old.dat"): p("old.dat.partial"), p("taken.dat"): p("taken.dat.partial-2")}
	if len(got) != len(want) {
		t.Errorf("cut downloads %+v, want %v", got, want)
	}
	for _, c := range got {
		if want[c.Target] != c.Kept {
			t.Errorf("cut download %s kept as %s, want %s", c.Target, c.Kept, want[c.Target])
		}
	}
	files := map[string]string{ // what the directory holds afterwards
		"cut.dat.partial": "half", "done.dat": "complete", "full.dat": "user data", "full.dat.partial": "y",
		"link.dat.partial": "z", "victim": "", "old.dat": "", "old.dat.partial": "w", "nopart.dat": "",
		"taken.dat.partial": "the user's own file", "taken.dat.partial-2": "u",
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == "link.dat" {
			continue // the symlink, checked below
		}
		data, err := os.ReadFile(p(e.Name()))
		if w, ok := files[e.Name()]; !ok || err != nil || string(data) != w {
			t.Errorf("%s: %q %v, want %q (present %v)", e.Name(), data, err, w, ok)
		}
		delete(files, e.Name())
	}
	if len(files) != 0 {
		t.Errorf("missing afterwards: %v", files)
	}
	if target, err := os.Readlink(p("link.dat")); err != nil || target != p("victim") {
		t.Errorf("the symlink was changed: %q %v", target, err)
	}
	after, _ := os.ReadFile(filepath.Join(profile, downloadsFile))
	for _, name := range []string{"cut.dat", "full.dat", "taken.dat"} {
		if strings.Contains(string(after), name) {
			t.Errorf("downloads.json still lists %s: %s", name, after)
		}
	}
	for _, name := range []string{"done.dat", "nopart.dat"} {
		if !strings.Contains(string(after), name) {
			t.Errorf("downloads.json lost %s: %s", name, after)
		}
	}
	// No downloads.json (a session that downloaded nothing): nothing to do.
	if got, err := tidyCutDownloads(t.TempDir(), uid); err != nil || len(got) != 0 {
		t.Errorf("empty profile: %v %v", got, err)
	}
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }

// TestCheckDownloadDir: a download dir inside what ffl removes is refused (exit 2), one line
// naming the dir and the fix; the home, the state dir itself and elsewhere are fine.
func TestCheckDownloadDir(t *testing.T) {
	l := layout.Layout{StateDir: "/home/u/.firefox-launcher", RuntimeDir: "/run/ffl", TempDir: "/tmp", UID: 1000, Node: "n", JobKey: "1"}
	for dir, bad := range map[string]bool{
		"/home/u/Downloads":                               false,
		"/home/u":                                         false,
		"/home/u/.firefox-launcher/downloads":             false,
		"/home/u/.firefox-launcher/sessions":              true,
		"/home/u/.firefox-launcher/sessions/n/job-1/x":    true,
		"/home/u/.firefox-launcher/profile/dl":            true,
		"/run/ffl/job-1":                                  true,
		"/tmp/ffl-1000/job-1/session-8001/tmp":            true,
		"/tmp/ffl-1000.0123456789abcdef/job-1":            true,
		"/tmp/ffl-10000/x":                                false,
		"/home/u/.firefox-launcher/sessions/../downloads": false,
	} {
		err := checkDownloadDir(dir, l)
		if bad != (err != nil) {
			t.Errorf("%s: error %v, want refused=%v", dir, err, bad)
		}
		if err != nil && (!errors.Is(err, ErrBadInput) || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s: %v: want one line of bad input", dir, err)
		}
	}
}
