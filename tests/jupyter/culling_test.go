package jupyter

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
)

// Settings of TestCulling: jupyterhub-idle-culler's timeout and period, and ffl's idle_timeout
// for the user's sessions. Activity reaches the hub every 5 s (hubConfig: last_activity_interval,
// JUPYTERHUB_ACTIVITY_INTERVAL).
const (
	cullTimeout = 20 * time.Second
	cullEvery   = 5 * time.Second
	idleTimeout = 20 * time.Second
)

// idleSays is what the Firefox tab shows once xpra has disconnected it for idle_timeout (the
// front's disconnect page).
var idleSays = "Disconnected after " + strconv.Itoa(int(idleTimeout.Seconds())) + " seconds without input"

// TestCulling: what jupyterhub-idle-culler counts as use of a server with a Firefox session.
// ffl's choice (idle_timeout): keyboard and mouse input in Firefox is use; an open tab without
// input is not. Every byte through jupyter-server-proxy is activity for the hub, and xpra's
// HTML5 client pings every few seconds, so ffl has xpra drop the tab's connection after
// idle_timeout without input; the tab then says why and sends nothing more.
//
//  1. The user types and clicks in Firefox (DevTools key and mouse events, as a user's): the
//     server outlives three culler timeouts, and the tab still shows Firefox, although that is
//     three times idle_timeout.
//  2. The user stops, the tab stays open: after idle_timeout the tab says it was disconnected
//     for want of input, and the culler stops the server after its own timeout; culling leaves
//     nothing.
//  3. Again with a tab that is closed at once: culled, nothing left.
//
// The user's JupyterLab tab goes to about:blank first: its own polling would count as activity.
func TestCulling(t *testing.T) {
	e := env(t)
	e.requireProxy(t)
	defer e.hub.dumpOnFailure(t)
	u := e.users["ffluser1"]
	withIdleTimeout(t, e, u, idleTimeout)
	s := e.newSession(t, u.Name)
	s.spawn(t)
	t.Cleanup(func() { _ = e.hub.StopServer(u.Name) })
	// Firefox in the browser's first tab, in place of JupyterLab (whose polling would count as
	// activity); DevTools input events there are taken as in the e2e tests.
	tab := s.b.ctx
	d, st, err := s.b.openFirefox(tab, u.Name, s.color, visitLimit)
	if err != nil {
		t.Fatalf("open Firefox: %v", err)
	}
	t.Logf("Firefox painted in %.2f s: %s", d.Seconds(), st.Detail)
	job := s.job

	stopCuller := e.hub.startCuller(t, cullTimeout, cullEvery)
	defer stopCuller()

	// 1. Typing and clicking: never culled, never disconnected.
	hold := 3 * cullTimeout
	deadline := time.Now().Add(hold)
	inputs := 0
	for time.Now().Before(deadline) {
		// Input goes to the active tab only (a hidden one may never take it): bring the Firefox
		// tab to the front first, as a user's click on it would.
		ictx, cancel := context.WithTimeout(tab, 60*time.Second)
		_, err := chromedp.Call(ictx, page.BringToFront, cdp.Empty{})
		if err == nil {
			err = chromedp.Do(ictx, chromedp.MouseClickXY(640, 450), chromedp.KeyEvent("f"))
		}
		cancel()
		if err != nil {
			t.Fatalf("input in the Firefox tab: %v", err)
		}
		inputs++
		if err := serverAlive(e, u.Name); err != nil {
			t.Fatalf("the culler stopped %s's server while the user typed and clicked in Firefox (%v after the culler started, timeout %v): %v",
				u.Name, hold-time.Until(deadline), cullTimeout, err)
		}
		time.Sleep(3 * time.Second)
	}
	if st, _ := job.state(); st != "RUNNING" {
		t.Fatalf("job %s: %s after %v of input, want RUNNING", job.ID, st, hold)
	}
	if st, err := chromedp.Run(tab, chromedp.Evaluate[pageState](fmt.Sprintf(checkPageJS, hexColorArgs(s.color)...))); err != nil || st.State != "painted" {
		s.b.saveShot(tab, "culling-after-input")
		t.Fatalf("after %v of input (%d clicks and keys) the Firefox tab no longer shows Firefox: %+v %v", hold, inputs, st, err)
	}
	u1, _ := e.hub.User(u.Name)
	t.Logf("after %v of clicks and keys in Firefox (%d, idle_timeout %v): server running, tab painted, the hub's last_activity %s", hold, inputs, idleTimeout, u1.Servers[""].LastActivity)

	// 2. The tab stays open without input: it says so after idle_timeout, then is culled.
	t0 := time.Now()
	var said string
	if !slurmtest.WaitUntil(idleTimeout+90*time.Second, func() bool {
		said, _ = chromedp.Run(tab, chromedp.Evaluate[string](`document.body ? document.body.innerText.replace(/\s+/g, " ") : ""`))
		return strings.Contains(said, idleSays)
	}) {
		s.b.saveShot(tab, "culling-idle-tab")
		t.Fatalf("the Firefox tab left without input does not say %q after %v: %q", idleSays, time.Since(t0), said)
	}
	s.b.saveShot(tab, "culling-idle-tab")
	addFigure(t, fmt.Sprintf("last input to the tab's idle message (idle_timeout %v)", idleTimeout), time.Since(t0))
	t.Logf("the idle tab says: %q", said)
	waitCulled(t, e, u.Name, fmt.Sprintf("its Firefox tab was left open without input (idle_timeout %v)", idleTimeout))
	addFigure(t, fmt.Sprintf("last input to server culled, tab open (idle_timeout %v, idle-culler timeout %v, every %v)", idleTimeout, cullTimeout, cullEvery), time.Since(t0))
	job.assertClean(t, nil)

	// 3. A tab closed at once.
	s.spawn(t)
	if err := chromedp.Do(s.b.ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	closeTab2, d, st, err := s.b.OpenFirefox(u.Name, s.color, visitLimit)
	closeTab2()
	if err != nil {
		t.Fatalf("open Firefox again: %v", err)
	}
	t.Logf("Firefox painted in %.2f s, tab closed: %s", d.Seconds(), st.Detail)
	t0 = time.Now()
	waitCulled(t, e, u.Name, "its Firefox tab was closed")
	addFigure(t, fmt.Sprintf("tab closed to server culled (idle-culler timeout %v, every %v)", cullTimeout, cullEvery), time.Since(t0))
	s.job.assertClean(t, nil)
}

// withIdleTimeout gives u's sessions the idle_timeout d (a top-level key, so first in the file)
// until the test ends.
func withIdleTimeout(t *testing.T, e *Env, u User, d time.Duration) {
	t.Helper()
	file := e.userConfig(u)
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("idle_timeout = %q\n", d.String())
	if err := os.WriteFile(file, append([]byte(line), orig...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(file, orig, 0o644) })
}

// serverAlive says why the hub does not list name's server as running, or nil.
func serverAlive(e *Env, name string) error {
	u, err := e.hub.User(name)
	if err != nil {
		return err
	}
	if _, ok := u.Servers[""]; !ok || u.Pending != nil {
		return fmt.Errorf("the hub says: %+v", u)
	}
	return nil
}

// waitCulled waits until the hub lists no server of name (the culler stopped it).
func waitCulled(t *testing.T, e *Env, name, why string) {
	t.Helper()
	limit := cullTimeout + 2*cullEvery + 90*time.Second // activity reports, a busy machine
	var last HubUser
	if !slurmtest.WaitUntil(limit, func() bool {
		u, err := e.hub.User(name)
		last = u
		return err == nil && len(u.Servers) == 0 && u.Pending == nil
	}) {
		t.Fatalf("%s's server still listed %v after %s (culler timeout %v): %+v", name, limit, why, cullTimeout, last)
	}
}

// hexColorArgs is the colour #rrggbb as checkPageJS's three arguments.
func hexColorArgs(color string) []any {
	r, g, b := hexColor(color)
	return []any{r, g, b}
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
