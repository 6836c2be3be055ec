package jupyter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/ffl-hpc/ffl/internal/browser"
)

// Browser is one user's headless chromium (its own profile, so its own hub cookie).
type Browser struct {
	hub    *Hub
	user   User
	ctx    context.Context // the browser's first tab; new tabs derive from it
	cancel func()
	shots  string // where screenshots go
	// dwell is how long a tab LaunchFirefoxFromLab opened stays open after Firefox painted, as a
	// user's does (zero: closed at once).
	dwell time.Duration
}

func newBrowser(h *Hub, u User) (*Browser, error) {
	// A fresh profile per browser: no cookie of an earlier test's login.
	profile, err := os.MkdirTemp(h.e.dir, "chromium-"+u.Name+"-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser.Chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	b := &Browser{hub: h, user: u, ctx: bctx, cancel: func() { cancelTab(); cancelAlloc(); browser.RemoveSingletonDir(profile) }, shots: filepath.Join(h.e.dir, "shots")}
	if err := chromedp.Do(bctx); err != nil { // starts chromium
		b.cancel()
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	return b, os.MkdirAll(b.shots, 0o755)
}

// Close ends the browser process.
func (b *Browser) Close() { b.cancel() }

// Login logs the user in through the hub's login form, with the hub's home page as the next
// page (the default would be the user's server, which starts it).
func (b *Browser) Login() error {
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(b.hub.URL+"/hub/login?next=%2Fhub%2Fhome"),
		chromedp.WaitVisible(chromedp.CSS("#username_input")),
		chromedp.SendKeys(chromedp.CSS("#username_input"), b.user.Name),
		chromedp.SendKeys(chromedp.CSS("#password_input"), b.hub.Password),
		chromedp.Click(chromedp.CSS("#login_submit")),
	)
	if err != nil {
		return fmt.Errorf("login form: %w", err)
	}
	var text string
	for ctx.Err() == nil {
		// Evaluations fail while the page navigates: retry until the home page is there.
		text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + "\n" + document.body.innerText.slice(0, 300)`))
		if err == nil && strings.HasPrefix(text, "/hub/home") {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not on the hub's home page 60 s after submitting the login form: %q", text)
}

// spawnResult is what the spawn-pending page ended with.
type spawnResult struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	URL     string `json:"url"`
}

// Spawn asks the hub for the user's server the way the home page's Start button does and waits
// until the hub's spawn-pending page either redirects to the server or shows "Spawn failed"
// (or the hub answers with its error page: a start that fails within a second).
func (b *Browser) Spawn(limit time.Duration) (spawnResult, error) {
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(b.hub.URL+"/hub/spawn/"+b.user.Name)); err != nil {
		return spawnResult{}, fmt.Errorf("open /hub/spawn/%s: %w", b.user.Name, err)
	}
	prefix := "/user/" + b.user.Name + "/"
	js := fmt.Sprintf(`(() => {
		if (location.pathname.startsWith(%q)) return {ok: true, message: "", url: location.href};
		const t = document.body ? document.body.innerText : "";
		// The spawn page after a slow failure, or the hub's error page when the start failed
		// within its first second.
		let i = t.indexOf("Spawn failed");
		if (i < 0) i = t.indexOf("500 : Internal Server Error");
		if (i >= 0) return {ok: false, message: t.slice(i, i + 600).trim(), url: location.href};
		return {ok: false, message: "", url: location.href};
	})()`, prefix)
	for {
		// Evaluations fail while the page navigates (spawn -> spawn-pending -> the server).
		r, err := chromedp.Run(ctx, chromedp.Evaluate[spawnResult](js))
		if err == nil && (r.OK || r.Message != "") {
			return r, nil
		}
		if ctx.Err() != nil {
			text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + ": " + document.body.innerText.slice(0, 400)`))
			b.screenshot("spawn-" + b.user.Name)
			return spawnResult{}, fmt.Errorf("the spawn page neither reached %s nor failed within %v: %q", prefix, limit, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pageState is what the page at /user/NAME/firefox/ shows, as the check script sees it.
type pageState struct {
	// State: "painted" (the wanted colour fills the window), "window" (a window with other
	// pixels), "empty" (a window with no painted pixel), "connecting" (the client, no window
	// yet), "password" (an authentication prompt), "disconnected" (the client gave up),
	// "page" (not the xpra client: an error page of the hub or the proxy).
	State  string  `json:"state"`
	Detail string  `json:"detail"`
	Match  float64 `json:"match"` // fraction of sampled window pixels of the wanted colour
}

// checkPageJS classifies the xpra HTML5 client's page. %d %d %d is the wanted colour.
const checkPageJS = `(() => {
	const want = [%d, %d, %d], tol = 24;
	const text = document.body ? document.body.innerText : "";
	if (location.pathname.endsWith("connect.html")) {
		let why = "";
		try { why = sessionStorage.getItem("disconnect") || ""; } catch (e) {}
		why = why || decodeURIComponent(location.search) || text.replace(/\s+/g, " "); // ffl's disconnect page clears sessionStorage
		return {state: /password|authenticat/i.test(why) ? "password" : "disconnected", detail: why.slice(0, 300), match: 0};
	}
	const pw = [...document.querySelectorAll("input[type=password]")].find(e => e.offsetParent !== null);
	if (pw) return {state: "password", detail: "a password field is shown: " + text.slice(0, 200), match: 0};
	if (/you were disconnected|disconnected from/i.test(text)) return {state: "disconnected", detail: text.slice(0, 300), match: 0};
	if (!document.getElementById("screen")) return {state: "page", detail: (document.title + ": " + text).slice(0, 400), match: 0};
	const canvases = [...document.querySelectorAll("#screen canvas")].filter(c => c.width >= 200 && c.height >= 200);
	if (canvases.length === 0) return {state: "connecting", detail: text.slice(0, 200), match: 0};
	let best = 0, painted = 0, detail = "";
	for (const c of canvases) {
		const ctx = c.getContext("2d");
		if (!ctx) continue;
		const d = ctx.getImageData(0, 0, c.width, c.height).data;
		let n = 0, m = 0, p = 0;
		for (let i = 0; i < d.length; i += 4 * 97) {
			m++;
			if (d[i + 3] !== 0) p++;
			if (d[i + 3] !== 0 && Math.abs(d[i] - want[0]) <= tol && Math.abs(d[i + 1] - want[1]) <= tol && Math.abs(d[i + 2] - want[2]) <= tol) n++;
		}
		if (m && n / m > best) best = n / m;
		painted += p;
		detail += c.width + "x" + c.height + " ";
	}
	if (best >= 0.25) return {state: "painted", detail: "window " + detail, match: best};
	return {state: painted ? "window" : "empty", detail: "window " + detail, match: best};
})()`

// errorPage matches the text (title first) of the error pages of the hub ("Spawn failed: ..."),
// the notebook server ("500 : Internal Server Error", "404 : Not Found") and ffl's front ("ffl:
// No Firefox session is running on this port"), not the hub's "Your server is starting up".
var errorPage = regexp.MustCompile(`^ffl: |Spawn failed|\b[45]\d\d\b\s*:|could not start|Internal Server Error|Bad Gateway|Service Unavailable|Not Found|Forbidden`)

// VisitFirefox opens /user/NAME/firefox/ in a new tab and waits until Firefox has painted the
// page of the given colour (#rrggbb). It returns the time from the request to the first painted
// frame. An error page, a password prompt, a disconnect, an empty or foreign window fail with
// a message that says which; a screenshot is saved either way.
func (b *Browser) VisitFirefox(name, color string, limit time.Duration) (time.Duration, pageState, error) {
	closeTab, d, st, err := b.OpenFirefox(name, color, limit)
	closeTab()
	return d, st, err
}

// OpenFirefox is VisitFirefox that leaves the tab open until closeTab is called (also on error).
func (b *Browser) OpenFirefox(name, color string, limit time.Duration) (closeTab func(), d time.Duration, st pageState, err error) {
	tab, closeTab := chromedp.NewContext(b.ctx)
	d, st, err = b.openFirefox(tab, name, color, limit)
	return closeTab, d, st, err
}

func (b *Browser) openFirefox(tab context.Context, name, color string, limit time.Duration) (time.Duration, pageState, error) {
	ctx, cancel := context.WithTimeout(tab, limit)
	defer cancel()
	url := b.hub.URL + "/user/" + name + "/firefox/"
	t0 := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return 0, pageState{}, fmt.Errorf("open %s: %w", url, err)
	}
	return b.waitPainted(ctx, tab, url, name, color, limit, t0)
}

// navTimingJS is the tab's navigation timing: first byte and load of the page, in ms from the
// navigation's start.
const navTimingJS = `(() => {
	const n = performance.getEntriesByType("navigation")[0];
	if (!n) return "";
	const rs = performance.getEntriesByType("resource");
	const net = rs.filter(r => r.transferSize > 0);
	const end = rs.reduce((m, r) => Math.max(m, r.responseEnd), 0);
	return "page's first byte at " + Math.round(n.responseStart) + " ms, loaded at " + Math.round(n.loadEventEnd) +
		" ms of the tab's navigation, " + rs.length + " resources (" + net.length + " from the network, " +
		Math.round(net.reduce((s, r) => s + r.transferSize, 0) / 1024) + " KiB), the last at " + Math.round(end) + " ms";
})()`

// labLauncherJS finds the card titled "Firefox" in JupyterLab's launcher and returns where it is
// (the centre of its box, in CSS pixels of the viewport), or why not.
const labLauncherJS = `(() => {
	const lab = !!document.querySelector(".jp-LabShell");
	const cards = [...document.querySelectorAll(".jp-LauncherCard")];
	// jupyter-server-proxy 4.2+ marks an entry that opens a new browser tab: "Firefox [↗]".
	const card = cards.find(c => /^Firefox(\s*\[\u2197\])?$/.test((c.querySelector(".jp-LauncherCard-label") || c).innerText.trim()));
	if (!card) return {lab, found: false, x: 0, y: 0, icon: false, cards: cards.map(c => c.innerText.trim()).join("|")};
	card.scrollIntoView({block: "center"});
	const r = card.getBoundingClientRect();
	const icon = !!card.querySelector(".jp-LauncherCard-icon svg, .jp-LauncherCard-icon img");
	return {lab, found: r.width > 0 && r.height > 0, x: r.left + r.width / 2, y: r.top + r.height / 2, icon, cards: ""};
})()`

// launcherCard is what labLauncherJS reports.
type launcherCard struct {
	Lab   bool    `json:"lab"`
	Found bool    `json:"found"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	Icon  bool    `json:"icon"`
	Cards string  `json:"cards"`
}

// LaunchFirefoxFromLab is the user's way to Firefox: in JupyterLab (the page the spawn ended
// on, or /user/NAME/lab), a real mouse click (DevTools Input.dispatchMouseEvent, as a user's
// click: a user gesture, so the browser lets the page open a tab) on the Firefox card of the
// launcher; jupyter-server-proxy opens /user/NAME/firefox/ in a new tab, which must show
// Firefox's painted page of the given colour. It returns the time from the click to the
// painted frame.
func (b *Browser) LaunchFirefoxFromLab(color string, limit time.Duration) (time.Duration, pageState, error) {
	name := b.user.Name
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	labURL := b.hub.URL + "/user/" + name + "/lab"
	here, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`))
	if err != nil || !strings.HasPrefix(here, "/user/"+name+"/lab") {
		if err := chromedp.Do(ctx, chromedp.Navigate(labURL)); err != nil {
			return 0, pageState{}, fmt.Errorf("open %s: %w", labURL, err)
		}
	}
	var card launcherCard
	for {
		c, err := chromedp.Run(ctx, chromedp.Evaluate[launcherCard](labLauncherJS))
		if err == nil {
			card = c
			if card.Found {
				break
			}
		}
		if ctx.Err() != nil {
			b.screenshot("lab-" + name)
			if !card.Lab {
				text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + ": " + document.title + ": " + (document.body ? document.body.innerText.slice(0, 300) : "")`))
				return 0, pageState{}, fmt.Errorf("JupyterLab did not open: %q", text)
			}
			return 0, pageState{}, fmt.Errorf("JupyterLab's launcher shows no Firefox card within %v (cards: %q)", limit, card.Cards)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !card.Icon {
		b.screenshot("lab-" + name)
		return 0, pageState{}, errors.New("the Firefox card of JupyterLab's launcher has no icon")
	}
	before, err := chromedp.Targets(ctx)
	if err != nil {
		return 0, pageState{}, err
	}
	known := map[target.ID]bool{}
	for _, ti := range before {
		known[ti.TargetID] = true
	}
	b.screenshot("lab-launcher-" + name)
	t0 := time.Now()
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(card.X, card.Y)); err != nil {
		return 0, pageState{}, fmt.Errorf("click on the Firefox card: %w", err)
	}
	url := b.hub.URL + "/user/" + name + "/firefox/"
	var id target.ID
	var seen []string
	for id == "" {
		all, err := chromedp.Targets(ctx)
		if err != nil {
			return 0, pageState{}, err
		}
		seen = seen[:0]
		for _, ti := range all {
			if ti.Type == "page" && !known[ti.TargetID] {
				seen = append(seen, ti.URL)
				if strings.HasPrefix(ti.URL, url) {
					id = ti.TargetID
				}
			}
		}
		if id == "" && ctx.Err() != nil {
			b.screenshot("lab-click-" + name)
			return 0, pageState{}, fmt.Errorf("no new tab on %s after the click on the Firefox card within %v (new tabs: %q)", url, limit, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tab, closeTab := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	defer closeTab()
	tctx, tcancel := context.WithTimeout(tab, limit-time.Since(t0))
	defer tcancel()
	d, st, err := b.waitPainted(tctx, tab, url, name, color, limit, t0)
	if err == nil {
		time.Sleep(b.dwell)
	}
	return d, st, err
}

// waitPainted polls the tab (ctx, with its deadline) on url until Firefox has painted the page
// of the given colour; see VisitFirefox.
func (b *Browser) waitPainted(ctx, tab context.Context, url, name, color string, limit time.Duration, t0 time.Time) (time.Duration, pageState, error) {
	r, g, bl := hexColor(color)
	js := fmt.Sprintf(checkPageJS, r, g, bl)
	var last pageState
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](js))
		if err == nil {
			last = st
			switch st.State {
			case "painted":
				d := time.Since(t0)
				// Where the wait went, for the figures' logs: the page's first byte (the hub,
				// the notebook server, jupyter-server-proxy, ffl, xpra) and its load, from the
				// tab's navigation start.
				if nav, err := chromedp.Run(ctx, chromedp.Evaluate[string](navTimingJS)); err == nil && nav != "" {
					st.Detail += "; " + nav
				}
				b.saveShot(tab, fmt.Sprintf("firefox-%s-by-%s-%d", name, b.user.Name, time.Now().UnixMilli()))
				return d, st, nil
			case "password":
				b.saveShot(tab, "password-"+name)
				return 0, st, fmt.Errorf("%s asks for a password: %s", url, st.Detail)
			case "disconnected":
				b.saveShot(tab, "disconnected-"+name)
				return 0, st, fmt.Errorf("%s: the xpra client was disconnected: %s", url, st.Detail)
			case "page":
				if errorPage.MatchString(st.Detail) {
					b.saveShot(tab, "error-"+name)
					return 0, st, fmt.Errorf("%s: an error page: %q", url, st.Detail)
				}
			}
		}
		if ctx.Err() != nil {
			b.saveShot(tab, "timeout-"+name)
			switch last.State {
			case "empty":
				return 0, last, fmt.Errorf("%s: the Firefox window stayed an empty frame for %v (%s)", url, limit, last.Detail)
			case "window":
				return 0, last, fmt.Errorf("%s: a window is drawn but not the page of colour %s (%.0f%% of its pixels match) after %v", url, color, 100*last.Match, limit)
			case "page":
				return 0, last, fmt.Errorf("%s: not the xpra client but a page %q after %v", url, last.Detail, limit)
			}
			return 0, last, fmt.Errorf("%s: no Firefox window after %v (state %q: %s)", url, limit, last.State, last.Detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PageText opens url in a new tab and returns the page's title and text once loaded.
func (b *Browser) PageText(url string, settle time.Duration) (string, error) {
	tab, closeTab := chromedp.NewContext(b.ctx)
	defer closeTab()
	ctx, cancel := context.WithTimeout(tab, 60*time.Second+settle)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.Sleep(settle)); err != nil {
		return "", err
	}
	b.saveShot(tab, "page-"+b.user.Name+"-"+strconv.FormatInt(time.Now().UnixMilli(), 10))
	return chromedp.Run(ctx, chromedp.Evaluate[string](`document.title + "\n" + (document.body ? document.body.innerText : "")`))
}

func (b *Browser) screenshot(name string) { b.saveShot(b.ctx, name) }

func (b *Browser) saveShot(ctx context.Context, name string) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err == nil {
		_ = os.WriteFile(filepath.Join(b.shots, strings.ReplaceAll(name, "/", "_")+".png"), png, 0o644)
	}
}

func hexColor(s string) (int, int, int) {
	v, _ := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	return int(v >> 16 & 0xff), int(v >> 8 & 0xff), int(v & 0xff)
}
