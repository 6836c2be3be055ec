package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/internal/ffprofile"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/x11"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

// benchColor is the colour of the page Firefox opens in L6, which the browser looks for.
const benchColor = 0x3a9d23

// sessionFigures measures a real session (xpra + firefox-esr): its memory while idle (L5) and
// how long a user waits from the launcher's exec until the page is painted in a real browser
// (L6), split into xpra's own readiness, Firefox's own start and what comes after.
func (b *bench) sessionFigures() {
	reps := b.reps(3, 2)
	var pss []int64
	var parts []string
	var ready samples
	b.progress("session PSS idle (real xpra + firefox-esr on about:blank), %d runs each of a new and a returning user", reps)
	if others := b.othersSharing(); len(others) > 0 {
		b.rep.note("L5: %d Firefox, xpra or Xvfb processes of other users run on the node (%s): they share pages with the session, so L5 is lower than on an otherwise idle node.",
			len(others), strings.Join(others, ", "))
	}
	var warmPSS []int64
	var warmReady samples
	var warmParts string
	for i := 0; i < reps; i++ {
		total, by, took, err := b.idlePSSRun(false)
		if err != nil {
			b.rep.note("L5 run %d failed: %v", i, err)
		} else {
			pss = append(pss, total)
			parts = append(parts, by)
			ready = append(ready, took)
		}
		total, by, took, err = b.idlePSSRun(true)
		if err != nil {
			b.rep.note("L5w run %d failed: %v", i, err)
			continue
		}
		warmPSS, warmParts, warmReady = append(warmPSS, total), by, append(warmReady, took)
	}
	if len(ready) > 0 {
		// No browser waits here: a session started before anyone asks (prestart, a batch job).
		// Before ffl gave up xpra's empty clipboard claim, Firefox's start waited for it.
		b.rep.add(row{"L5r", "ffl-launch exec -> session ready (Firefox's window painted on the X display) with no browser connected, as a prestarted or batch session starts (a new user)",
			ready.summary(), "information", resInfo})
	}
	if len(pss) == 0 {
		b.rep.add(row{"L5", "Session PSS, idle (xpra + Xvfb + Firefox on about:blank)", "no successful run", "<= 350 MiB", resError})
	} else {
		med := medianInt(pss)
		b.rep.add(row{"L5", "Session PSS, idle 20 s after ready (xpra + Xvfb + Firefox on about:blank, every process with the session's marker)",
			fmt.Sprintf("median %s, max %s (n=%d)", mib(med), mib(maxInt(pss)), len(pss)), "<= 350 MiB", verdict(med <= 350*1024)})
		b.rep.note("L5 breakdown of the last run (PSS by process name): %s. PSS splits a shared library's pages among every process mapping it, so other Firefox sessions on the node lower it. Before the lean defaults (xpra's and Firefox's own defaults, 5760x2560 Xvfb with GLX) a session was about 600-670 MiB here (issue 7; 667 MiB measured on this machine with the prototype).", parts[len(parts)-1])
	}
	if len(warmReady) == 0 {
		b.rep.add(row{"L5w", "A returning user's session (the persistent profile an earlier session left)", "no successful run", "information", resError})
	} else {
		b.rep.add(row{"L5w", "A returning user's session (the persistent profile an earlier session left: ready, Firefox's startup cache written, 3 s at the least, ended by SIGTERM): ffl-launch exec -> ready with no browser; PSS idle 20 s after",
			fmt.Sprintf("ready %s; PSS median %s", warmReady.summary(), mib(medianInt(warmPSS))), "information", resInfo})
		b.rep.note("L5w breakdown of the last run (PSS by process name): %s.", warmParts)
	}

	b.sideFigures(reps)
}

// sideFigures runs, interleaved in one loop (the order rotates every round, so the machine's
// load moves every configuration alike), ffl with content_processes 1 and 2, the floor (Firefox
// alone on Xvfb, on a new profile and on one an earlier start left, beside ffl's returning
// user) and the peer configuration (xpra's and Firefox's own defaults, as
// jupyter-xprahtml5-proxy starts them); each run measures exec -> the page painted where its
// user looks, then the PSS of all its processes 20 s later. The ffl runs with the default
// content_processes give L6 and its parts; the ratios are of medians of this one run.
// sideAgg is what the side-by-side runs of one configuration gave.
type sideAgg struct {
	painted samples
	pss     []int64
	byComm  string
}

func (b *bench) sideFigures(reps int) {
	def := config.Default().ContentProcesses
	runs := map[string]*sideAgg{}
	var http, window, seen, total, loaded, shown, colored, uncovered, browserCPU, nodeCPUs, colorOnX, wsOpen, hello samples
	var requests []int64
	br, closeBr, err := b.startBrowser(false)
	if err != nil {
		b.rep.add(row{"L6", "exec -> Firefox's page painted in a real browser", "chromium: " + err.Error(), "", resError})
		return
	}
	defer closeBr()
	// Every ffl run but ffl-warm starts from a new user's state, as the floor starts on a new
	// profile; ffl-warm and floor-warm are a returning user's start on each side.
	names := []string{"ffl-cp1", "ffl-cp2", "floor", "floor-ffl", "peer", "ffl-warm", "floor-warm"}
	// ffl-idle: the default configuration with a second chromium under SCHED_IDLE, which then
	// takes only the CPU the session leaves, as the user's browser on the user's own machine
	// takes none of the node's (the other rows share the bench's 2 CPUs with chromium).
	brIdle, closeIdle, err := b.startBrowser(true)
	if err != nil {
		b.rep.note("S-idle: chromium under SCHED_IDLE did not start: %v", err)
	} else {
		defer closeIdle()
		names = append(names, "ffl-idle")
	}
	b.progress("side by side: ffl (content_processes 1 and 2; the default with the browser under SCHED_IDLE; a returning user), the floor (new and returning), the peer configuration; exec -> painted and PSS 20 s later; %d rounds", reps)
	for i := 0; i < reps; i++ {
		for k := range names {
			name := names[(i+k)%len(names)]
			a := runs[name]
			if a == nil {
				a = &sideAgg{}
				runs[name] = a
			}
			var r sideResult
			var err error
			marker := fmt.Sprintf("bench-%s/%s/%d/", name, b.o.node, i)
			switch name {
			case "floor":
				r, err = b.floorRun(marker)
			case "floor-ffl":
				r, err = b.floorFFLRun(marker, def)
			case "floor-warm":
				r, err = b.floorWarmRun(marker)
			case "ffl-warm":
				var pr paintedResult
				pr, err = b.warmPaintedRun(br, b.cfgRealCP[def])
				r = sideResult{painted: pr.total, pss: pr.pss, byComm: pr.byComm}
			case "peer":
				r, err = b.peerRun(marker, br)
			case "ffl-idle":
				var pr paintedResult
				if err = freshState([]account{b.user}); err == nil {
					pr, err = b.paintedRun(brIdle, b.cfgRealCP[def])
				}
				r = sideResult{painted: pr.total, pss: pr.pss, byComm: pr.byComm}
			default:
				cp := 1
				if name == "ffl-cp2" {
					cp = 2
				}
				var pr paintedResult
				if err = freshState([]account{b.user}); err == nil {
					pr, err = b.paintedRun(br, b.cfgRealCP[cp])
				}
				if err == nil && cp == def {
					http, window, seen, total = append(http, pr.http), append(window, pr.window), append(seen, pr.browser), append(total, pr.total)
					loaded, shown = append(loaded, pr.loaded), append(shown, pr.shown)
					colored, uncovered = append(colored, pr.colored), append(uncovered, pr.uncovered)
					browserCPU, nodeCPUs = append(browserCPU, pr.browserCPU), append(nodeCPUs, pr.nodeCPU)
					if pr.colorOnX > 0 {
						colorOnX = append(colorOnX, pr.colorOnX)
					}
					if pr.ws > 0 {
						wsOpen, hello = append(wsOpen, pr.ws), append(hello, pr.hello)
					}
					requests = append(requests, int64(pr.requests))
				}
				r = sideResult{painted: pr.total, pss: pr.pss, byComm: pr.byComm}
			}
			if err != nil {
				b.rep.note("%s run %d failed: %v", name, i, err)
				continue
			}
			a.painted = append(a.painted, r.painted)
			a.pss = append(a.pss, r.pss)
			a.byComm = r.byComm
		}
	}
	if len(total) == 0 {
		b.rep.add(row{"L6", "exec -> Firefox's page painted in a real browser", "no successful run", "", resError})
	} else {
		b.rep.add(row{"L6a", "xpra's own readiness (exec of xpra -> HTML5 page served: http_ms)", http.summary(), "reference", resInfo})
		b.rep.add(row{"L6b", "Firefox's own start (http_ms -> Firefox's window mapped and painted: window_ms - http_ms)", diff(window, http).summary(), "reference", resInfo})
		b.rep.add(row{"L6c", "The client's start after the session is ready: JSON line (Firefox painted on the X display) -> the page painted in chromium's HTML5 client, overlay gone (the browser asked from the start)", seen.summary(), "<= 1 s", verdict(seen.median() <= time.Second)})
		b.rep.add(row{"L6", "ffl-launch exec -> Firefox's page painted in a real browser", total.summary(), "information", resInfo})
		wsPart := "the WebSocket was not seen by DevTools (xpra's client opens it in a Web Worker, a target of its own)"
		if len(wsOpen) > 0 {
			wsPart = fmt.Sprintf("the WebSocket opened at %s, xpra's first message (hello) arrived at %s", ms(wsOpen.median()), ms(hello.median()))
		}
		xPart := "was not seen in Firefox's window on the X display (the notes say why)"
		if len(colorOnX) > 0 {
			xPart = "was in Firefox's window on the X display at " + ms(colorOnX.median())
		}
		b.rep.note("L6 in parts (medians, from the launcher's exec; DevTools' network events): xpra served its page at %s (L6a), the HTML5 client's page was loaded at %s (%d HTTP requests), %s, the first window canvas existed at %s, Firefox was painted on the X display (JSON line) at %s, the page's colour %s and in a canvas at %s and the overlay was gone at %s, so the page was painted in chromium with the overlay gone at %s; load average %s.",
			ms(http.median()), ms(loaded.median()), medianInt(requests), wsPart, ms(shown.median()), ms(window.median()), xPart, ms(colored.median()), ms(uncovered.median()), ms(total.median()), loadavg())
		b.rep.note("L6, the CPU the client's browser took from the session's start: chromium (on a real node it runs on the user's own machine) used %s of CPU from its navigation to the painted page, of the %s the node's CPUs were busy in that time (medians).",
			ms(browserCPU.median()), ms(nodeCPUs.median()))
		b.rep.note("L6: `ffl-launch run --sessions 1 --json --url file://<page of one colour>` as the bench user (a new user: no ffl state, so a new profile, as the floor's; S-warm is a returning user) with the real xpra and firefox-esr (content_processes %d, the default); chromium (headless, as the bench user: the session admits only its user) is started before the launcher and asks for the session's URL as soon as its port exists (its session dir appears), as the Jupyter user's browser does through jupyter-server-proxy; the page counts as painted when a window canvas of the HTML5 client has >= 30%% of its pixels in the page's colour and ffl's \"Starting Firefox\" overlay is gone (polled every 20 ms).", def)
	}
	b.sideRows(runs, names, def)
}

// warmPaintedRun is paintedRun for a returning user: the measured session on the profile an
// earlier one left.
func (b *bench) warmPaintedRun(br *browser.Browser, cfg string) (paintedResult, error) {
	if err := b.earlierSession(cfg); err != nil {
		return paintedResult{}, err
	}
	return b.paintedRun(br, cfg)
}

// earlierSession makes the bench user a returning one: from a new user's state, one session of
// cfg on the persistent profile (ready, Firefox's startup cache written, 3 s after ready at the
// least, then ended by SIGTERM, as a job ends).
func (b *bench) earlierSession(cfg string) error {
	if err := freshState([]account{b.user}); err != nil {
		return err
	}
	l, err := b.startLauncher(cfg, 1)
	if err != nil {
		return err
	}
	defer b.stopLauncher(l)
	if _, err := l.await(1, 120*time.Second); err != nil {
		return fmt.Errorf("the earlier session: %w", err)
	}
	ready := time.Now()
	// A stop in the middle of Firefox's one write of its startup cache would leave the next start
	// a cache to build again (ffprofile.WaitStartupCache).
	profile := filepath.Join(b.layout(l.job).StateDir, layout.ProfileDir)
	if _, _, err := ffprofile.WaitStartupCache(profile, b.user.uid, 90*time.Second); err != nil {
		return fmt.Errorf("the earlier session: %w", err)
	}
	time.Sleep(time.Until(ready.Add(3 * time.Second)))
	return nil
}

// startBrowser starts the headless chromium (as the bench user) the side-by-side runs share;
// idle runs it under SCHED_IDLE (browser.Options.Idle).
func (b *bench) startBrowser(idle bool) (*browser.Browser, func(), error) {
	profile, err := b.scratchHome("chromium")
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	br, err := browser.Start(ctx, browser.Options{UID: b.user.uid, GID: b.user.gid, ProfileDir: profile, Color: benchColor, Wait: 60 * time.Second, Idle: idle})
	if err != nil {
		cancel()
		os.RemoveAll(profile)
		return nil, nil, err
	}
	return br, func() { br.Close(); cancel(); os.RemoveAll(profile) }, nil
}

func diff(a, b samples) samples {
	var out samples
	for i := range a {
		if i < len(b) {
			out = append(out, a[i]-b[i])
		}
	}
	return out
}

// idlePSSRun starts one real session on about:blank, lets it idle, and sums the PSS of every
// process carrying its marker: a new user's first session, on a new profile, or (returning) the
// session after an earlier one.
func (b *bench) idlePSSRun(returning bool) (int64, string, time.Duration, error) {
	var err error
	if returning {
		err = b.earlierSession(b.cfgReal)
	} else {
		err = freshState([]account{b.user})
	}
	if err != nil {
		return 0, "", 0, err
	}
	l, err := b.startLauncher(b.cfgReal, 1)
	if err != nil {
		return 0, "", 0, err
	}
	defer b.stopLauncher(l)
	got, err := l.await(1, 120*time.Second)
	if err != nil {
		return 0, "", 0, err
	}
	took := got[0].at.Sub(l.started)
	time.Sleep(20 * time.Second)
	lay := b.layout(l.job)
	var total, uss int64
	byComm := map[string]int64{}
	for _, id := range b.marked(lay.Marker(got[0].Port)) {
		kb, err := smapsKB(id.PID, "Pss")
		if err != nil {
			continue
		}
		if u, err := smapsKB(id.PID, "Private_Clean", "Private_Dirty"); err == nil {
			uss += u
		}
		st, _ := proc.ReadStat(id.PID)
		total += kb
		byComm[st.Comm] += kb
	}
	if total == 0 {
		return 0, "", 0, fmt.Errorf("no session process found")
	}
	return total, fmt.Sprintf("%s; USS (pages no other process shares, the least the session costs) %s", largestFirst(byComm, mib), mib(uss)), took, nil
}

// smapsKB reads fields of /proc/PID/smaps_rollup (kB), summed.
func smapsKB(pid int, fields ...string) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	var sum int64
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		for _, f := range fields {
			if v, ok := strings.CutPrefix(line, f+":"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					sum += n
					found++
				}
			}
		}
	}
	if found != len(fields) {
		return 0, fmt.Errorf("pid %d: smaps_rollup lacks %v", pid, fields)
	}
	return sum, nil
}

type paintedResult struct {
	http, window, browser, total time.Duration
	loaded, shown                time.Duration
	colored, uncovered           time.Duration // the page's colour in a canvas, the overlay gone (browser.Seen)
	browserCPU, nodeCPU          time.Duration // CPU of chromium and of the whole node from the navigation to painted
	colorOnX                     time.Duration // the page's colour in Firefox's window on the X display (0: not seen)
	ws, hello                    time.Duration // the client's WebSocket opened, xpra's first message on it
	requests                     int           // HTTP requests of the client's page before its WebSocket
	pss                          int64
	byComm                       string
}

// paintedRun: the launcher with cfg, and the running chromium br asking for the session the
// moment its port exists (its node-local session dir appears), as a user's browser held by
// jupyter-server-proxy does: the front holds the request until xpra serves its page, the
// client loads during Firefox's start, and the page counts as painted once the page's colour
// is in a window canvas with ffl's "Starting Firefox" overlay gone. 20 s after that, the PSS of
// the session's processes.
func (b *bench) paintedRun(br *browser.Browser, cfg string) (paintedResult, error) {
	var r paintedResult
	page, err := b.benchPage()
	if err != nil {
		return r, err
	}
	if _, err := br.Eval("location.href = 'about:blank'; 'ok'"); err != nil {
		return r, err
	}
	l, err := b.startLauncher(cfg, 1, "--url", "file://"+page)
	if err != nil {
		return r, err
	}
	defer b.stopLauncher(l)
	type ann struct {
		got []announced
		err error
	}
	line := make(chan ann, 1)
	go func() {
		got, err := l.await(1, 120*time.Second)
		line <- ann{got, err}
	}()
	lay := b.layout(l.job)
	port := 0
	for deadline := time.Now().Add(60 * time.Second); port == 0; time.Sleep(2 * time.Millisecond) {
		for _, d := range lay.RuntimeJobDirs() {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if p, err := layout.ParseSessionDirName(e.Name()); err == nil {
					port = p
				}
			}
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("no session dir within 60 s: %s", l.logTail())
		}
	}
	// Beside the browser, the X display itself: when the page's colour is in Firefox's window
	// there (what the floor measures), which tells Firefox's own start from xpra's and the
	// client's part after it.
	xctx, xcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer xcancel()
	onX := make(chan colorOnX, 1)
	go func() { onX <- b.sessionColorOnX(xctx, lay, port) }()
	nav := time.Now()
	cpu0, node0 := b.browserCPU(), nodeCPU()
	seen, err := br.See("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		return r, err
	}
	r.browserCPU, r.nodeCPU = b.browserCPU()-cpu0, nodeCPU()-node0
	paintedAt := nav.Add(seen.Painted)
	a := <-line
	if a.err != nil {
		return r, a.err
	}
	r.total = paintedAt.Sub(l.started)
	// The colour was on the X display before chromium showed it; a last look may be under way.
	var x colorOnX
	select {
	case x = <-onX:
	case <-time.After(2 * time.Second):
		xcancel()
		x = <-onX
	}
	if x.err != nil {
		b.rep.note("L6: the page's colour on the X display was not seen: %v", x.err)
	} else {
		r.colorOnX = x.at.Sub(l.started)
	}
	r.browser = paintedAt.Sub(a.got[0].at)
	r.loaded, r.shown = nav.Add(seen.Loaded).Sub(l.started), nav.Add(seen.Window).Sub(l.started)
	r.colored, r.uncovered = nav.Add(seen.Colored).Sub(l.started), nav.Add(seen.Uncovered).Sub(l.started)
	if seen.WebSocket > 0 && seen.FirstFrame > 0 {
		r.ws, r.hello = nav.Add(seen.WebSocket).Sub(l.started), nav.Add(seen.FirstFrame).Sub(l.started)
	}
	r.requests = seen.Requests
	time.Sleep(time.Until(paintedAt.Add(20 * time.Second)))
	r.pss, r.byComm = b.markedPSS(lay.Marker(port))
	_ = l.cmd.Process.Signal(unix.SIGTERM)
	<-l.exited
	httpMS, ok1 := l.logField("session ready", "http_ms")
	windowMS, ok2 := l.logField("session ready", "window_ms")
	if !ok1 || !ok2 {
		return r, fmt.Errorf("no http_ms/window_ms in the log: %s", l.logTail())
	}
	r.http = time.Duration(httpMS * float64(time.Millisecond))
	r.window = time.Duration(windowMS * float64(time.Millisecond))
	return r, nil
}

// sideRows adds the side-by-side rows (S-*) and their ratios from the runs of sideFigures.
func (b *bench) sideRows(runs map[string]*sideAgg, names []string, def int) {
	for _, name := range names {
		a := runs[name]
		id := map[string]string{"ffl-cp1": "S-cp1", "ffl-cp2": "S-cp2", "floor": "S-floor", "floor-ffl": "S-floor-ffl", "peer": "S-peer", "ffl-idle": "S-idle",
			"ffl-warm": "S-warm", "floor-warm": "S-floor-warm"}[name]
		fig := map[string]string{
			"ffl-cp1":    "ffl, content_processes 1, a new user (no profile yet): exec -> painted in chromium; PSS 20 s later (client connected)",
			"ffl-cp2":    "ffl, content_processes 2, a new user: exec -> painted in chromium; PSS 20 s later (client connected)",
			"floor":      "Floor: Firefox alone on Xvfb (fresh default profile): exec of Xvfb -> page colour in Firefox's X window; PSS 20 s later",
			"ffl-warm":   "ffl, default config, a returning user (the persistent profile an earlier session left): exec -> painted in chromium; PSS 20 s later",
			"floor-ffl":  "Floor with ffl's settings: Firefox alone on Xvfb as the floor, on a fresh profile with the user.js ffl writes into a session's profile (default content_processes): exec of Xvfb -> page colour; PSS 20 s later",
			"floor-warm": "Floor for a returning user: Firefox alone on Xvfb on the profile an earlier Firefox alone left when it quit: exec of Xvfb -> page colour; PSS 20 s later",
			"peer":       "Peer: xpra + Firefox with their own defaults (as jupyter-xprahtml5-proxy), chromium polling the port: exec -> painted; PSS 20 s later",
			"ffl-idle":   "ffl, default config, chromium under SCHED_IDLE (a CPU only when the session leaves one, as a browser on the user's own machine): exec -> painted in chromium; PSS 20 s later",
		}[name]
		if a == nil || len(a.painted) == 0 {
			b.rep.add(row{id, fig, "no successful run", "reference", resError})
			continue
		}
		b.rep.add(row{id, fig, fmt.Sprintf("%s; PSS median %s", a.painted.summary(), mib(medianInt(a.pss))), "reference", resInfo})
		b.rep.note("%s PSS by process name (last run): %s.", id, a.byComm)
	}
	ffl, floor, peer := runs[fmt.Sprintf("ffl-cp%d", def)], runs["floor"], runs["peer"]
	if ffl != nil && len(ffl.painted) > 0 && floor != nil && len(floor.painted) > 0 {
		r := ratio(ffl.painted.median(), floor.painted.median())
		b.rep.add(row{"S-x-floor", "ffl (default config) / floor: exec -> painted, medians of this run", fmt.Sprintf("%.2fx", r), "<= 1.3x", verdict(r <= 1.3)})
	}
	if ff := runs["floor-ffl"]; ff != nil && len(ff.painted) > 0 && floor != nil && len(floor.painted) > 0 {
		b.rep.add(row{"S-ffl-settings", "floor with ffl's settings / floor (S-floor-ffl / S-floor): what ffl's user.js alone changes in Firefox's start and memory, medians of this run",
			fmt.Sprintf("time %.2fx, memory %.2fx", ratio(ff.painted.median(), floor.painted.median()), float64(medianInt(ff.pss))/float64(max(medianInt(floor.pss), 1))), "information", resInfo})
		if ffl != nil && len(ffl.painted) > 0 {
			b.rep.add(row{"S-x-floor-ffl", "ffl (default config) / floor with ffl's settings: what xpra, the HTML5 client and their share of the CPUs add to Firefox's own start, medians of this run",
				fmt.Sprintf("%.2fx", ratio(ffl.painted.median(), ff.painted.median())), "information", resInfo})
		}
	}
	if w, fw := runs["ffl-warm"], runs["floor-warm"]; w != nil && len(w.painted) > 0 && fw != nil && len(fw.painted) > 0 {
		r := ratio(w.painted.median(), fw.painted.median())
		b.rep.add(row{"S-warm-x-floor", "ffl / floor, both a returning user's start (S-warm / S-floor-warm): exec -> painted, medians of this run", fmt.Sprintf("%.2fx", r), "information", resInfo})
	}
	if idle := runs["ffl-idle"]; idle != nil && len(idle.painted) > 0 && floor != nil && len(floor.painted) > 0 {
		r := ratio(idle.painted.median(), floor.painted.median())
		b.rep.add(row{"S-idle-x-floor", "ffl (default config, chromium under SCHED_IDLE) / floor: exec -> painted, medians of this run", fmt.Sprintf("%.2fx", r), "information", resInfo})
	}
	if ffl != nil && len(ffl.painted) > 0 && peer != nil && len(peer.painted) > 0 {
		rt := ratio(ffl.painted.median(), peer.painted.median())
		rm := float64(medianInt(ffl.pss)) / float64(max(medianInt(peer.pss), 1))
		b.rep.add(row{"S-x-peer", "ffl (default config) / peer: exec -> painted; PSS (medians of this run)", fmt.Sprintf("time %.2fx, memory %.2fx", rt, rm), "information", resInfo})
	}
	c1, c2 := runs["ffl-cp1"], runs["ffl-cp2"]
	if c1 != nil && c2 != nil && len(c1.painted) > 0 && len(c2.painted) > 0 {
		b.rep.add(row{"S-cp", "content_processes 1 / 2: exec -> painted; PSS (medians of this run)",
			fmt.Sprintf("time %.2fx, memory %.2fx (default: %d)", ratio(c1.painted.median(), c2.painted.median()), float64(medianInt(c1.pss))/float64(max(medianInt(c2.pss), 1)), def), "information", resInfo})
	}
}

// colorOnX is what sessionColorOnX saw: when, or why not.
type colorOnX struct {
	at  time.Time
	err error
}

// sessionColorOnX waits until the page's colour is in Firefox's window on the X display of the
// session on port (the display from its state file, the cookie from its Xauthority). The bench
// runs as root and both files lie in the bench user's dirs: each is read below a directory
// opened without following a symlink and owned by that user (userFile).
func (b *bench) sessionColorOnX(ctx context.Context, lay layout.Layout, port int) colorOnX {
	// -1 until the state file names the display: :0 is a display like any other (the first one
	// on a node without another X server).
	n := -1
	for n < 0 {
		for _, d := range lay.RuntimeJobDirs() {
			data, err := b.userFile(filepath.Join(d, layout.SessionDirName(port)), layout.StateFile, 1<<20)
			if err != nil {
				continue
			}
			if st, err := layout.ParseState(data); err == nil && st.Display != "" {
				if v, err := xdisplay.Parse(st.Display); err == nil {
					n = v
				}
			}
		}
		if n < 0 && !sleepCtx(ctx, 10*time.Millisecond) {
			return colorOnX{err: fmt.Errorf("no display in the state file of session %d", port)}
		}
	}
	var d *x11.Display
	for d == nil {
		data, err := b.userFile(lay.HomeSessionDir(port), "Xauthority", x11.MaxXauthority)
		var cookie []byte
		if err == nil {
			cookie, err = x11.CookieIn(data, n)
		}
		if err == nil {
			d, err = x11.Dial(ctx, "", n, cookie)
		}
		if err != nil && !sleepCtx(ctx, 10*time.Millisecond) {
			return colorOnX{err: fmt.Errorf("display :%d: %w", n, err)}
		}
	}
	defer d.Close()
	if err := b.waitColor(ctx, d); err != nil {
		return colorOnX{err: fmt.Errorf("display :%d: %w", n, err)}
	}
	return colorOnX{at: time.Now()}
}

// userFile reads name (at most max bytes, a regular file, not a symlink) in the bench user's
// directory dir, opened without following symlinks and checked to be that user's.
func (b *bench) userFile(dir, name string, max int64) ([]byte, error) {
	f, err := safefs.OpenTrustedOwned(dir, b.user.uid)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return safefs.ReadFileCapped(f, name, max)
}

// sleepCtx sleeps for d, or less when ctx ends, and says whether ctx is still going.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
