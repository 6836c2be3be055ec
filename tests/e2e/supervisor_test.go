package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// fakeEnv is an env whose xpra is fakexpra with a session-shaped tree (a TERM-ignoring child and
// a daemonized grandchild), so supervisor behaviour is tested fast and precisely.
func fakeEnv(t *testing.T, job string, cfg map[string]string) *env {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run the launcher as a test user")
	}
	ft := testutil.Build(t, "github.com/ffl-hpc/ffl/internal/faketree")
	base := map[string]string{
		"xpra":      strconv.Quote(buildFake(t)),
		"xpra_args": `["--fakexpra-faketree=` + ft + `", "--fakexpra-mode=ignore-term"]`,
		"firefox":   `"/bin/true"`, "cleanup_timeout": `"1s"`,
	}
	for k, v := range cfg {
		base[k] = v
	}
	e := newEnv(t, "ffltest", job, base)
	e.extraEnv = []string{"FFL_FAKE_XPRA=1"}
	return e
}

// TestWrappedCommand: `run -- CMD` runs CMD with the supervisor's socket; CMD starts, lists and
// stops sessions through it (start/list/stop as a Jupyter extension would); stopping one
// session leaves the other; when CMD exits, the supervisor stops the rest and exits with CMD's
// status, leaving nothing.
func TestWrappedCommand(t *testing.T) {
	e := fakeEnv(t, "9201", nil)
	script := filepath.Join(e.dir, "cmd.sh")
	out := filepath.Join(e.dir, "cmd.out")
	body := `#!/bin/sh
set -e
[ -S "$FFL_CONTROL_SOCKET" ]
"$FFL" --config "$CFG" start --json > "$OUT.1"
"$FFL" --config "$CFG" start --json > "$OUT.2"
"$FFL" --config "$CFG" list --json > "$OUT.list"
p=$(sed 's/.*"port":\([0-9]*\).*/\1/' "$OUT.1")
"$FFL" --config "$CFG" stop "$p"
"$FFL" --config "$CFG" list --json > "$OUT.list2"
touch "$OUT.ready"
while [ ! -e "$OUT.go" ]; do sleep 0.05; done
exit 7
`
	testutil.Must(t, os.WriteFile(script, []byte(body), 0o755), "script")
	cmd := e.command("run", "--", script)
	cmd.Env = append(cmd.Env, "FFL="+e.bin, "CFG="+e.cfg, "OUT="+out)
	logf, _ := os.Create(filepath.Join(e.dir, "launcher.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	testutil.Must(t, cmd.Start(), "start")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if !testutil.Eventually(60*time.Second, func() bool { _, err := os.Stat(out + ".ready"); return err == nil }) {
		_ = cmd.Process.Kill()
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("wrapped command did not get through start/list/stop:\n%s", b)
	}
	var s1, s2 lifecycle.Info
	readJSON(t, out+".1", &s1)
	readJSON(t, out+".2", &s2)
	var list, list2 []lifecycle.Info
	readJSON(t, out+".list", &list)
	readJSON(t, out+".list2", &list2)
	if len(list) != 2 || len(list2) != 1 || list2[0].Port != s2.Port {
		t.Errorf("list before stop %v, after %v; want both, then only %d", list, list2, s2.Port)
	}
	l := e.layout()
	if ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.Marker(s1.Port)); len(ids) != 0 {
		t.Errorf("stopped session left %v", ids)
	}
	if ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.Marker(s2.Port)); len(ids) < 3 {
		t.Errorf("the other session lost processes: %v", ids)
	}
	testutil.Must(t, os.WriteFile(out+".go", nil, 0o644), "go")
	select {
	case err := <-done:
		if code := cmd.ProcessState.ExitCode(); code != 7 {
			t.Errorf("exit %d (%v), want the wrapped command's 7", code, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not exit after its command")
	}
	e.assertNothingLeft(t, s1.Port, s2.Port)
	if t.Failed() {
		b, _ := os.ReadFile(logf.Name())
		t.Logf("launcher log:\n%s", b)
	}
}

// TestSecondSignalKillsNow: a second SIGTERM during the grace path goes straight to KILL: with a
// 60 s cleanup timeout and TERM-ignoring processes, the launcher still exits long before it.
func TestSecondSignalKillsNow(t *testing.T) {
	e := fakeEnv(t, "9202", map[string]string{"cleanup_timeout": `"60s"`})
	l := e.run()
	info := l.ready(t)
	if !testutil.Eventually(20*time.Second, func() bool {
		ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, e.layout().Marker(info.Port))
		return len(ids) >= 4
	}) {
		t.Fatal("fake session tree never came up")
	}
	testutil.Must(t, l.cmd.Process.Signal(syscall.SIGTERM), "TERM")
	time.Sleep(300 * time.Millisecond)
	testutil.Must(t, l.cmd.Process.Signal(syscall.SIGTERM), "second TERM")
	if code := l.exitCode(t, 30*time.Second, "second signal did not cut the 60 s grace short"); code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
	e.assertNothingLeft(t, info.Port)
}

// TestSessionEndsByItself: when the user closes Firefox, xpra exits with its children; the
// supervisor cleans that session up and, having no other session and no command, exits 0.
func TestSessionEndsByItself(t *testing.T) {
	e := fakeEnv(t, "9203", map[string]string{"xpra_args": `["--fakexpra-mode=no-tree"]`})
	l := e.run()
	info := l.ready(t)
	// fakexpra exits 0 on TERM, as xpra does when its last child (Firefox) is gone.
	testutil.Must(t, syscall.Kill(info.PID, syscall.SIGTERM), "end xpra")
	if code := l.exitCode(t, 30*time.Second, "supervisor did not exit after its only session ended"); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	e.assertNothingLeft(t, info.Port)
}

// TestListWithoutSupervisor: after a SIGKILL of the launcher, `list` (no supervisor) shows the
// session as stale, and `clean` removes it and its processes.
func TestListWithoutSupervisor(t *testing.T) {
	e := fakeEnv(t, "9204", nil)
	l := e.run()
	info := l.ready(t)
	testutil.Must(t, l.cmd.Process.Signal(syscall.SIGKILL), "KILL")
	<-l.done
	list := e.command("list", "--json")
	list.Env = overrideEnv(list.Env, []string{"SLURM_JOB_ID=9299"})
	b, err := list.Output()
	testutil.Must(t, err, "list")
	var found []map[string]any
	testutil.Must(t, json.Unmarshal(b, &found), "list json %s", b)
	stale := false
	for _, s := range found {
		if s["job"] == "9204" && int(s["port"].(float64)) == info.Port && s["live"] == false {
			stale = true
		}
	}
	if !stale {
		t.Errorf("list does not show job 9204 port %d as stale: %s", info.Port, b)
	}
	clean := e.command("clean")
	clean.Env = overrideEnv(clean.Env, []string{"SLURM_JOB_ID=9299"})
	cb, err := clean.CombinedOutput()
	if err != nil {
		t.Fatalf("clean: %v\n%s", err, cb)
	}
	if !strings.Contains(string(cb), "removed 1 stale session") {
		t.Errorf("clean output: %s", cb)
	}
	e.assertNothingLeft(t, info.Port)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	testutil.Must(t, err, "read %s", path)
	testutil.Must(t, json.Unmarshal(b, v), "parse %s: %s", path, b)
}

// TestProxyCommand: `ffl-launch proxy` as jupyter-server-proxy runs it, under a supervisor that
// wraps the notebook server. The supervisor holds $FFL_PROXY_PORT from its start; the proxy
// starts the session there and the owner's request waits for it and gets the page; a second
// proxy for the same port reuses the session; SIGTERM to a proxy stops the session (the port
// stays held, quietly); the owner's next visit starts a new session there by itself (the proxy
// never runs its command again); Firefox closed (xpra exits) makes the proxy exit 0; nothing is
// left once the command ends.
func TestProxyCommand(t *testing.T) {
	e := fakeEnv(t, "9205", map[string]string{"xpra_args": `["--fakexpra-mode=no-tree,slow-ready"]`})
	out := filepath.Join(e.dir, "cmd")
	script := filepath.Join(e.dir, "cmd.sh")
	body := `#!/bin/sh
echo "$FFL_PROXY_SECRET_FILE" > "$OUT.secret"
echo "$FFL_PROXY_PORT" > "$OUT.port"
while [ ! -e "$OUT.go" ]; do sleep 0.05; done
`
	testutil.Must(t, os.WriteFile(script, []byte(body), 0o755), "script")
	sup := e.command("run", "--", script)
	sup.Env = append(sup.Env, "OUT="+out)
	logf, _ := os.Create(filepath.Join(e.dir, "launcher.log"))
	sup.Stdout, sup.Stderr = logf, logf
	testutil.Must(t, sup.Start(), "start")
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { err := sup.Wait(); close(exited); done <- err }()
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("launcher log:\n%s", b)
		}
	}()
	// A failed run must not leave its supervisor and session behind: the next run (same job)
	// would find them and fail too. The grace path ends both, and the proxies with them.
	defer func() {
		select {
		case <-exited:
		default:
			_ = sup.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = sup.Process.Kill()
			}
		}
	}()
	var port int
	if !testutil.Eventually(60*time.Second, func() bool {
		b, err := os.ReadFile(out + ".port")
		port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && port > 0
	}) {
		t.Fatal("the wrapped command never saw FFL_PROXY_PORT")
	}
	if testutil.PortFree(port) {
		t.Fatalf("FFL_PROXY_PORT %d is not held by the supervisor", port)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	// The port relays only what jupyter-server-proxy sends: the job's secret header, read from
	// the 0600 file the supervisor named in $FFL_PROXY_SECRET_FILE.
	secretFile := strings.TrimSpace(string(testutil.MustRead(t, out+".secret")))
	if fi, err := os.Lstat(secretFile); err != nil || fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() {
		t.Fatalf("FFL_PROXY_SECRET_FILE %q: %v %v, want a 0600 file", secretFile, fi, err)
	}
	header := "X-Ffl-Proxy-Secret: " + strings.TrimSpace(string(testutil.MustRead(t, secretFile)))
	if code := httpAs(e.user, url); code != 403 {
		t.Errorf("the owner's request without the proxy's secret: HTTP %d, want 403", code)
	}
	proxy := func(name string) (*exec.Cmd, chan int) {
		cmd := e.command("proxy", "--port", strconv.Itoa(port))
		f, _ := os.Create(filepath.Join(e.dir, name+".log"))
		cmd.Stdout, cmd.Stderr = f, f
		testutil.Must(t, cmd.Start(), "start proxy")
		ch := make(chan int, 1)
		go func() { _ = cmd.Wait(); ch <- cmd.ProcessState.ExitCode() }()
		return cmd, ch
	}
	waitExit := func(what string, ch chan int) {
		t.Helper()
		select {
		case code := <-ch:
			if code != 0 {
				b, _ := os.ReadFile(filepath.Join(e.dir, what+".log"))
				t.Errorf("%s exited %d, want 0:\n%s", what, code, b)
			}
		case <-time.After(30 * time.Second):
			b, _ := os.ReadFile(filepath.Join(e.dir, what+".log"))
			t.Fatalf("%s did not exit:\n%s", what, b)
		}
	}
	// attached waits until a proxy has its session (its "ready" line): what the test does next
	// (a SIGTERM, Firefox closed) must find the proxy waiting on that session. A proxy still
	// starting up then (a loaded machine schedules it late) would, rightly, start a new session
	// and stay.
	attached := func(what string) {
		t.Helper()
		logFile := filepath.Join(e.dir, what+".log")
		if !testutil.Eventually(30*time.Second, func() bool {
			b, _ := os.ReadFile(logFile)
			return strings.Contains(string(b), "Firefox session ready for the Jupyter proxy")
		}) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("%s never reported its session ready:\n%s", what, b)
		}
	}
	p1, p1done := proxy("proxy1")
	// jupyter-server-proxy polls the port right after it runs its command: the request is held
	// while the session starts (fakexpra waits 300 ms) and then answered by the session.
	if code := httpAs(e.user, url, header); code != 200 {
		t.Fatalf("owner's first request: HTTP %d, want 200", code)
	}
	attached("proxy1")
	_, p2done := proxy("proxy2") // reuses the running session
	if code := httpAs(e.user, url, header); code != 200 {
		t.Errorf("owner's second request: HTTP %d", code)
	}
	attached("proxy2")
	testutil.Must(t, p1.Process.Signal(syscall.SIGTERM), "TERM proxy")
	waitExit("proxy1", p1done)
	waitExit("proxy2", p2done) // its session ended
	if b, _ := os.ReadFile(filepath.Join(e.dir, "proxy1.log")); strings.Contains(string(b), "level=warning") || strings.Contains(string(b), "level=error") {
		t.Errorf("a normal stop logged something alarming:\n%s", b)
	}
	if testutil.PortFree(port) {
		t.Errorf("the proxy port was released with the session")
	}
	if ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, e.layout().Marker(port)); len(ids) != 0 {
		t.Errorf("stopped session left %v", ids)
	}
	// The owner comes back (jupyter-server-proxy 4.1 never runs an exited command again): the
	// visit itself starts a new session on the held port, and is answered by it.
	if code := httpAs(e.user, url, header); code != 200 {
		t.Fatalf("a visit to the idle proxy port: HTTP %d, want 200 (a new session)", code)
	}
	_, p3done := proxy("proxy3") // the proxy command again: reuses that session
	attached("proxy3")
	var infos []lifecycle.Info
	list := e.command("list", "--json")
	b, err := list.Output()
	testutil.Must(t, err, "list")
	testutil.Must(t, json.Unmarshal(b, &infos), "list json")
	if len(infos) != 1 || infos[0].Port != port {
		t.Fatalf("list: %s", b)
	}
	// Firefox closed: xpra exits by itself, the proxy exits 0; the next visit starts Firefox again.
	testutil.Must(t, syscall.Kill(infos[0].PID, syscall.SIGTERM), "end xpra")
	waitExit("proxy3", p3done)
	if code := httpAs(e.user, url, header); code != 200 {
		t.Errorf("a visit after Firefox was closed: HTTP %d, want 200", code)
	}
	if code := httpAs(testutil.TestUser(t, "ffltest2"), url); code != 0 {
		t.Errorf("another user got HTTP %d from the proxy port", code)
	}
	testutil.Must(t, os.WriteFile(out+".go", nil, 0o644), "go")
	select {
	case <-done:
		if code := sup.ProcessState.ExitCode(); code != 0 {
			t.Errorf("supervisor exit %d, want 0", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not exit after its command")
	}
	e.assertNothingLeft(t, port)
}
