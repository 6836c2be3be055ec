package jupyter

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
)

// Settings of TestCulling: jupyterhub-idle-culler's timeout and period. Activity reaches the hub
// every 5 s (hubConfig: last_activity_interval, JUPYTERHUB_ACTIVITY_INTERVAL).
const (
	cullTimeout = 20 * time.Second
	cullEvery   = 5 * time.Second
)

// TestCulling: what jupyterhub-idle-culler counts as use of a server with a Firefox session.
// ffl's choice is the proxy chain's own: any traffic through the user's Firefox tab is activity.
// An open tab keeps its server (the xpra HTML5 client pings its server every 5 s through
// jupyter-server-proxy, which records every websocket frame and ping as activity, and
// configurable-http-proxy counts every byte on the route), even with nobody at the keyboard;
// a closed tab lets the culler stop the server after its timeout, and culling leaves nothing.
// The user's JupyterLab tab is closed first: its own polling would count as activity too.
func TestCulling(t *testing.T) {
	e := env(t)
	e.requireProxy(t)
	defer e.hub.dumpOnFailure(t)
	s := e.newSession(t, "ffluser1")
	s.spawn(t)
	t.Cleanup(func() { _ = e.hub.StopServer("ffluser1") })
	// Only the Firefox tab talks to the server: the first tab (JupyterLab) goes to about:blank.
	if err := chromedp.Do(s.b.ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	closeTab, d, st, err := s.b.OpenFirefox(s.u.Name, s.color, visitLimit)
	defer closeTab()
	if err != nil {
		t.Fatalf("open Firefox: %v", err)
	}
	t.Logf("Firefox painted in %.2f s: %s", d.Seconds(), st.Detail)
	job := s.job

	stopCuller := e.hub.startCuller(t, cullTimeout, cullEvery)
	defer stopCuller()

	// The tab stays open, nobody types: the server must outlive three culler timeouts.
	hold := 3 * cullTimeout
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) {
		u, err := e.hub.User(s.u.Name)
		if err != nil {
			t.Fatal(err)
		}
		srv, ok := u.Servers[""]
		if !ok || u.Pending != nil {
			t.Fatalf("the culler stopped ffluser1's server while its Firefox tab was open (%v after the culler started, timeout %v): %+v", hold-time.Until(deadline), cullTimeout, u)
		}
		if time.Now().Add(2 * time.Second).After(deadline) {
			t.Logf("after %v with the Firefox tab open and no input: server running, the hub's last_activity %s", hold, srv.LastActivity)
		}
		time.Sleep(2 * time.Second)
	}
	if st, _ := job.state(); st != "RUNNING" {
		t.Fatalf("job %s: %s after %v with the tab open, want RUNNING", job.ID, st, hold)
	}

	// The user closes the tab: the culler stops the server after its timeout.
	closeTab()
	t0 := time.Now()
	limit := cullTimeout + 2*cullEvery + 90*time.Second // activity reports, a busy machine
	var last HubUser
	if !slurmtest.WaitUntil(limit, func() bool {
		u, err := e.hub.User(s.u.Name)
		last = u
		return err == nil && len(u.Servers) == 0 && u.Pending == nil
	}) {
		t.Fatalf("ffluser1's server still listed %v after its Firefox tab was closed (culler timeout %v): %+v", limit, cullTimeout, last)
	}
	addFigure(t, fmt.Sprintf("tab closed to server culled (idle-culler timeout %v, every %v)", cullTimeout, cullEvery), time.Since(t0))
	job.assertClean(t, nil)
}

// startCuller runs jupyterhub-idle-culler from the stack's venv against the hub, as the suite's
// admin service, with the given timeout and period, until the returned func is called. Its log
// goes to the hub's dir.
func (h *Hub) startCuller(t *testing.T, timeout, every time.Duration) func() {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(h.dir, "idle-culler.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(h.e.stack.Bin("jupyterhub-idle-culler"), "--url="+h.URL+"/hub/api",
		"--timeout="+strconv.Itoa(int(timeout.Seconds())), "--cull-every="+strconv.Itoa(int(every.Seconds())))
	cmd.Dir = h.dir // no idle_culler_config.py there: nothing is taken from the caller's cwd
	cmd.Env = isolatedEnv("JUPYTERHUB_API_TOKEN=" + h.token)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start jupyterhub-idle-culler: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		log.Close()
		if t.Failed() {
			data, _ := os.ReadFile(log.Name())
			t.Logf("idle-culler log %s:\n%s", log.Name(), tail(string(data), 40))
		}
	}
}
