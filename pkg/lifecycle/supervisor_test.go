package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/front"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// testSupervisor builds a supervisor over fake xpra sessions (the settings of testManager). No
// Reaper runs beside the supervisor's own: one that does not own the wrapped command would reap
// it before the supervisor's cmd.Wait, and the supervisor would exit 1 instead of the command's
// status.
func testSupervisor(t *testing.T, faketree, fakexpra, dir, job, mode string) (SupervisorConfig, layout.Layout) {
	t.Helper()
	m := newTestManager(t, faketree, fakexpra, dir, job, mode, 300*time.Millisecond, nil)
	st := m.Settings()
	st.Reaper, st.Self, st.BootID = nil, proc.Identity{}, ""
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	return SupervisorConfig{Settings: st, Log: logrus.NewEntry(log)}, st.Layout
}

type runResult struct {
	code int
	err  error
}

func runSupervisor(cfg SupervisorConfig) (chan os.Signal, chan runResult) {
	sigs := make(chan os.Signal, 2)
	done := make(chan runResult, 1)
	go func() {
		code, err := NewSupervisor(cfg).Run(context.Background(), sigs)
		done <- runResult{code, err}
	}()
	return sigs, done
}

func waitResult(t *testing.T, done chan runResult) runResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not return within 60 s")
	}
	return runResult{}
}

func assertJobGone(t *testing.T, l layout.Layout, ports ...int) {
	t.Helper()
	if !testutil.Eventually(5*time.Second, func() bool { return len(markerProcs(t, l.JobMarkerPrefix())) == 0 }) {
		t.Errorf("job %s left processes: %v", l.JobKey, markerProcs(t, l.JobMarkerPrefix()))
	}
	for _, p := range []string{l.HomeJobDir(), l.FallbackRuntimeJobDir()} {
		if testutil.Exists(p) {
			t.Errorf("left behind: %s", p)
		}
	}
	for _, p := range ports {
		if !testutil.PortFree(p) {
			t.Errorf("port %d still held", p)
		}
	}
}

// TestSupervisorGracePath: two sessions announced, then SIGTERM: exit 143, nothing left.
func TestSupervisorGracePath(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestSupervisorGracePath")
	if !ok {
		return
	}
	cfg, l := testSupervisor(t, faketree, fakexpra, dir, "90", "ignore-term")
	infos := make(chan Info, 4)
	cfg.Sessions = 2
	cfg.Announce = func(i Info) { infos <- i }
	sigs, done := runSupervisor(cfg)
	var ports []int
	for len(ports) < 2 {
		select {
		case i := <-infos:
			ports = append(ports, i.Port)
			if i.WindowMS < i.HTTPMS || i.Job != "90" {
				t.Errorf("announced %+v", i)
			}
		case r := <-done:
			t.Fatalf("supervisor ended early: %+v", r)
		case <-time.After(60 * time.Second):
			t.Fatal("no sessions announced")
		}
	}
	termAndAssertGone(t, sigs, done, l, ports...)
}

// TestSupervisorWrappedCommand: the wrapped command sees the control socket and a proxy port
// the supervisor holds for it; its exit status is the supervisor's; on SIGTERM it is ended.
func TestSupervisorWrappedCommand(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestSupervisorWrappedCommand")
	if !ok {
		return
	}
	t.Run("status passes through", func(t *testing.T) {
		cfg, l := testSupervisor(t, faketree, fakexpra, filepath.Join(dir, "a"), "91", "no-tree")
		cfg.Command = []string{"/bin/sh", "-c", "exit 7"}
		_, done := runSupervisor(cfg)
		if r := waitResult(t, done); r.err != nil || r.code != 7 {
			t.Errorf("Run = %d, %v; want 7", r.code, r.err)
		}
		assertJobGone(t, l)
	})
	t.Run("proxy port held, TERM ends the command", func(t *testing.T) {
		cfg, l := testSupervisor(t, faketree, fakexpra, filepath.Join(dir, "b"), "92", "no-tree")
		out := filepath.Join(dir, "b", "env.out")
		cfg.Command = []string{"/bin/sh", "-c", `echo "$FFL_PROXY_PORT $FFL_CONTROL_SOCKET" > ` + out + `; exec sleep 60`}
		cfg.ProxyPort = true
		sigs, done := runSupervisor(cfg)
		var fields []string
		if !testutil.Eventually(30*time.Second, func() bool {
			b, err := os.ReadFile(out)
			fields = strings.Fields(string(b))
			return err == nil && len(fields) == 2
		}) {
			t.Fatal("the wrapped command never wrote its environment")
		}
		port, err := strconv.Atoi(fields[0])
		if err != nil || port < cfg.Settings.PortMin || port > cfg.Settings.PortMax {
			t.Fatalf("FFL_PROXY_PORT %q: not a port of the range", fields[0])
		}
		if testutil.PortFree(port) {
			t.Errorf("proxy port %d is not held", port)
		}
		if !strings.HasSuffix(fields[1], "/"+layout.ControlSocket) {
			t.Errorf("FFL_CONTROL_SOCKET %q", fields[1])
		}
		termAndAssertGone(t, sigs, done, l, port)
	})
}

// TestSupervisorProxyPrestart: with ProxyPrestart (jupyter_prestart = true) the proxy port's
// session starts with the supervisor, before anyone visits the port or runs `ffl-launch proxy`;
// with ProxyPrestartRecent ("recent") only when the state dir records a visit within the
// window; otherwise the port stays idle until then. The client's WebSocket through the proxy
// port (a visit) writes the record, in every mode.
func TestSupervisorProxyPrestart(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestSupervisorProxyPrestart")
	if !ok {
		return
	}
	tests := []struct {
		name   string
		always bool
		recent time.Duration
		record time.Duration // a visit this long ago in the state dir (0: none)
		want   bool
	}{
		{name: "true", always: true, want: true},
		{name: "false", want: false},
		{name: "recent, visited yesterday", recent: 14 * 24 * time.Hour, record: 24 * time.Hour, want: true},
		{name: "recent, visited a month ago", recent: 14 * 24 * time.Hour, record: 30 * 24 * time.Hour, want: false},
		{name: "recent, never visited", recent: 14 * 24 * time.Hour, want: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := filepath.Join(dir, fmt.Sprintf("p%d", i))
			cfg, l := testSupervisor(t, faketree, fakexpra, sub, fmt.Sprintf("9%d", 5+i), "no-tree")
			testutil.Must(t, os.MkdirAll(l.StateDir, 0o700))
			if tt.record > 0 {
				testutil.Must(t, writeVisit(l.StateDir, l.UID, time.Now().Add(-tt.record)))
			}
			out := filepath.Join(sub, "env.out")
			cfg.Command = []string{"/bin/sh", "-c", `echo "$FFL_PROXY_PORT $FFL_PROXY_SECRET_FILE" > ` + out + `; exec sleep 60`}
			cfg.ProxyPort, cfg.ProxyPrestart, cfg.ProxyPrestartRecent = true, tt.always, tt.recent
			sigs, done := runSupervisor(cfg)
			var port int
			var secretFile string
			if !testutil.Eventually(30*time.Second, func() bool {
				b, err := os.ReadFile(out)
				f := strings.Fields(string(b))
				if err != nil || len(f) != 2 {
					return false
				}
				port, _ = strconv.Atoi(f[0])
				secretFile = f[1]
				return port > 0
			}) {
				t.Fatal("the wrapped command never wrote FFL_PROXY_PORT")
			}
			started := func() bool { return sessionDirExists(l, port) }
			if tt.want {
				if !testutil.Eventually(30*time.Second, started) {
					t.Fatal("no session on the proxy port before any visit")
				}
			} else {
				time.Sleep(300 * time.Millisecond) // a start would have made its dir by now
				if started() {
					t.Fatal("a session started on the proxy port before a visit")
				}
			}
			// The client's WebSocket: held until the session is ready (started now by the
			// visit where it was not before), then relayed to (fake) xpra, and recorded.
			before := time.Now().Add(-time.Second)
			secret, err := os.ReadFile(secretFile)
			testutil.Must(t, err, "read the proxy secret")
			req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
			req.Header.Set(front.ProxySecretHeader, strings.TrimSpace(string(secret)))
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("the proxy port's session does not answer: %v", err)
			}
			resp.Body.Close()
			if !testutil.Eventually(10*time.Second, func() bool {
				last, err := lastVisit(l.StateDir, l.UID)
				return err == nil && last.After(before)
			}) {
				last, err := lastVisit(l.StateDir, l.UID)
				t.Errorf("after a visit the record says %v, %v; want a time after %v", last, err, before)
			}
			termAndAssertGone(t, sigs, done, l, port)
		})
	}
}

// sessionDirExists says whether a session dir of port exists in one of l's runtime job dirs.
func sessionDirExists(l layout.Layout, port int) bool {
	for _, d := range l.RuntimeJobDirs() {
		if testutil.Exists(filepath.Join(d, layout.SessionDirName(port))) {
			return true
		}
	}
	return false
}

// termAndAssertGone sends the supervisor SIGTERM and asserts exit 143 and nothing of the job
// (and of ports) left.
func termAndAssertGone(t *testing.T, sigs chan os.Signal, done chan runResult, l layout.Layout, ports ...int) {
	t.Helper()
	sigs <- syscall.SIGTERM
	if r := waitResult(t, done); r.err != nil || r.code != 143 {
		t.Errorf("Run = %d, %v; want 143", r.code, r.err)
	}
	assertJobGone(t, l, ports...)
}

// TestSupervisorTermDuringStart: the SIGTERM Slurm sends while a session is still starting
// (here the proxy port's prestarted one, stopped as soon as its directory exists) ends it like
// any other: exit 143, nothing left. Under -race it also shows that the stop reads what the start
// writes (xpra's command and identity) only through their lock.
func TestSupervisorTermDuringStart(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestSupervisorTermDuringStart")
	if !ok {
		return
	}
	cfg, l := testSupervisor(t, faketree, fakexpra, dir, "97", "no-tree")
	out := filepath.Join(dir, "env.out")
	cfg.Command = []string{"/bin/sh", "-c", `echo "$FFL_PROXY_PORT" > ` + out + `; exec sleep 60`}
	cfg.ProxyPort, cfg.ProxyPrestart = true, true
	sigs, done := runSupervisor(cfg)
	var port int
	if !testutil.Eventually(30*time.Second, func() bool {
		b, err := os.ReadFile(out)
		port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && port > 0
	}) {
		t.Fatal("the wrapped command never wrote FFL_PROXY_PORT")
	}
	if !testutil.Eventually(30*time.Second, func() bool { return sessionDirExists(l, port) }) {
		t.Fatal("no session on the proxy port")
	}
	termAndAssertGone(t, sigs, done, l, port)
}

// TestSupervisorEarlierRun: a job key this node has seen before. Leftovers of a provably dead
// supervisor are reclaimed before anything starts; a live one is refused; session dirs without
// any record are refused with what is in the way.
func TestSupervisorEarlierRun(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestSupervisorEarlierRun")
	if !ok {
		return
	}
	bootID, err := proc.BootID()
	if err != nil {
		t.Fatal(err)
	}
	plant := func(l layout.Layout, sup *proc.Identity) {
		jd := l.FallbackRuntimeJobDir()
		testutil.Must(t, os.MkdirAll(filepath.Join(jd, layout.SessionDirName(8001)), 0o700), "mkdir")
		if sup != nil {
			data, err := layout.Supervisor{Schema: layout.StateSchema, Job: l.JobKey, Node: l.Node, BootID: bootID, Process: *sup, Started: time.Now()}.Marshal()
			testutil.Must(t, err, "marshal")
			testutil.Must(t, os.WriteFile(filepath.Join(jd, layout.SupervisorFile), data, 0o600), "write")
		}
	}
	// A dead process: one that ran and was reaped.
	c := exec.Command("/bin/true")
	testutil.Must(t, c.Start(), "start")
	deadID := proc.Identity{PID: c.Process.Pid, StartTime: 1, UID: os.Getuid()}
	_ = c.Wait()

	t.Run("dead supervisor: reclaimed", func(t *testing.T) {
		cfg, l := testSupervisor(t, faketree, fakexpra, filepath.Join(dir, "dead"), "93", "no-tree")
		plant(l, &deadID)
		var called atomic.Bool
		cfg.ReclaimJob = func(context.Context, string) error {
			called.Store(true)
			return os.RemoveAll(l.FallbackRuntimeJobDir())
		}
		sigs, done := runSupervisor(cfg)
		if !testutil.Eventually(30*time.Second, func() bool {
			return testutil.Exists(filepath.Join(l.FallbackRuntimeJobDir(), layout.SupervisorFile)) && called.Load()
		}) {
			t.Fatal("supervisor did not start after reclaiming")
		}
		sigs <- syscall.SIGTERM
		if r := waitResult(t, done); r.err != nil || r.code != 143 {
			t.Errorf("Run = %d, %v", r.code, r.err)
		}
	})
	t.Run("live supervisor: refused", func(t *testing.T) {
		cfg, l := testSupervisor(t, faketree, fakexpra, filepath.Join(dir, "live"), "94", "no-tree")
		sleeper := exec.Command("/bin/sleep", "60")
		testutil.Must(t, sleeper.Start(), "start")
		defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
		live, err := proc.Lookup(sleeper.Process.Pid)
		testutil.Must(t, err, "lookup")
		plant(l, &live)
		_, done := runSupervisor(cfg)
		r := waitResult(t, done)
		if !errors.Is(r.err, ErrBadInput) || !strings.Contains(r.err.Error(), "already runs") {
			t.Errorf("Run = %d, %v; want an already-runs error", r.code, r.err)
		}
	})
	t.Run("no record: refused, naming the dir", func(t *testing.T) {
		cfg, l := testSupervisor(t, faketree, fakexpra, filepath.Join(dir, "none"), "95", "no-tree")
		plant(l, nil)
		_, done := runSupervisor(cfg)
		r := waitResult(t, done)
		if !errors.Is(r.err, ErrBadInput) || !strings.Contains(r.err.Error(), layout.SessionDirName(8001)) {
			t.Errorf("Run = %d, %v; want a refusal naming the session dir", r.code, r.err)
		}
	})
}
