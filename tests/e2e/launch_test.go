// Package e2e runs ffl-launch for real: real xpra + firefox-esr as a non-root user, a real
// headless chromium on the HTML5 client, and SIGTERM to the launcher as Slurm sends it.
//
// The tests need xpra, firefox-esr and chromium (Debian packages) and root (to run the launcher
// as a test user). Without them they skip with the reason, unless FFL_E2E=1 (CI sets it): then a
// missing prerequisite fails the run instead of passing silently.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

func require(t *testing.T, bins ...string) {
	t.Helper()
	var missing []string
	if os.Getuid() != 0 {
		missing = append(missing, "root (to run the launcher as a test user)")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("FFL_E2E") == "1" {
		t.Fatalf("FFL_E2E=1 but missing: %s (run .ci/run or 'make deps')", strings.Join(missing, ", "))
	}
	t.Skipf("missing %s: set up with 'make deps' (FFL_E2E=1 turns this skip into a failure)", strings.Join(missing, ", "))
}

// env is one launcher's world: a user, a config, directories.
type env struct {
	t        *testing.T
	user     testutil.User
	bin      string
	dir      string
	cfg      string
	portLo   int
	portHi   int
	job      string
	node     string
	stateDir string
	// extraEnv goes into every launcher's environment (FFL_FAKE_XPRA=1 for fakexpra).
	extraEnv []string
	// umask, when set ("027"), is the umask every command runs with, as a job inherits the
	// user's from sbatch.
	umask string
}

// newEnv makes a user's world; cfg entries (key -> TOML value) override the defaults below.
func newEnv(t *testing.T, userName, job string, cfg map[string]string) *env {
	t.Helper()
	u := testutil.TestUser(t, userName)
	dir := testutil.UserDir(t, u)
	// Below Linux's default ephemeral range (32768-60999): a port of the range that is some
	// outgoing connection's local port cannot be bound by a test's squatter.
	lo := 21000 + rand.IntN(32768-21000-20)
	e := &env{t: t, user: u, bin: testutil.Build(t, "github.com/ffl-hpc/ffl/cmd/ffl-launch"), dir: dir,
		portLo: lo, portHi: lo + 19, job: job, node: "e2enode", stateDir: filepath.Join(dir, "home", ".firefox-launcher")}
	for _, d := range []string{"tmp", "home"} {
		p := filepath.Join(dir, d)
		testutil.Must(t, os.MkdirAll(p, 0o700), "mkdir")
		testutil.Must(t, os.Chown(p, u.UID, u.GID), "chown")
	}
	e.cfg = filepath.Join(dir, "ffl.toml")
	keys := map[string]string{
		"state_dir": strconv.Quote(e.stateDir), "runtime_dir": strconv.Quote(filepath.Join(dir, "run-ffl")),
		"temp_dir": strconv.Quote(filepath.Join(dir, "tmp")), "port_min": strconv.Itoa(e.portLo),
		"port_max": strconv.Itoa(e.portHi), "cleanup_timeout": `"3s"`, "start_timeout": `"90s"`,
	}
	for k, v := range cfg {
		keys[k] = v
	}
	var b strings.Builder
	for k, v := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	testutil.Must(t, os.WriteFile(e.cfg, []byte(b.String()), 0o644), "config")
	return e
}

func (e *env) layout() layout.Layout {
	return layout.Layout{StateDir: e.stateDir, RuntimeDir: filepath.Join(e.dir, "run-ffl"), TempDir: filepath.Join(e.dir, "tmp"), UID: e.user.UID, Node: e.node, JobKey: e.job}
}

func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, append([]string{"--config", e.cfg}, args...)...)
	cmd.Dir = e.dir
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + e.user.Home, "USER=" + e.user.Name, "LANG=C.UTF-8",
		"SLURM_JOB_ID=" + e.job, "SLURMD_NODENAME=" + e.node, "SLURM_JOB_UID=" + strconv.Itoa(e.user.UID),
		"SLURM_JOB_USER=" + e.user.Name, "SLURM_CLUSTER_NAME=e2e",
	}
	cmd.Env = append(cmd.Env, e.extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.user.UID), Gid: uint32(e.user.GID)}}
	if e.umask != "" {
		cmd.Args = append([]string{"/bin/sh", "-c", `umask ` + e.umask + ` && exec "$0" "$@"`}, cmd.Args...)
		cmd.Path = "/bin/sh"
	}
	return cmd
}

// launcher is a running `ffl-launch run`.
type launcher struct {
	cmd    *exec.Cmd
	stderr *os.File
	infos  chan lifecycle.Info
	done   chan struct{}
}

func (e *env) run(args ...string) *launcher {
	e.t.Helper()
	cmd := e.command(append([]string{"run", "--json"}, args...)...)
	logf, err := os.Create(filepath.Join(e.dir, "launcher-"+strconv.Itoa(rand.IntN(1e6))+".log"))
	testutil.Must(e.t, err, "log")
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	testutil.Must(e.t, err, "pipe")
	testutil.Must(e.t, cmd.Start(), "start launcher")
	l := &launcher{cmd: cmd, stderr: logf, infos: make(chan lifecycle.Info, 8), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var info lifecycle.Info
			if json.Unmarshal(sc.Bytes(), &info) == nil && info.Port != 0 {
				l.infos <- info
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(l.done) }()
	e.t.Cleanup(func() {
		// A failed test still ends its session the way Slurm would: TERM (the grace path), KILL
		// only if that does not finish, so nothing is left for the next test.
		if l.cmd.ProcessState == nil {
			_ = l.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-l.done:
			case <-time.After(30 * time.Second):
				_ = l.cmd.Process.Kill()
				<-l.done
			}
		}
		if e.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			e.t.Logf("launcher log:\n%s", b)
		}
	})
	return l
}

func (l *launcher) ready(t *testing.T) lifecycle.Info {
	t.Helper()
	select {
	case info := <-l.infos:
		return info
	case <-l.done:
		b, _ := os.ReadFile(l.stderr.Name())
		t.Fatalf("launcher exited before a session was ready: %v\n%s", l.cmd.ProcessState, b)
	case <-time.After(120 * time.Second):
		t.Fatal("no session within 120 s")
	}
	return lifecycle.Info{}
}

// stop sends sig and returns the exit code and how long the launcher took.
func (l *launcher) stop(t *testing.T, sig syscall.Signal) (int, time.Duration) {
	t.Helper()
	t0 := time.Now()
	testutil.Must(t, l.cmd.Process.Signal(sig), "signal")
	return l.exitCode(t, 60*time.Second, "launcher did not exit within 60 s of the signal"), time.Since(t0)
}

// exitCode waits up to limit for the launcher to exit and returns its exit code; it fails the
// test with failure when the launcher is still running then.
func (l *launcher) exitCode(t *testing.T, limit time.Duration, failure string) int {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(limit):
		t.Fatal(failure)
	}
	return l.cmd.ProcessState.ExitCode()
}

// httpAs fetches url as user u (a session admits only its own user), with the extra request
// header lines: the status code, or 0 when the connection gave no HTTP answer at all.
func httpAs(u testutil.User, url string, headers ...string) int {
	args := []string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.Command("curl", append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	out, _ := cmd.Output()
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return code
}

// assertNothingLeft checks the promise: no process carrying the job's marker, no session or
// runtime directory of the job, the ports free.
func (e *env) assertNothingLeft(t *testing.T, ports ...int) {
	t.Helper()
	l := e.layout()
	gone := testutil.Eventually(5*time.Second, func() bool {
		ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.JobMarkerPrefix())
		return len(ids) == 0
	})
	if !gone {
		ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.JobMarkerPrefix())
		t.Errorf("processes of job %s left: %v", e.job, ids)
	}
	for _, p := range []string{l.HomeJobDir(), l.FallbackRuntimeJobDir()} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("directory left: %s", p)
		}
		// A process without the marker that still names the job's files (xpra 6's Xvfb, started
		// with an environment of its own, names the session's Xauthority) is left too.
		if out, err := exec.Command("pgrep", "-a", "-u", strconv.Itoa(e.user.UID), "-f", regexp.QuoteMeta(p+"/")).Output(); err == nil {
			t.Errorf("processes naming %s left:\n%s", p, out)
		}
	}
	for _, port := range ports {
		if !testutil.PortFree(port) {
			t.Errorf("port %d still held", port)
		}
	}
}

// pageColor is the colour of the page Firefox opens in the real tests: one distinctive colour,
// so that the browser test can count its pixels in the HTML5 client's canvas.
const pageColor = 0x3a9d23

// colorPage writes a page of pageColor where the session's user can read it and returns its
// file:// URL.
func (e *env) colorPage(t *testing.T) string {
	t.Helper()
	p := filepath.Join(e.dir, "page.html")
	body := fmt.Sprintf("<!DOCTYPE html><html><head><title>ffl test page</title></head><body style=\"background:#%06x;margin:0\"></body></html>\n", pageColor)
	testutil.Must(t, os.WriteFile(p, []byte(body), 0o644), "page")
	testutil.Must(t, os.Chown(p, e.user.UID, e.user.GID), "chown page")
	return "file://" + p
}

// seeFirefox opens the session's HTML5 client as the user would (chromium running as the
// session's user) and waits until Firefox's page is painted in it.
func (e *env) seeFirefox(t *testing.T, info lifecycle.Info, shotName string) browser.Seen {
	t.Helper()
	return e.seeColor(t, info, shotName, pageColor)
}

// seeColor is seeFirefox for a page of another colour.
func (e *env) seeColor(t *testing.T, info lifecycle.Info, shotName string, color uint32) browser.Seen {
	t.Helper()
	profile := filepath.Join(e.dir, "chromium-"+strconv.Itoa(rand.IntN(1e6)))
	testutil.Must(t, os.MkdirAll(profile, 0o700), "profile")
	testutil.Must(t, os.Chown(profile, e.user.UID, e.user.GID), "chown profile")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	shot := filepath.Join(artifactDir(t), shotName)
	seen, err := browser.SeePage(ctx, info.URL, browser.Options{UID: e.user.UID, GID: e.user.GID, ProfileDir: profile,
		Color: color, Shot: shot, Wait: 30 * time.Second})
	if err != nil {
		t.Fatalf("%v (screenshot %s)", err, shot)
	}
	t.Logf("Firefox's page painted in the HTML5 client %v after the browser opened it (%d of %dx%d pixels; screenshot %s)",
		seen.Painted, seen.Pixels, seen.Width, seen.Height, shot)
	return seen
}

// TestRealSessionLifecycle: real xpra + Firefox as a user. The moment the JSON line is printed, a
// real chromium (as the user) opens the HTML5 client and sees Firefox's page painted, with no
// password asked; no other uid gets a byte of xpra (no HTML, no xpra protocol) while the owner's
// own xpra client gets in without a password (over a WebSocket: the door relays only HTTP);
// SIGTERM ends everything, exit 143.
func TestRealSessionLifecycle(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium", "curl")
	e := newEnv(t, "ffltest", "9001", nil)
	l := e.run("--url", e.colorPage(t))
	info := l.ready(t)
	if info.HTTPMS <= 0 || info.WindowMS < info.HTTPMS {
		t.Errorf("readiness figures http_ms=%d window_ms=%d: want 0 < http_ms <= window_ms", info.HTTPMS, info.WindowMS)
	}
	t.Logf("ready: http_ms=%d window_ms=%d", info.HTTPMS, info.WindowMS)
	e.seeFirefox(t, info, "html5-client-firefox.png")

	t.Run("nobody else gets in", func(t *testing.T) {
		other := testutil.TestUser(t, "ffltest2")
		if code := httpAs(other, info.URL); code != 0 {
			t.Errorf("uid %d (another user) got HTTP %d from the session", other.UID, code)
		}
		if code := httpAs(e.user, info.URL); code != 200 {
			t.Errorf("the owner got HTTP %d, want 200", code)
		}
		// Root is not the session's user either: not a single byte, not even an HTTP error.
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(info.Port)); err == nil {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
			got, _ := io.ReadAll(c)
			c.Close()
			if len(got) != 0 {
				t.Errorf("root got %q from the session", got)
			}
		} else if !strings.Contains(err.Error(), "reset by peer") {
			t.Errorf("connect as root: %v", err)
		}
		xinfo := func(u testutil.User, scheme string) (int, string) {
			home := filepath.Join(e.dir, "client-"+u.Name)
			_ = os.MkdirAll(home, 0o700)
			_ = os.Chown(home, u.UID, u.GID)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "xpra", "info", scheme+"://127.0.0.1:"+strconv.Itoa(info.Port)+"/")
			cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + home}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
			out, err := cmd.CombinedOutput()
			if err == nil {
				return 0, string(out)
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode(), string(out)
			}
			return -1, string(out)
		}
		if code, out := xinfo(other, "ws"); code == 0 {
			t.Errorf("xpra info as another user succeeded:\n%s", out)
		}
		// The owner's own xpra client gets in without a password over a WebSocket (HTTP, with
		// the port's own Host), and not with xpra's raw protocol: the door relays only HTTP.
		if code, out := xinfo(e.user, "ws"); code != 0 {
			t.Errorf("xpra info ws:// as the owner, without a password, failed (%d):\n%s", code, out)
		}
		if code, out := xinfo(e.user, "tcp"); code == 0 {
			t.Errorf("xpra info tcp:// (xpra's raw protocol) as the owner got through the door:\n%s", out)
		}
	})

	code, took := l.stop(t, syscall.SIGTERM)
	t.Logf("SIGTERM to exit: %v", took)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	e.assertNothingLeft(t, info.Port)
}

func artifactDir(t *testing.T) string {
	d := os.Getenv("FFL_ARTIFACTS")
	if d == "" {
		d = filepath.Join(testutil.ModuleRoot(t), "tests", "artifacts")
	}
	testutil.Must(t, os.MkdirAll(d, 0o755), "artifacts")
	return d
}
