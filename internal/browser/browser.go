// Package browser drives a real headless Debian chromium over the DevTools protocol to look at a
// session the way a user does: the xpra HTML5 client, with the Firefox window painted in it.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"
)

// Chromium is Debian's chromium binary.
const Chromium = "/usr/bin/chromium"

// Chrt is util-linux's chrt, which runs chromium under SCHED_IDLE (Options.Idle).
const Chrt = "/usr/bin/chrt"

// Options says who looks and what for.
type Options struct {
	// UID and GID run chromium as that user (0: as the caller). A session admits only its own
	// user's connections, so a browser that should get in runs as the session's user.
	UID, GID int
	// ProfileDir is chromium's user data dir (owned by UID).
	ProfileDir string
	// Color is the page colour (0xRRGGBB) Firefox was started on.
	Color uint32
	// MinShare is the share of the Firefox window's canvas that must have Color (default 0.3).
	MinShare float64
	// Shot, if set, is where a PNG screenshot of the browser is saved (also on failure).
	Shot string
	// Wait bounds the wait for the painted page after the navigation (default 20 s).
	Wait time.Duration
	// Flags are extra chromium switches (name -> value), e.g. "host-resolver-rules" to give a
	// name of the test's choice an address, as a DNS rebinding attacker would.
	Flags map[string]any
	// Idle runs chromium and every process it starts under SCHED_IDLE (chrt --idle 0): it gets
	// a CPU only when no other process wants one. It is the bench's stand-in for the user's
	// browser on the user's own machine, where it takes nothing from the node's CPUs.
	Idle bool
}

// Seen is what the browser saw.
type Seen struct {
	// Painted is how long after the navigation started the page colour covered MinShare of a
	// window canvas.
	Painted time.Duration
	// Loaded is when the navigation finished (the HTML5 client's page loaded), Window when a
	// window canvas first existed, both from the start of the navigation.
	Loaded, Window time.Duration
	// Colored is when the page colour first covered MinShare of a window canvas, under ffl's
	// "Starting Firefox" overlay or not; Uncovered when a window canvas was first seen without
	// the overlay over it (both from the start of the navigation; Painted is the later of the
	// two). They tell xpra's frames from the session's readiness in Painted.
	Colored, Uncovered time.Duration
	// Covered says ffl's "Starting Firefox" overlay was over the page at the last look.
	Covered bool
	// The client's start as DevTools saw it, from the start of the navigation (0: not seen):
	// WebSocket when the client opened its WebSocket, FirstFrame when xpra's first message
	// (its hello) arrived on it, Requests how many HTTP requests the page made before that (all of
	// them when the WebSocket is opened by a Web Worker, as xpra's client does: DevTools shows a
	// worker's network events on its own target, which See does not attach to).
	WebSocket, FirstFrame time.Duration
	Requests              int
	// Revalidated is how many of the page's responses were 304 Not Modified: files the browser
	// kept from an earlier visit and asked about instead of fetching them again.
	Revalidated int
	start       time.Time // when the navigation started
	// Pixels and Canvas: the coloured pixels and the canvas size where they were.
	Pixels         int
	Width, Height  int
	DisconnectText string
}

// Failure kinds, so a test says which of the things a user could see went wrong.
var (
	ErrPasswordPrompt = errors.New("the HTML5 client asked for a password")
	ErrDisconnected   = errors.New("the HTML5 client was disconnected")
	ErrEmptyFrame     = errors.New("the HTML5 client showed the window, but Firefox's page was not painted")
	ErrNoWindow       = errors.New("the HTML5 client showed no window")
	ErrNoPage         = errors.New("no page at all (connection refused or closed)")
)

// pollJS reports the client's state as a string (a pixel counts as the page's colour within 24
// of each channel: xpra's first frames of a window may be lossy, and a user sees them as the
// page), among the canvases the first argument selects: "connect:<text>" on xpra's disconnect page,
// "canvas:<pixels>:<w>:<h>:<covered>" for the canvas with most pixels of the colour (covered 1
// while ffl's "Starting Firefox" overlay is over the page), "none" before any
// window canvas exists, "empty" for a page that is not the HTML5 client.
const pollJS = `(() => {
  const windows = %q, want = [%d, %d, %d];
  if (location.pathname.includes('connect.html')) {
    return 'connect:' + (document.body ? document.body.innerText.replace(/\s+/g, ' ').slice(0, 300) : '');
  }
  if (!document.body || document.body.innerText.trim() === '' && document.querySelectorAll('canvas').length === 0 && !document.getElementById('screen')) {
    return 'empty';
  }
  let best = [0, 0, 0];
  for (const c of document.querySelectorAll(windows)) {
    if (c.width < 100 || c.height < 100) continue;
    let d;
    try { d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; } catch (e) { continue; }
    let hit = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i]-want[0]) < 24 && Math.abs(d[i+1]-want[1]) < 24 && Math.abs(d[i+2]-want[2]) < 24) hit++;
    }
    if (best[1] * best[2] === 0 || hit > best[0]) best = [hit, c.width, c.height];
  }
  // ffl's "Starting Firefox" overlay covers the page until the session is ready: what is
  // under it is not seen.
  const covered = document.getElementById('ffl-starting') ? 1 : 0;
  return best[1] ? 'canvas:' + best.join(':') + ':' + covered : 'none';
})()`

// pollScript is pollJS for the window canvases selector selects and the page colour color.
func pollScript(selector string, color uint32) string {
	return fmt.Sprintf(pollJS, selector, color>>16&0xff, color>>8&0xff, color&0xff)
}

// readCanvas takes pollJS's "canvas:<pixels>:<w>:<h>:<covered>" into seen.
func (seen *Seen) readCanvas(state string) {
	var hit, w, h, covered int
	fmt.Sscanf(strings.ReplaceAll(strings.TrimPrefix(state, "canvas:"), ":", " "), "%d %d %d %d", &hit, &w, &h, &covered)
	seen.Pixels, seen.Width, seen.Height, seen.Covered = hit, w, h, covered == 1
}

// paintedEnough says whether the canvas read last shows the page (minShare of it in the page's
// colour) and nothing covers it.
func (seen *Seen) paintedEnough(minShare float64) bool {
	return seen.Width > 0 && !seen.Covered && float64(seen.Pixels) >= minShare*float64(seen.Width*seen.Height)
}

// Browser is a running headless chromium, started before it is needed so that a measurement
// of "the session is ready -> the user sees Firefox" does not include chromium's own start.
type Browser struct {
	opts   Options
	ctx    context.Context
	cancel func()
}

// Start starts chromium (as opts.UID when set) on a blank page.
func Start(ctx context.Context, opts Options) (*Browser, error) {
	if opts.MinShare <= 0 {
		opts.MinShare = 0.3
	}
	if opts.Wait <= 0 {
		opts.Wait = 20 * time.Second
	}
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// This machine has no network: without these chromium retries connections endlessly.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(opts.ProfileDir),
		chromedp.WindowSize(1280, 900),
	)
	for name, v := range opts.Flags {
		flags = append(flags, chromedp.Flag(name, v))
	}
	if opts.UID != 0 || opts.Idle {
		// One function: chromedp keeps only the last ModifyCmdFunc.
		flags = append(flags, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			if opts.UID != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(opts.UID), Gid: uint32(opts.GID)}}
				cmd.Env = append(cmd.Env, "HOME="+opts.ProfileDir)
			}
			if opts.Idle {
				// The policy is inherited by chromium's every child (renderers, GPU, network).
				cmd.Args = append([]string{Chrt, "--idle", "0", cmd.Path}, cmd.Args[1:]...)
				cmd.Path = Chrt
			}
		}))
	}
	actx, cancel := chromedp.NewExecAllocator(ctx, flags...)
	bctx, cancel2 := chromedp.NewContext(actx)
	b := &Browser{opts: opts, ctx: bctx, cancel: func() { cancel2(); cancel() }}
	if _, err := chromedp.Run(bctx, chromedp.Navigate("about:blank")); err != nil {
		b.Close()
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	return b, nil
}

// Open navigates to url and waits for the page's load event.
func (b *Browser) Open(url string) error {
	_, err := chromedp.Run(b.ctx, chromedp.Navigate(url))
	return err
}

// Eval evaluates js in the current page (awaiting a promise it returns) and returns its
// string result.
func (b *Browser) Eval(js string) (string, error) {
	return chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
}

// Close ends chromium.
func (b *Browser) Close() {
	b.cancel()
	RemoveSingletonDir(b.opts.ProfileDir)
}

// RemoveSingletonDir removes the directory chromium keeps its single-instance socket in (its
// profile's SingletonSocket link points there: $TMPDIR/org.chromium.Chromium.XXXXXX), which a
// chromium that was killed, as chromedp ends it, leaves behind: one more in /tmp for every
// browser a test or the bench starts. Call it once chromium has exited. Only a real directory
// of that name right in the temp dir, owned by the profile's owner (chromium's user), is
// removed: the link is that user's to point anywhere, and the caller may be root.
func RemoveSingletonDir(profile string) {
	if profile == "" {
		return
	}
	target, err := os.Readlink(filepath.Join(profile, "SingletonSocket"))
	if err != nil {
		return
	}
	dir := filepath.Dir(filepath.Clean(target))
	if filepath.Dir(dir) != filepath.Clean(os.TempDir()) || !strings.HasPrefix(filepath.Base(dir), "org.chromium.Chromium.") {
		return
	}
	var owner, d unix.Stat_t
	if unix.Lstat(profile, &owner) != nil || unix.Lstat(dir, &d) != nil {
		return
	}
	if d.Mode&unix.S_IFMT == unix.S_IFDIR && d.Uid == owner.Uid {
		_ = os.RemoveAll(dir)
	}
}

// SeePage opens url (the HTML5 client) in headless chromium and waits, up to opts.Wait, for
// Firefox's page of opts.Color to be painted in a window canvas. It fails with one of the Err*
// kinds, saying what the user would have seen instead.
func SeePage(ctx context.Context, url string, opts Options) (Seen, error) {
	b, err := Start(ctx, opts)
	if err != nil {
		return Seen{}, err
	}
	defer b.Close()
	return b.See(url)
}

// See navigates to url and waits for Firefox's page (see SeePage); Painted is measured from the
// start of the navigation. It also records the client's start as DevTools' network events show
// it (Seen.WebSocket, FirstFrame, Requests).
func (b *Browser) See(url string) (Seen, error) {
	var mu sync.Mutex
	var ws, frame time.Time
	requests, revalidated := 0, 0
	lctx, stop := context.WithCancel(b.ctx)
	defer stop()
	if err := chromedp.Listen(lctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ws.IsZero() {
				requests++
			}
		case *network.EventResponseReceivedExtraInfo:
			// The status on the wire: responseReceived says 200 for a response the browser's
			// cache answered after the server's 304.
			if e.StatusCode == 304 {
				revalidated++
			}
		case *network.EventWebSocketCreated:
			if ws.IsZero() {
				ws = time.Now()
			}
		case *network.EventWebSocketFrameReceived:
			if frame.IsZero() {
				frame = time.Now()
			}
		}
	}); err != nil {
		return Seen{}, fmt.Errorf("DevTools events: %w", err)
	}
	// chromedp enables the network domain of every target it attaches to.
	seen, err := b.see(url)
	stop()
	mu.Lock()
	defer mu.Unlock()
	if !ws.IsZero() {
		seen.WebSocket = ws.Sub(seen.start)
	}
	if !frame.IsZero() {
		seen.FirstFrame = frame.Sub(seen.start)
	}
	seen.Requests, seen.Revalidated = requests, revalidated
	return seen, err
}

// see is See without the DevTools events.
func (b *Browser) see(url string) (Seen, error) {
	opts, bctx := b.opts, b.ctx
	var seen Seen
	shot := func() {
		if opts.Shot == "" {
			return
		}
		sctx, c := context.WithTimeout(bctx, 10*time.Second)
		defer c()
		if png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(opts.Shot, png, 0o644)
		}
	}
	t0 := time.Now()
	seen.start = t0
	if _, err := chromedp.Run(bctx, chromedp.Navigate(url)); err != nil {
		if strings.Contains(err.Error(), "ERR_CONNECTION") || strings.Contains(err.Error(), "ERR_EMPTY_RESPONSE") {
			return seen, fmt.Errorf("%w: %v", ErrNoPage, err)
		}
		return seen, fmt.Errorf("open the HTML5 client: %w", err)
	}
	seen.Loaded = time.Since(t0)
	deadline := t0.Add(opts.Wait)
	js := pollScript("canvas", opts.Color)
	last := ""
	for {
		state, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err == nil {
			last = state
			switch {
			case strings.HasPrefix(state, "connect:"):
				seen.DisconnectText = strings.TrimPrefix(state, "connect:")
				shot()
				if strings.Contains(strings.ToLower(seen.DisconnectText), "password") {
					return seen, fmt.Errorf("%w: %s", ErrPasswordPrompt, seen.DisconnectText)
				}
				return seen, fmt.Errorf("%w: %s", ErrDisconnected, seen.DisconnectText)
			case strings.HasPrefix(state, "canvas:"):
				seen.readCanvas(state)
				now := time.Since(t0)
				if seen.Window == 0 {
					seen.Window = now
				}
				if seen.Colored == 0 && seen.Width > 0 && float64(seen.Pixels) >= opts.MinShare*float64(seen.Width*seen.Height) {
					seen.Colored = now
				}
				if seen.Uncovered == 0 && !seen.Covered {
					seen.Uncovered = now
				}
				if seen.paintedEnough(opts.MinShare) {
					seen.Painted = time.Since(t0)
					shot()
					return seen, nil
				}
			}
		}
		if time.Now().After(deadline) || bctx.Err() != nil {
			shot()
			switch {
			case strings.HasPrefix(last, "canvas:"):
				return seen, fmt.Errorf("%w: the best window canvas (%dx%d) had %d pixels of #%06x (under the starting overlay: %v)", ErrEmptyFrame, seen.Width, seen.Height, seen.Pixels, opts.Color, seen.Covered)
			case last == "empty":
				return seen, fmt.Errorf("%w: an empty page", ErrNoPage)
			default:
				return seen, fmt.Errorf("%w (state %q)", ErrNoWindow, last)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
