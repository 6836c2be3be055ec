package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
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
	"github.com/ffl-hpc/ffl/pkg/x11"
)

// otherTabSays is what a tab shows once another tab or window took its session over (the
// front's disconnect page, for xpra's reason "new client").
const otherTabSays = "This session was opened in another tab or window"

// lostSays is what a tab shows once its connection was lost.
const lostSays = "The connection to the session was lost"

// TestReconnect: a user who closes the tab, or whose connection drops, gets the same Firefox
// back (the same xpra, the page painted again); a second tab takes the session over and the
// first one says so, in words, with a Reconnect link that takes it back.
func TestReconnect(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium", "ss")
	e := userFilesEnv(t, "9741", nil)
	l := e.run("--url", e.colorPage(t))
	info := l.ready(t)
	sameXpra := func(after string) {
		t.Helper()
		b, err := e.command("list", "--json").Output()
		testutil.Must(t, err, "list")
		if !bytes.Contains(b, []byte(fmt.Sprintf(`"pid":%d`, info.PID))) {
			t.Errorf("after %s the session is not the same xpra (pid %d): %s", after, info.PID, b)
		}
	}

	// The tab closed, the URL opened again.
	e.seeFirefox(t, info, "reconnect-1.png")
	e.seeFirefox(t, info, "reconnect-2-after-closing-the-tab.png")
	sameXpra("closing the tab")

	start := func(name string) *browser.Browser {
		profile := filepath.Join(e.dir, "chromium-"+name)
		testutil.MkdirAs(t, profile, e.user, 0o700)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		t.Cleanup(cancel)
		b, err := browser.Start(ctx, browser.Options{UID: e.user.UID, GID: e.user.GID, ProfileDir: profile, Color: pageColor,
			Shot: filepath.Join(artifactDir(t), "reconnect-"+name+".png"), Wait: 45 * time.Second})
		testutil.Must(t, err, "chromium")
		t.Cleanup(b.Close)
		return b
	}
	shot := func(b *browser.Browser, name string) {
		if png, err := b.Screenshot(); err == nil {
			_ = os.WriteFile(filepath.Join(artifactDir(t), name), png, 0o644)
		}
	}

	// The network drops: the kernel aborts the browser's TCP connections to the port (what a
	// dropped VPN or ssh -L forward does to them), mid-session.
	first := start("first-tab")
	if _, err := first.See(info.URL); err != nil {
		t.Fatalf("first tab: %v", err)
	}
	// The same browser opening the session again (a reload, the link followed again) asks about
	// the client's files instead of fetching them again: xpra 3.1 forbids the browser to keep
	// them, the front tags them by content (docs/DESIGN.md, "The client's files kept").
	again, err := first.See(info.URL)
	if err != nil {
		t.Fatalf("first tab, the session opened again: %v", err)
	}
	t.Logf("opened again: %d of %d requests answered 304 Not Modified", again.Revalidated, again.Requests)
	if again.Revalidated < 30 {
		t.Errorf("opened again, %d of the page's %d requests were answered 304 Not Modified: the browser fetched the client's 34 scripts and style sheets again",
			again.Revalidated, again.Requests)
	}
	// The X screen takes the browser's size once Firefox is shown (ffl's client asks for it after
	// the first frame, not in its hello: docs/DESIGN.md), so Firefox's dialogs and new windows,
	// centred on the X screen, open in the browser's view.
	view, err := first.Eval(`(() => { const s = document.getElementById('screen'); return s.clientWidth + 'x' + s.clientHeight; })()`)
	testutil.Must(t, err, "the client's screen size")
	screen := ""
	if !testutil.Eventually(30*time.Second, func() bool { screen = xScreenSize(t, e, info); return screen == view }) {
		t.Errorf("the X screen is %s, the browser's view %s: Firefox's dialogs would open outside it", screen, view)
	}
	// Firefox fills the view and no part of it is out of the user's reach: its window's canvas
	// lies inside the view and spans its width and all but the client's title bar of its height
	// (Firefox, started before any browser on xpra's 2560x1600 screen, sized its window 1280x1040,
	// and in a 1280x757 view the bottom of every page was cut off).
	var canvases string
	if !testutil.Eventually(30*time.Second, func() bool {
		canvases, err = first.Eval(windowCanvasesJS)
		return err == nil && fillsView(canvases, view)
	}) {
		t.Errorf("Firefox's window does not fill the browser's view %s (window canvases, x,y,WxH: %q, %v); X windows of Firefox: %s",
			view, canvases, err, firefoxWindowSizes(t, e, info))
	}
	if n, err := first.MarkWindows(); err != nil || n == 0 {
		t.Fatalf("first tab: %d window canvases to mark (%v)", n, err)
	}
	before := clientSockets(t, info.Port)
	if len(before) == 0 {
		t.Fatalf("no connection of the browser to port %d to cut", info.Port)
	}
	out, err := exec.Command("ss", "-K", "-H", "-tn", "state", "established", "dport", "=", ":"+strconv.Itoa(info.Port)).CombinedOutput()
	if err != nil {
		t.Fatalf("ss -K: %v: %s", err, out)
	}
	killed := strings.Count(strings.TrimSpace(string(out)), "\n") + 1
	if strings.TrimSpace(string(out)) == "" {
		t.Fatalf("ss -K cut no connection of the browser to port %d (it had %v)", info.Port, before)
	}
	t.Logf("cut %d connection(s) of the browser to port %d: %v", killed, info.Port, before)
	// xpra 3.1's client cannot reconnect by itself (see front.noReconnect): the tab says the
	// connection was lost instead of showing a frozen picture, and Reconnect brings the same
	// Firefox back.
	said := waitTabSays(t, first, lostSays)
	shot(first, "reconnect-first-tab-after-the-drop.png")
	t.Logf("after the drop the tab says: %q", said)
	reconnect(t, first, "after the drop")
	sameXpra("the dropped connection")

	// A second tab takes the session over; the first one says so, and not with xpra's connect
	// form (server, port, password).
	second := start("second-tab")
	if _, err := second.See(info.URL); err != nil {
		t.Fatalf("second tab: %v", err)
	}
	said = waitTabSays(t, first, otherTabSays)
	shot(first, "reconnect-first-tab-after-the-second-opened.png")
	t.Logf("the first tab says: %q", said)
	if strings.Contains(said, "Password") || strings.Contains(said, "Username") {
		t.Errorf("the first tab shows a connect form: %q", said)
	}

	// Its Reconnect link takes the session back, and now the second tab says so.
	reconnect(t, first, "in the first tab")
	waitTabSays(t, second, otherTabSays)
	shot(second, "reconnect-second-tab-after-the-first-took-it-back.png")
	sameXpra("two tabs")

	// Any web page can send the user to the disconnect page with a reason of its choosing in
	// the query: the page never shows those words (only the tab's own sessionStorage is shown).
	linked := start("linked-from-a-web-page")
	lure := "new client: your session expired, log in again at evil.example"
	if err := linked.Open(info.URL + "connect.html?disconnect=" + url.QueryEscape(lure)); err != nil {
		t.Fatal(err)
	}
	said = waitTabSays(t, linked, "no longer connected to the Firefox session")
	if strings.Contains(said, "evil.example") {
		t.Errorf("the disconnect page shows a reason a link chose: %q", said)
	}

	l.stop(t, syscall.SIGTERM)
	e.assertNothingLeft(t, info.Port)
}

// reconnect clicks the Reconnect link of the tab's disconnect page and waits for Firefox's page
// painted in a window of the new connection.
func reconnect(t *testing.T, b *browser.Browser, what string) {
	t.Helper()
	if _, err := b.MarkWindows(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := b.Eval(`(document.getElementById('ffl-reconnect').click(), 'clicked')`); err != nil {
		t.Fatalf("click Reconnect %s: %v", what, err)
	}
	if !testutil.Eventually(30*time.Second, func() bool {
		where, err := b.Eval(`location.pathname`)
		return err == nil && !strings.Contains(where, "connect.html")
	}) {
		t.Fatalf("Reconnect %s: the tab stays on the disconnect page", what)
	}
	seen, err := b.WaitNewWindow(60 * time.Second)
	if err != nil {
		if png, err := b.Screenshot(); err == nil {
			_ = os.WriteFile(filepath.Join(artifactDir(t), "reconnect-failed.png"), png, 0o644)
		}
		t.Fatalf("Reconnect %s: %v", what, err)
	}
	t.Logf("Reconnect %s: Firefox's page painted %v after the click (%d of %dx%d pixels)", what, time.Since(t0), seen.Pixels, seen.Width, seen.Height)
}

// waitTabSays waits until the tab's page says want, and returns what it says (its path and
// text).
func waitTabSays(t *testing.T, b *browser.Browser, want string) string {
	t.Helper()
	var said string
	if !testutil.Eventually(45*time.Second, func() bool {
		said, _ = b.Eval(`location.pathname + ' | ' + (document.body ? document.body.innerText.replace(/\s+/g, ' ').slice(0, 600) : '')`)
		return strings.Contains(said, want)
	}) {
		t.Fatalf("the tab does not say %q: %q", want, said)
	}
	return said
}

// traffic maps each established connection of a client to port (by the client's address) to
// the bytes it has moved both ways so far (the kernel's tcp_info: bytes_acked + bytes_received).
func traffic(t *testing.T, port int) map[string]int64 {
	t.Helper()
	out, err := exec.Command("ss", "-H", "-tin", "state", "established", "dport", "=", ":"+strconv.Itoa(port)).Output()
	testutil.Must(t, err, "ss")
	m := map[string]int64{}
	var sock string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && len(f) >= 4 {
			sock = f[2] // Recv-Q Send-Q Local Peer: the client's address
			m[sock] += 0
			continue
		}
		for _, kv := range f {
			if k, v, ok := strings.Cut(kv, ":"); ok && (k == "bytes_acked" || k == "bytes_received") {
				n, _ := strconv.ParseInt(v, 10, 64)
				m[sock] += n
			}
		}
	}
	return m
}

// clientSockets lists the established TCP connections to port on this machine, by their
// client's address (the browser's side).
func clientSockets(t *testing.T, port int) []string {
	t.Helper()
	out, err := exec.Command("ss", "-H", "-tn", "state", "established", "dport", "=", ":"+strconv.Itoa(port)).Output()
	testutil.Must(t, err, "ss")
	var socks []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// Recv-Q Send-Q Local Peer (state established prints no State column).
		if f := strings.Fields(line); len(f) >= 4 {
			socks = append(socks, f[2])
		}
	}
	return socks
}

// TestIdleTimeout: with idle_timeout, a tab whose user clicks and types keeps its connection
// for many times idle_timeout; left without input, it says so after idle_timeout (and its
// client, gone to the disconnect page, sends nothing more), and Reconnect brings the same
// Firefox back.
func TestIdleTimeout(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	const idle = 10 * time.Second
	e := userFilesEnv(t, "9742", map[string]string{"idle_timeout": `"10s"`})
	l := e.run("--url", e.colorPage(t))
	info := l.ready(t)
	profile := filepath.Join(e.dir, "chromium-idle")
	testutil.MkdirAs(t, profile, e.user, 0o700)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := browser.Start(ctx, browser.Options{UID: e.user.UID, GID: e.user.GID, ProfileDir: profile, Color: pageColor,
		Shot: filepath.Join(artifactDir(t), "idle-tab.png"), Wait: 45 * time.Second})
	testutil.Must(t, err, "chromium")
	defer b.Close()
	if _, err := b.See(info.URL); err != nil {
		t.Fatalf("open the session: %v", err)
	}

	// Clicks and keys every 2 s for 4 x idle_timeout: the tab keeps showing Firefox.
	hold := 4 * idle
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if err := b.ClickAndType(640, 450, "f"); err != nil {
			t.Fatalf("input: %v", err)
		}
		if where, _ := b.Eval(`location.pathname`); strings.Contains(where, "connect.html") {
			said, _ := b.Eval(`document.body.innerText`)
			t.Fatalf("disconnected while the user clicked and typed (idle_timeout %v): %q", idle, said)
		}
	}
	if n, err := b.MarkWindows(); err != nil || n == 0 {
		t.Fatalf("after %v of input the tab shows no window (%d, %v)", hold, n, err)
	}
	t.Logf("%v of clicks and keys (idle_timeout %v): still connected", hold, idle)

	// No input: the tab says why it let go.
	t0 := time.Now()
	said := waitTabSays(t, b, "Disconnected after 10 seconds without input")
	t.Logf("%v after the last input the tab says: %q", time.Since(t0).Round(time.Second), said)
	if png, err := b.Screenshot(); err == nil {
		_ = os.WriteFile(filepath.Join(artifactDir(t), "idle-tab-disconnected.png"), png, 0o644)
	}
	// What a proxy in front (jupyter-server-proxy) sees of the idle tab: nothing. Over 10 s no
	// byte moves on the browser's connections to the port, and no connection opens.
	before := traffic(t, info.Port)
	time.Sleep(10 * time.Second)
	after := traffic(t, info.Port)
	for sock, n := range after {
		if m, ok := before[sock]; !ok || n != m {
			t.Errorf("the idle tab still talks to the session: connection %s moved %d bytes in 10 s (%d -> %d)", sock, n-m, m, n)
		}
	}
	t.Logf("the idle tab's connections to the port over 10 s: %v, then %v (bytes)", before, after)
	reconnect(t, b, "after the idle timeout")
	b2, err := e.command("list", "--json").Output()
	testutil.Must(t, err, "list")
	if !bytes.Contains(b2, []byte(fmt.Sprintf(`"pid":%d`, info.PID))) {
		t.Errorf("after the idle timeout the session is not the same xpra (pid %d): %s", info.PID, b2)
	}
	l.stop(t, syscall.SIGTERM)
	e.assertNothingLeft(t, info.Port)
}

// xScreenSize is the size of the session's X screen ("WxH"), read as the user with the session's
// own cookie.
func xScreenSize(t *testing.T, e *env, info lifecycle.Info) string {
	t.Helper()
	d := sessionDisplay(t, e, info)
	defer d.Close()
	w, h, err := d.ScreenSize()
	testutil.Must(t, err, "the screen's size")
	return fmt.Sprintf("%dx%d", w, h)
}

// sessionDisplay connects to the session's X display with the session's own cookie, as the test
// (root) does: reading the screen and windows only.
func sessionDisplay(t *testing.T, e *env, info lifecycle.Info) *x11.Display {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(info.Display, ":"))
	testutil.Must(t, err, "display "+info.Display)
	lay := layout.Layout{StateDir: e.stateDir, Node: e.node, JobKey: e.job}
	cookie, err := x11.Cookie(filepath.Join(lay.HomeSessionDir(info.Port), "Xauthority"), n)
	testutil.Must(t, err, "the session's cookie")
	// Every request of the connection fails after 10 s (x11.Dial): a stopped X server cannot
	// hang the test. The caller closes it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	d, err := x11.Dial(ctx, "", n, cookie)
	testutil.Must(t, err, "the session's display")
	return d
}

// windowCanvasesJS lists the client's window canvases that are shown, as x,y,WxH relative to its
// screen, separated by spaces.
const windowCanvasesJS = `(() => {
	const s = document.getElementById('screen').getBoundingClientRect();
	const out = [];
	for (const c of document.querySelectorAll('#screen canvas')) {
		const r = c.getBoundingClientRect();
		if (r.width > 0 && r.height > 0) {
			out.push(Math.round(r.left - s.left) + ',' + Math.round(r.top - s.top) + ',' + Math.round(r.width) + 'x' + Math.round(r.height));
		}
	}
	return out.join(' ');
})()`

// fillsView says whether the canvases windowCanvasesJS listed all lie inside a view of size
// view ("WxH") and the largest spans its width and at least all but 40 pixels (a title bar) of
// its height. "Inside" allows the 1-pixel border xpra 3.1's client draws around a window and
// leaves out of its maximized geometry (the canvas of a maximized window is at 1,31 and as wide
// as the view); the fault this catches is a window hundreds of pixels taller than the view.
func fillsView(canvases, view string) bool {
	const border = 1
	var vw, vh int
	if _, err := fmt.Sscanf(view, "%dx%d", &vw, &vh); err != nil || canvases == "" {
		return false
	}
	maxW, maxH := 0, 0
	for _, c := range strings.Fields(canvases) {
		var x, y, w, h int
		if _, err := fmt.Sscanf(c, "%d,%d,%dx%d", &x, &y, &w, &h); err != nil {
			return false
		}
		if x < 0 || y < 0 || x+w > vw+border || y+h > vh+border {
			return false
		}
		if w*h > maxW*maxH {
			maxW, maxH = w, h
		}
	}
	return maxW >= vw-2*border && maxH >= vh-40
}

// firefoxWindowSizes lists the sizes of Firefox's viewable X windows, for a failure's message.
func firefoxWindowSizes(t *testing.T, e *env, info lifecycle.Info) string {
	t.Helper()
	d := sessionDisplay(t, e, info)
	defer d.Close()
	ws, err := d.Windows(x11.IsFirefox)
	testutil.Must(t, err, "Firefox's windows")
	var out []string
	for _, w := range ws {
		if w.Viewable {
			out = append(out, fmt.Sprintf("%dx%d", w.Width, w.Height))
		}
	}
	return strings.Join(out, " ")
}
