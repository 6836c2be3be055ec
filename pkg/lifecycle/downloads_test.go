package lifecycle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
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

// TestTidyCutDownloads: of a cut download, the empty placeholder under the final name goes and
// the .part stays; finished downloads, non-empty files, symlinks, files older than the download
// and downloads without their .part are left alone.
func TestTidyCutDownloads(t *testing.T) {
	dir := t.TempDir()
	profile := t.TempDir()
	uid := os.Getuid()
	now := time.Now().UTC()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		testutil.Must(t, os.WriteFile(p, []byte(data), 0o644), "write")
		return p
	}
	var list []map[string]any
	add := func(target, part string, start time.Time, succeeded bool) {
		e := map[string]any{"target": map[string]string{"path": target, "partFilePath": part}, "startTime": start.Format(time.RFC3339Nano)}
		if succeeded {
			e["succeeded"] = true
		}
		list = append(list, e)
	}
	cut := write("cut.dat", "")
	cutPart := write("cut.ABCDEFGH.dat.part", "half")
	add(cut, cutPart, now, false)
	done := write("done.dat", "")
	add(done, filepath.Join(dir, "done.X.dat.part"), now, true)
	full := write("full.dat", "user data")
	add(full, write("full.Y.dat.part", "x"), now, false)
	victim := write("victim", "")
	link := filepath.Join(dir, "link.dat")
	testutil.Must(t, os.Symlink(victim, link), "symlink")
	add(link, write("link.Z.dat.part", "x"), now, false)
	old := write("old.dat", "")
	past := now.Add(-time.Hour)
	testutil.Must(t, os.Chtimes(old, past, past), "age")
	add(old, write("old.W.dat.part", "x"), now, false)
	nopart := write("nopart.dat", "")
	add(nopart, filepath.Join(dir, "nopart.V.dat.part"), now, false)
	b, err := json.Marshal(map[string]any{"list": list})
	testutil.Must(t, err, "json")
	testutil.Must(t, os.WriteFile(filepath.Join(profile, downloadsFile), b, 0o600), "downloads.json")

	got, err := tidyCutDownloads(profile, uid)
	testutil.Must(t, err, "tidy")
	if len(got) != 1 || got[0].Target != cut || got[0].Part != cutPart {
		t.Errorf("cut downloads %+v, want only %s", got, cut)
	}
	if _, err := os.Lstat(cut); !os.IsNotExist(err) {
		t.Errorf("the placeholder of the cut download is still there")
	}
	for _, p := range []string{cutPart, done, full, link, victim, old, nopart} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", strings.TrimPrefix(p, dir), err)
		}
	}
	// No downloads.json (a session that downloaded nothing): nothing to do.
	if got, err := tidyCutDownloads(t.TempDir(), uid); err != nil || len(got) != 0 {
		t.Errorf("empty profile: %v %v", got, err)
	}
}

func mkfifo(p string) error { return unix.Mkfifo(p, 0o600) }
