package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/internal/ffprofile"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// userFilesUser has a home of its own (not shared with the other e2e tests' user), so that the
// tests can say what its home holds before and after.
const userFilesUser = "ffluserdl"

// testUmask is the user's umask in these tests: not the usual 022, so a mode that comes from it
// cannot come from anywhere else.
const testUmask = 0o027

// site is the web server the sessions' Firefox visits: pages of one colour that start a
// download (Content-Disposition: attachment), a download that stops halfway and never ends, and
// a page whose colour says whether a cookie set in an earlier session is there.
type site struct {
	url   string
	files map[string][]byte // name -> content of /file/<name>
	mu    sync.Mutex
	sent  map[string][]byte // /slow/<name>: the bytes sent so far
	stop  chan struct{}
}

const (
	cookieNew  = 0x2b6cd4 // no cookie yet: the page set it
	cookieSeen = 0xd47a2b // the cookie of an earlier session was there
)

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{files: map[string][]byte{}, sent: map[string][]byte{}, stop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/page/", func(w http.ResponseWriter, r *http.Request) {
		// A page of pageColor that starts the download named by the rest of the path once it has
		// painted: what a data portal's "Download" does.
		next := strings.TrimPrefix(r.URL.Path, "/page")
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>ffl download test</title></head><body style="background:#%06x;margin:0">`+
			`<script>setTimeout(() => { location.href = %q }, 300)</script></body></html>`, pageColor, next)
	})
	mux.HandleFunc("/file/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/file/")
		s.mu.Lock()
		data, ok := s.files[name]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data)
	})
	mux.HandleFunc("/slow/", func(w http.ResponseWriter, r *http.Request) {
		// Half of a 8 MiB file, then nothing until the test ends: the session's end cuts it.
		name := strings.TrimPrefix(r.URL.Path, "/slow/")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(8<<20))
		chunk := bytes.Repeat([]byte("partial-data "), 1<<12)
		for i := 0; i < 80; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			s.mu.Lock()
			s.sent[name] = append(s.sent[name], chunk...)
			s.mu.Unlock()
		}
		select {
		case <-s.stop:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>ffl cookie test</title></head><body style="margin:0"><script>
const seen = document.cookie.includes('ffl=remembered');
document.cookie = 'ffl=remembered; max-age=86400; path=/';
document.body.style.background = seen ? '#%06x' : '#%06x';
</script></body></html>`, cookieSeen, cookieNew)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testutil.Must(t, err, "listen")
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(s.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	s.url = "http://" + ln.Addr().String()
	return s
}

// file adds /file/<name> with size bytes of random content and returns its SHA-256.
func (s *site) file(name string, size int) string {
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(len(name)), uint64(size)))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	s.mu.Lock()
	s.files[name] = data
	s.mu.Unlock()
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (s *site) sentBytes(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.sent[name]...)
}

// userFilesEnv is an env of userFilesUser with the user's umask testUmask for every command
// and the hooks' machine-wide state turned off (seen_dir, metrics, syslog).
func userFilesEnv(t *testing.T, job string, cfg map[string]string) *env {
	t.Helper()
	base := map[string]string{
		"epilog.seen_dir": `""`, "epilog.metrics_file": `""`, "epilog.syslog": "false",
		"epilog.sweep_older_than": `"1s"`, "epilog.temp_older_than": `"1s"`,
	}
	for k, v := range cfg {
		base[k] = v
	}
	e := newEnv(t, userFilesUser, job, base)
	e.umask = fmt.Sprintf("%03o", testUmask)
	// Sessions without an XDG download dir make ~/Downloads: the test's, removed with it.
	if dl := filepath.Join(e.user.Home, "Downloads"); !testutil.Exists(dl) {
		t.Cleanup(func() { _ = os.RemoveAll(dl) })
	}
	return e
}

// runJob starts `ffl-launch run --json ARGS` for job in e's world (another job of the same
// user: same home, same state dir, same download dir).
func (e *env) runJob(job string, args ...string) *launcher {
	e.t.Helper()
	saved := e.job
	e.job = job
	defer func() { e.job = saved }()
	return e.run(args...)
}

// download is one file the user downloaded and must keep.
type download struct {
	path string
	sum  string
	size int
}

// checkKept asserts that every download is there, intact, the user's, with the mode the
// user's umask gives a new file (0666 &^ umask).
func checkKept(t *testing.T, u testutil.User, after string, dls []download) {
	t.Helper()
	for _, d := range dls {
		data, err := os.ReadFile(d.path)
		if err != nil {
			t.Errorf("after %s: download %s: %v", after, d.path, err)
			continue
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != d.sum || len(data) != d.size {
			t.Errorf("after %s: download %s changed: %d bytes sha256 %s, want %d bytes %s", after, d.path, len(data), got, d.size, d.sum)
		}
		var st syscall.Stat_t
		testutil.Must(t, syscall.Lstat(d.path, &st), "stat")
		if int(st.Uid) != u.UID || int(st.Gid) != u.GID {
			t.Errorf("after %s: download %s owned by %d:%d, want %d:%d", after, d.path, st.Uid, st.Gid, u.UID, u.GID)
		}
		if mode := st.Mode & 0o777; mode != 0o666&^testUmask {
			t.Errorf("after %s: download %s has mode %03o, want %03o (umask %03o)", after, d.path, mode, 0o666&^testUmask, testUmask)
		}
	}
}

// waitDownload waits until Firefox has saved name completely in dir: all of its bytes under the
// final name, and the mode the user's umask gives (Firefox keeps a file it is downloading 0600 and
// gives it that mode as the last step of the download, after the file has its final name and
// content: a session killed in between leaves the file 0600, which is Firefox's doing, not ffl's).
func waitDownload(t *testing.T, dir, name, sum string, size int) download {
	t.Helper()
	p := filepath.Join(dir, name)
	var mode uint32
	ok := testutil.Eventually(90*time.Second, func() bool {
		data, err := os.ReadFile(p)
		if err != nil || len(data) != size {
			return false
		}
		s := sha256.Sum256(data)
		var st syscall.Stat_t
		if hex.EncodeToString(s[:]) != sum || syscall.Lstat(p, &st) != nil {
			return false
		}
		mode = st.Mode & 0o777
		return mode == 0o666&^testUmask
	})
	if !ok && mode != 0 {
		t.Fatalf("download %s arrived complete in %s but kept mode %03o, not the %03o the umask %03o gives", name, dir, mode, 0o666&^testUmask, testUmask)
	}
	if !ok {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("download %s did not arrive complete in %s (it holds %v)", name, dir, names)
	}
	return download{path: p, sum: sum, size: size}
}

// firefoxMain is the session's Firefox main process (the one xpra started).
func firefoxMain(t *testing.T, e *env, port int) proc.Identity {
	t.Helper()
	l := e.layout()
	ids, err := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.Marker(port))
	testutil.Must(t, err, "marker scan")
	for _, id := range ids {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", id.PID))
		if strings.TrimSpace(string(comm)) == "firefox-esr" {
			return id
		}
	}
	t.Fatalf("no firefox-esr process in session %s", l.Marker(port))
	return proc.Identity{}
}

// TestDownloadsSurviveEveryEnd: a page in Firefox (seen through the HTML5 client) starts a
// download; it lands, complete, in the user's XDG download dir (from ~/.config/user-dirs.dirs,
// made by ffl with the user's umask); then each way a session ends runs in turn (Firefox
// closed, SIGTERM to the launcher, SIGKILL + ffl-epilog, SIGKILL + `ffl-launch clean`,
// SIGKILL + `ffl-epilog sweep`), and after each every download is intact: same checksum, the
// user's, the mode the user's umask gives; and nothing of Firefox landed in the home besides.
// A download cut short by the session's end leaves no file under its final name; what arrived
// is kept under Firefox's partial name.
func TestDownloadsSurviveEveryEnd(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	epilog := testutil.Build(t, "github.com/ffl-hpc/ffl/cmd/ffl-epilog")
	e := userFilesEnv(t, "9701", nil)
	u := e.user
	home := u.Home
	// The user's download dir, as xdg-user-dirs records it; missing until ffl makes it.
	dlDir := filepath.Join(home, "Data portal "+strconv.Itoa(rand.IntN(1e6)))
	testutil.MkdirAs(t, filepath.Join(home, ".config"), u, 0o700)
	testutil.WriteAs(t, filepath.Join(home, ".config", "user-dirs.dirs"), u,
		[]byte("# written by xdg-user-dirs-update\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\nXDG_DOWNLOAD_DIR=\"$HOME/"+filepath.Base(dlDir)+"\"\n"))
	t.Cleanup(func() {
		_ = os.RemoveAll(dlDir)
		_ = os.Remove(filepath.Join(home, ".config", "user-dirs.dirs"))
	})
	before := testutil.Snapshot(t, home)
	s := newSite(t)

	var kept []download
	// session starts a session of job on a page that downloads name, sees Firefox's page in
	// the HTML5 client and waits for the download to be complete.
	session := func(job, name string, size int) (*launcher, lifecycle.Info) {
		t.Helper()
		sum := s.file(name, size)
		l := e.runJob(job, "--url", s.url+"/page/file/"+name)
		info := l.ready(t)
		e.seeFirefox(t, info, "download-"+name+".png")
		// Firefox's HOME and working directory are the user's home: every file dialog ("Save
		// as", print to file, upload) opens there, not in the session tree.
		saved := e.job
		e.job = job
		ff := firefoxMain(t, e, info.Port)
		e.job = saved
		environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", ff.PID))
		if !bytes.Contains(append([]byte{0}, environ...), []byte("\x00HOME="+home+"\x00")) {
			t.Errorf("Firefox's environment has no HOME=%s: %q", home, environ)
		}
		if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", ff.PID)); cwd != home {
			t.Errorf("Firefox runs in %s, want the user's home %s", cwd, home)
		}
		kept = append(kept, waitDownload(t, dlDir, name, sum, size))
		return l, info
	}
	var st syscall.Stat_t
	asJob := func(job string, cmd *exec.Cmd) *exec.Cmd {
		cmd.Env = overrideEnv(cmd.Env, []string{"SLURM_JOB_ID=" + job})
		return cmd
	}
	runEpilog := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(epilog, append([]string{"--config", e.cfg}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SLURMD_NODENAME=" + e.node}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ffl-epilog %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	kill := func(l *launcher) {
		t.Helper()
		testutil.Must(t, l.cmd.Process.Signal(syscall.SIGKILL), "KILL launcher")
		<-l.done
	}

	t.Run("Firefox closed", func(t *testing.T) {
		l, info := session("9701", "closed.bin", 3<<20+17)
		testutil.Must(t, syscall.Lstat(dlDir, &st), "download dir")
		if int(st.Uid) != u.UID || st.Mode&0o777 != 0o777&^testUmask {
			t.Errorf("download dir made by ffl: uid %d mode %03o, want uid %d mode %03o (the user's umask)", st.Uid, st.Mode&0o777, u.UID, 0o777&^testUmask)
		}
		ff := firefoxMain(t, e, info.Port)
		testutil.Must(t, proc.Signal(ff, syscall.SIGTERM), "close Firefox")
		select {
		case <-l.done:
		case <-time.After(60 * time.Second):
			t.Fatal("the launcher did not end after Firefox was closed")
		}
		e.job = "9701"
		e.assertNothingLeft(t, info.Port)
		checkKept(t, u, "Firefox was closed", kept)
	})
	t.Run("SIGTERM grace path", func(t *testing.T) {
		l, info := session("9702", "sigterm.bin", 1<<20)
		// Links into the user's files planted in the session trees (by the user, by a page's
		// download to a chosen place, by anything): the removal unlinks them, never follows.
		lay := e.layout()
		lay.JobKey = "9702"
		sess := lay.HomeSessionDir(info.Port)
		testutil.SymlinkAs(t, dlDir, filepath.Join(sess, "home", "Downloads"), u)
		testutil.SymlinkAs(t, kept[0].path, filepath.Join(sess, "profile", "closed.bin"), u)
		testutil.SymlinkAs(t, dlDir, filepath.Join(lay.FallbackRuntimeJobDir(), layout.SessionDirName(info.Port), "tmp", "dl"), u)
		if code, _ := l.stop(t, syscall.SIGTERM); code != 143 {
			t.Errorf("exit %d, want 143", code)
		}
		e.job = "9702"
		e.assertNothingLeft(t, info.Port)
		checkKept(t, u, "SIGTERM", kept)
	})
	t.Run("SIGKILL and ffl-epilog", func(t *testing.T) {
		l, info := session("9703", "epilog.bin", 2<<20)
		kill(l)
		out := runEpilog("--job", "9703", "--user", u.Name)
		t.Logf("epilog: %s", strings.TrimSpace(out))
		e.job = "9703"
		e.assertNothingLeft(t, info.Port)
		checkKept(t, u, "SIGKILL + ffl-epilog", kept)
	})
	t.Run("SIGKILL and ffl-launch clean", func(t *testing.T) {
		l, info := session("9704", "clean.bin", 1<<20+3)
		kill(l)
		out, err := asJob("9799", e.command("clean")).CombinedOutput()
		if err != nil {
			t.Fatalf("clean: %v\n%s", err, out)
		}
		e.job = "9704"
		e.assertNothingLeft(t, info.Port)
		checkKept(t, u, "SIGKILL + ffl-launch clean", kept)
	})
	t.Run("SIGKILL and the sweep", func(t *testing.T) {
		l, info := session("9705", "sweep.bin", 512<<10)
		kill(l)
		time.Sleep(1100 * time.Millisecond) // sweep_older_than is 1 s: the session must be older
		out := runEpilog("sweep")
		t.Logf("sweep: %s", strings.TrimSpace(out))
		e.job = "9705"
		e.assertNothingLeft(t, info.Port)
		checkKept(t, u, "SIGKILL + the sweep", kept)
	})
	// cutDownload starts a session whose page starts a download that never ends, and returns
	// its launcher, session and the .part file once Firefox has recorded the download.
	cutDownload := func(t *testing.T, job, name string) (*launcher, lifecycle.Info, string) {
		t.Helper()
		l := e.runJob(job, "--url", s.url+"/page/slow/"+name)
		info := l.ready(t)
		e.seeFirefox(t, info, "download-"+name+".png")
		var part string
		stem, ext, _ := strings.Cut(name, ".")
		if !testutil.Eventually(90*time.Second, func() bool {
			m, _ := filepath.Glob(filepath.Join(dlDir, stem+".*."+ext+".part"))
			if len(m) == 1 {
				if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 0 {
					part = m[0]
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no .part file of %s appeared in %s", name, dlDir)
		}
		// Firefox records the download in its profile's downloads.json shortly after it starts:
		// that record is how ffl knows the download's placeholder.
		if !testutil.Eventually(60*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(e.stateDir, "profile", "downloads.json"))
			return bytes.Contains(b, []byte(filepath.Base(part)))
		}) {
			t.Fatal("Firefox did not record the download in downloads.json")
		}
		return l, info, part
	}
	checkCut := func(t *testing.T, name, part string) {
		t.Helper()
		if _, err := os.Lstat(filepath.Join(dlDir, name)); err == nil {
			t.Errorf("a file under the final name %s is left by a download that was cut short", name)
		}
		if _, err := os.Lstat(part); err == nil {
			t.Errorf("Firefox's %s is still there (Firefox deletes it at its next start)", part)
		}
		kept := filepath.Join(dlDir, name+".partial")
		data, err := os.ReadFile(kept)
		if err != nil {
			t.Fatalf("the partial data of the cut download: %v", err)
		}
		sent := s.sentBytes(name)
		if len(data) == 0 || !bytes.HasPrefix(sent, data) {
			t.Errorf("the kept partial file %s (%d bytes) is not what the server sent (%d bytes)", part, len(data), len(sent))
		}
		t.Logf("cut download: kept %s (%d of %d bytes sent)", filepath.Base(kept), len(data), len(sent))
	}
	var cutPart string
	t.Run("download cut short by SIGTERM", func(t *testing.T) {
		l, info, part := cutDownload(t, "9706", "cut.bin")
		cutPart = part
		if code, _ := l.stop(t, syscall.SIGTERM); code != 143 {
			t.Errorf("exit %d, want 143", code)
		}
		e.job = "9706"
		e.assertNothingLeft(t, info.Port)
		checkCut(t, "cut.bin", part)
		if !strings.Contains(logOf(l), "cut short") {
			t.Errorf("the launcher's log does not say the download was cut short:\n%s", logOf(l))
		}
		checkKept(t, u, "the cut download", kept)
	})
	t.Run("download cut short by SIGKILL, tidied by the next session", func(t *testing.T) {
		l, info, part := cutDownload(t, "9707", "killed.bin")
		kill(l)
		runEpilog("--job", "9707", "--user", u.Name)
		e.job = "9707"
		e.assertNothingLeft(t, info.Port)
		// The root Epilog never enters the download dir: Firefox's empty placeholder is there
		// until the next session of the user takes the persistent profile.
		if fi, err := os.Lstat(filepath.Join(dlDir, "killed.bin")); err != nil || fi.Size() != 0 {
			t.Fatalf("after SIGKILL + Epilog the placeholder should still be there, empty: %v", err)
		}
		l2, _ := session("9708", "after-kill.bin", 100<<10)
		l2.stop(t, syscall.SIGTERM)
		checkCut(t, "killed.bin", part)
		checkCut(t, "cut.bin", cutPart) // the next sessions' Firefox did not delete it either
		checkKept(t, u, "the next session after a cut download", kept)
	})

	// Nothing else of Firefox or ffl landed in the user's home: only the download dir is new.
	after := testutil.Snapshot(t, home)
	testutil.AssertUnchanged(t, before, after, dlDir)
}

// seeTitle opens the session's HTML5 client as the user and waits until a window title it
// shows contains want.
func (e *env) seeTitle(t *testing.T, info lifecycle.Info, want, shotName string) string {
	t.Helper()
	profile := filepath.Join(e.dir, "chromium-"+strconv.Itoa(rand.IntN(1e6)))
	testutil.MkdirAs(t, profile, e.user, 0o700)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, err := browser.Start(ctx, browser.Options{UID: e.user.UID, GID: e.user.GID, ProfileDir: profile, Shot: filepath.Join(artifactDir(t), shotName)})
	testutil.Must(t, err, "chromium")
	defer b.Close()
	titles, err := b.WaitTitle(info.URL, want, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return titles
}

func logOf(l *launcher) string {
	b, _ := os.ReadFile(l.stderr.Name())
	return string(b)
}

// TestProfileRemembers: with the default profile = "persistent", a cookie a page set in one
// session is there in the next (the page paints itself in another colour, seen through the
// HTML5 client). A second session while the first runs gets a temporary profile, shows the page
// asked for and says so (the log, and a window over Firefox in the HTML5 client), and so does a session while a
// record of another node's live session holds the profile, which is left alone. After a session
// was SIGKILLed with all its processes (Firefox's own lock left too), the next session clears
// the stale lock and has the profile, cookie included, without a "Firefox is already running"
// dialog (its page is painted, not a dialog).
func TestProfileRemembers(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	e := userFilesEnv(t, "9711", nil)
	s := newSite(t)
	url := s.url + "/cookie"
	lockPath := filepath.Join(e.stateDir, "profile.lock")

	profile := filepath.Join(e.stateDir, "profile")

	l1 := e.runJob("9711", "--url", url)
	info := l1.ready(t)
	e.seeColor(t, info, "profile-1-new.png", cookieNew)
	// Firefox's one write of its startup cache must be over before the stop: a stop in the middle
	// of it leaves a truncated file the next start rightly removes (ffprofile.WaitStartupCache).
	before, took, err := ffprofile.WaitStartupCache(profile, e.user.UID, 90*time.Second)
	testutil.Must(t, err, "the first session")
	t.Logf("Firefox's startup cache written (%d bytes), settled %v after the page was seen", before.Size, took.Round(time.Millisecond))
	l1.stop(t, syscall.SIGTERM)
	if _, err := os.Lstat(lockPath); err == nil {
		t.Errorf("profile.lock left after the session ended")
	}
	// ffl's stop ends Firefox's start tracking as Firefox's own quit does: the next start finds
	// no start marker and keeps the startup cache the first session's Firefox wrote (an old
	// marker made it throw the cache away and build it again, 0.3 s more to the page).
	if _, err := os.Lstat(filepath.Join(profile, lifecycle.StartupMarker)); err == nil {
		t.Errorf("Firefox's start marker %s left in the profile after ffl stopped the session", lifecycle.StartupMarker)
	}

	l2 := e.runJob("9712", "--url", url)
	info2 := l2.ready(t)
	if after, err := ffprofile.StartupCache(profile, e.user.UID); err != nil || after.Dev != before.Dev || after.Ino != before.Ino {
		t.Errorf("the second session's Firefox rebuilt its startup cache (%v): its start was taken for a crashed one", err)
	}
	e.seeColor(t, info2, "profile-2-remembered.png", cookieSeen)

	t.Run("a second session falls back and says so", func(t *testing.T) {
		l3 := e.runJob("9713", "--url", url)
		info3 := l3.ready(t)
		titles := e.seeTitle(t, info3, lifecycle.NoticeTitle, "profile-fallback.png")
		t.Logf("second session's window titles: %s", titles)
		// Its Firefox shows the page asked for, on a temporary profile: no cookie.
		e.seeColor(t, info3, "profile-fallback-page.png", cookieNew)
		if log := logOf(l3); !strings.Contains(log, "persistent profile not available") || !strings.Contains(log, "job 9712") {
			t.Errorf("the second session's log does not name the holder:\n%s", log)
		}
		l3.stop(t, syscall.SIGTERM)
	})
	l2.stop(t, syscall.SIGTERM)

	t.Run("another node's live session is never taken over", func(t *testing.T) {
		rec := `{"node":"othernode","boot_id":"b","job":"local-77","port":8123,"marker":"local-77/othernode/8123/","launcher":{"pid":4242,"start_time":1,"uid":` + strconv.Itoa(e.user.UID) + `},"since":"2026-01-01T00:00:00Z"}` + "\n"
		testutil.WriteAs(t, lockPath, e.user, []byte(rec))
		l := e.runJob("9714", "--url", url)
		info := l.ready(t)
		e.seeTitle(t, info, lifecycle.NoticeTitle, "profile-fallback-othernode.png")
		if log := logOf(l); !strings.Contains(log, "node othernode") {
			t.Errorf("the log does not name the other node's holder:\n%s", log)
		}
		l.stop(t, syscall.SIGTERM)
		if b, _ := os.ReadFile(lockPath); string(b) != rec {
			t.Errorf("the live holder's record was changed: %q", b)
		}
		testutil.Must(t, os.Remove(lockPath), "remove the test's record")
	})

	t.Run("a killed session's lock is stale", func(t *testing.T) {
		l5 := e.runJob("9715", "--url", url)
		info5 := l5.ready(t)
		e.seeColor(t, info5, "profile-5.png", cookieSeen)
		// The launcher and every process of its session are SIGKILLed (as the OOM killer or a
		// node's cgroup kill would): Firefox's own lock is left in the profile, and ffl's record.
		// (While its Firefox runs, the record is live: TestProfileLock in pkg/lifecycle.)
		lay := e.layout()
		lay.JobKey = "9715"
		ids, err := proc.FindByMarker(e.user.UID, layout.MarkerVar, lay.Marker(info5.Port))
		testutil.Must(t, err, "marker scan")
		testutil.Must(t, l5.cmd.Process.Signal(syscall.SIGKILL), "KILL launcher")
		<-l5.done
		for _, id := range ids {
			_ = proc.Signal(id, syscall.SIGKILL)
		}
		testutil.WaitGone(t, ids)
		if _, err := os.Lstat(filepath.Join(e.stateDir, "profile", "lock")); err != nil {
			t.Fatalf("the killed Firefox left no lock of its own (the test needs one): %v", err)
		}
		if _, err := os.Lstat(lockPath); err != nil {
			t.Fatalf("the killed session left no profile.lock (the test needs one): %v", err)
		}
		// A Firefox killed in its first minute is left to its own recovery: its marker stays.
		if _, err := os.Lstat(filepath.Join(e.stateDir, "profile", lifecycle.StartupMarker)); err != nil {
			t.Errorf("the killed Firefox's start marker was removed: %v", err)
		}
		l7 := e.runJob("9717", "--url", url)
		info7 := l7.ready(t)
		e.seeColor(t, info7, "profile-7-after-stale.png", cookieSeen)
		if log := logOf(l7); !strings.Contains(log, "clearing a stale lock") || !strings.Contains(log, "job 9715") {
			t.Errorf("the log does not say the stale lock of job 9715 was cleared:\n%s", log)
		}
		l7.stop(t, syscall.SIGTERM)
		e.job = "9715"
		e.assertNothingLeft(t)
	})

	// The HTTP cache stays node-local (it went with each session): none in the profile in the
	// home. (Firefox keeps its small startupCache in a --profile profile; no pref moves it.)
	if _, err := os.Lstat(filepath.Join(e.stateDir, "profile", "cache2")); err == nil {
		t.Errorf("the persistent profile in the home holds Firefox's HTTP cache (cache2)")
	}
	out, _ := exec.Command("du", "-sh", filepath.Join(e.stateDir, "profile")).CombinedOutput()
	t.Logf("the persistent profile after 5 sessions: %s", strings.TrimSpace(string(out)))
}

// TestSessionProfile: profile = "session" keeps nothing: a cookie set in one session is gone in
// the next, and no persistent profile or lock is made.
func TestSessionProfile(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	e := userFilesEnv(t, "9721", map[string]string{"profile": `"session"`})
	s := newSite(t)
	for i, job := range []string{"9721", "9722"} {
		l := e.runJob(job, "--url", s.url+"/cookie")
		info := l.ready(t)
		e.seeColor(t, info, fmt.Sprintf("session-profile-%d.png", i+1), cookieNew)
		l.stop(t, syscall.SIGTERM)
	}
	for _, p := range []string{"profile", "profile.lock"} {
		if _, err := os.Lstat(filepath.Join(e.stateDir, p)); err == nil {
			t.Errorf("profile = \"session\" made %s in the state dir", p)
		}
	}
}

// TestEndWarning: before the job's time limit (end_warning before the end squeue reports), and
// at once on SIGUSR1 (#SBATCH --signal=B:USR1@N), every session shows a window over Firefox,
// seen through the HTML5 client, saying that it ends and where the downloads are; the window is
// a session process, gone with the session.
func TestEndWarning(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium", "xmessage")
	t.Run("before the time limit", func(t *testing.T) {
		e := userFilesEnv(t, "9731", map[string]string{"end_warning": `"60s"`, "download_dir": `"~/Downloads"`})
		// squeue as Slurm answers for a job whose time limit is 75 s away.
		bin := filepath.Join(e.dir, "bin")
		testutil.MkdirAs(t, bin, e.user, 0o755)
		end := time.Now().Add(75 * time.Second).Format("2006-01-02T15:04:05")
		testutil.WriteAs(t, filepath.Join(bin, "squeue"), e.user, []byte("#!/bin/sh\necho "+end+"\n"))
		testutil.Must(t, os.Chmod(filepath.Join(bin, "squeue"), 0o755), "chmod")
		e.extraEnv = []string{"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin"}
		l := e.run("--url", e.colorPage(t))
		info := l.ready(t)
		e.seeFirefox(t, info, "end-warning-firefox.png")
		titles := e.seeTitle(t, info, lifecycle.WarningTitle+" at "+end[11:16], "end-warning-time-limit.png")
		if want := "Downloads: " + filepath.Join(e.user.Home, "Downloads"); !strings.Contains(titles, want) {
			t.Errorf("the warning does not say where the downloads are (%q): %q", want, titles)
		}
		t.Logf("window titles: %s", titles)
		l.stop(t, syscall.SIGTERM)
		e.assertNothingLeft(t, info.Port)
	})
	t.Run("on SIGUSR1", func(t *testing.T) {
		e := userFilesEnv(t, "9732", map[string]string{"end_warning": `"0"`})
		l := e.run("--url", e.colorPage(t))
		info := l.ready(t)
		e.seeFirefox(t, info, "end-warning-usr1.png")
		testutil.Must(t, l.cmd.Process.Signal(syscall.SIGUSR1), "USR1")
		titles := e.seeTitle(t, info, lifecycle.WarningTitle+" soon", "end-warning-sigusr1.png")
		t.Logf("window titles: %s", titles)
		if code, _ := l.stop(t, syscall.SIGTERM); code != 143 {
			t.Errorf("exit %d, want 143 (SIGUSR1 must not end the launcher)", code)
		}
		e.assertNothingLeft(t, info.Port)
	})
}
