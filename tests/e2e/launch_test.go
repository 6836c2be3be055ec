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
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
}

// newEnv makes a user's world; cfg entries (key -> TOML value) override the defaults below.
func newEnv(t *testing.T, userName, job string, cfg map[string]string) *env {
	t.Helper()
	u := testutil.TestUser(t, userName)
	dir := testutil.UserDir(t, u)
	lo := 21000 + rand.IntN(30000)
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.user.UID), Gid: uint32(e.user.GID)}}
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
		if l.cmd.ProcessState == nil {
			_ = l.cmd.Process.Kill()
			<-l.done
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
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Fatal("launcher did not exit within 60 s of the signal")
	}
	return l.cmd.ProcessState.ExitCode(), time.Since(t0)
}

func httpStatus(url string) int {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
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
	}
	for _, port := range ports {
		if !portFree(port) {
			t.Errorf("port %d still held", port)
		}
	}
}

// TestRealSessionLifecycle: real xpra + Firefox as a user; HTTP 200; the TCP listener refuses a
// client without the session password and accepts one with it; a real chromium sees the Firefox
// window in the HTML5 client; SIGTERM ends everything within the cleanup timeout, exit 143.
func TestRealSessionLifecycle(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	e := newEnv(t, "ffltest", "9001", nil)
	l := e.run()
	info := l.ready(t)
	if code := httpStatus(info.URL); code != 200 {
		t.Fatalf("GET %s = %d, want 200", info.URL, code)
	}
	st, err := os.Stat(info.PasswordFile)
	testutil.Must(t, err, "password file")
	if st.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", st.Mode().Perm())
	}
	password, err := os.ReadFile(info.PasswordFile)
	testutil.Must(t, err, "read password")

	t.Run("password required", func(t *testing.T) {
		clientHome := filepath.Join(e.dir, "client")
		_ = os.MkdirAll(clientHome, 0o700)
		_ = os.Chown(clientHome, e.user.UID, e.user.GID)
		xinfo := func(extra ...string) (int, string) {
			args := append([]string{"info", "tcp://127.0.0.1:" + strconv.Itoa(info.Port) + "/"}, extra...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "xpra", args...)
			cmd.Env = []string{"HOME=" + clientHome, "PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=" + clientHome}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.user.UID), Gid: uint32(e.user.GID)}}
			out, err := cmd.CombinedOutput()
			code := 0
			if err != nil {
				code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
			}
			return code, string(out)
		}
		if code, out := xinfo(); code == 0 {
			t.Errorf("xpra info without password succeeded:\n%s", out)
		}
		if code, out := xinfo("--password-file=" + info.PasswordFile); code != 0 {
			t.Errorf("xpra info with password failed (%d):\n%s", code, out)
		}
	})

	t.Run("browser sees firefox", func(t *testing.T) {
		shot := filepath.Join(artifactDir(t), "html5-client-firefox.png")
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		title, err := browser.SeeWindow(ctx, info.URL+"?password="+string(password), shot, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(title, "Firefox") {
			t.Errorf("window title %q does not name Firefox", title)
		}
		t.Logf("screenshot: %s (window %q)", shot, title)
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
