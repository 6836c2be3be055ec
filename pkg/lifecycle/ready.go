package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/pkg/fswait"
	"github.com/ffl-hpc/ffl/pkg/x11"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// Probe decides when a started session is ready for its user. The real one (VisibleProbe)
// waits until Firefox is visible; fast unit tests, whose fake xpra draws nothing, use one that
// only asks the socket.
type Probe interface {
	// Wait returns once the session is ready, with how long each step took, or an error saying
	// which step did not happen. It returns when ctx is done.
	Wait(ctx context.Context, t ProbeTarget) (Readiness, error)
}

// ProbeTarget is what a probe may look at.
type ProbeTarget struct {
	// Socket is xpra's unix socket.
	Socket string
	// XpraLog is xpra's log file ("" if none): its writes wake the wait for xpra's page.
	XpraLog string
	// Display blocks until xpra has told its display number (or ctx is done).
	Display func(ctx context.Context) (int, error)
	// Xauthority is the session's authority file (xpra writes the Xvfb cookie there).
	Xauthority string
	// XDir holds .X11-unix ("" = /tmp).
	XDir string
	// Started is when xpra was started; the figures are measured from it.
	Started time.Time
	// Encoding is the packet encoding xpra's control socket takes (bencode for 3.x,
	// rencodeplus from 5.0: xpra 6 drops a bencoded request without answering).
	Encoding xpra.Encoding
	// Serving, if set, is called once xpra serves its HTML5 page (and its empty clipboard
	// claim is released), before the rest of the wait: the session's front then lets a waiting
	// browser load the client during Firefox's start.
	Serving func()
}

// Readiness is how long a start took, from xpra's exec.
type Readiness struct {
	// HTTP is when xpra served its HTML5 page.
	HTTP time.Duration
	// Window is when Firefox's first window was mapped and had painted.
	Window time.Duration
	// Title is that window's title.
	Title string
	// Released names the selections of xpra's empty clipboard claim the probe gave up
	// (see releaseClaim), and why that failed if it did.
	Released   []string
	ReleaseErr error
	// WatchErr says why the probe could not have the X server report changes (x11.Watch,
	// WatchDrawing) and looked every Poll instead; nil when it could.
	WatchErr error
}

// Errors of the readiness steps (wrapped in a StartError).
var (
	// ErrNoHTTP: xpra never served its HTML5 page.
	ErrNoHTTP = errors.New("xpra never served its HTML5 page")
	// ErrNoWindow: Firefox never mapped a window.
	ErrNoWindow = errors.New("Firefox never showed a window")
	// ErrNotPainted: Firefox's window stayed blank.
	ErrNotPainted = errors.New("Firefox's window never painted")
	// ErrPageLoad: Firefox showed its "Problem loading page" error for the start URL.
	ErrPageLoad = errors.New("Firefox could not load the start URL")
)

// VisibleProbe is the readiness a user means: xpra serves its page, Firefox's window exists and
// is mapped, and it has painted. (A page's own title cannot mark "loaded": a page without a
// <title> leaves the window's "Mozilla Firefox"; a start page the node cannot load is refused
// before the start by CheckStartURL, and a "Problem loading page" title seen while waiting fails
// the start.) xpra keeps client windows unmapped until a client asks for
// them, so the probe asks xpra to show them (its show-all-windows control command) and then
// reads the window's pixels from the X server: a window that is one colour has not painted.
//
// The probe looks at the X display when the X server reports a change (x11.Display.Watch: a
// window created, mapped, renamed, or drawn into), not on a timer: a look every 20 ms for the
// whole start was most of the launcher's CPU and a share of the X server's, and on a node
// where eight sessions started at once, with each start ten times as long, it took a quarter
// of each start's CPU. Looks are at least Poll apart (drawing comes in bursts) and at most
// Fallback apart (a change the server does not report, such as an X server without DAMAGE).
type VisibleProbe struct {
	// Poll is the least time between two looks at the X display (default 20 ms).
	Poll time.Duration
	// Fallback is the longest time between two looks when the X server reports nothing
	// (default 250 ms).
	Fallback time.Duration
}

// Wait implements Probe.
func (p VisibleProbe) Wait(ctx context.Context, t ProbeTarget) (Readiness, error) {
	var r Readiness
	poll, fallback := p.Poll, p.Fallback
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	if fallback <= 0 {
		fallback = 250 * time.Millisecond
	}
	fallback = max(fallback, poll)
	if err := waitHTTP(ctx, t.Socket, t.XpraLog); err != nil {
		return r, err
	}
	r.HTTP = time.Since(t.Started)
	n, err := t.Display(ctx)
	if err != nil {
		return r, fmt.Errorf("%w: xpra told no display: %v", ErrNoWindow, err)
	}
	var cookie []byte
	err = every(ctx, poll, func() (bool, error) {
		var err error
		cookie, err = x11.Cookie(t.Xauthority, n)
		return err == nil, nil
	})
	if err != nil {
		return r, fmt.Errorf("%w: no X cookie for display :%d in %s", ErrNoWindow, n, t.Xauthority)
	}
	d, err := x11.Dial(ctx, t.XDir, n, cookie)
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrNoWindow, err)
	}
	defer d.Close()
	// Not a reason to fail the start either: without the X server's reports the probe looks
	// every poll, as it did before it had them.
	var changed <-chan struct{}
	if r.WatchErr = d.Watch(); r.WatchErr == nil {
		changed = d.Changed()
	} else {
		fallback = poll
	}
	// Not a reason to fail the start: the session works with the claim, only later.
	r.Released, r.ReleaseErr = releaseClaim(d)
	if t.Serving != nil {
		t.Serving()
	}
	find := func(id uint32) (x11.Window, bool, error) {
		ws, err := d.Windows(x11.IsFirefox)
		if err != nil {
			return x11.Window{}, false, err
		}
		for _, w := range ws {
			if (id == 0 || w.ID == id) && w.Mapped && w.Width >= 100 && w.Height >= 100 {
				return w, true, nil
			}
		}
		return x11.Window{}, false, nil
	}
	var win x11.Window
	if err := whenChanged(ctx, changed, poll, fallback, func() (bool, error) {
		w, ok, err := find(0)
		win = w
		return ok, err
	}); err != nil {
		return r, fmt.Errorf("%w: %v", ErrNoWindow, err)
	}
	if err := showAllWindows(ctx, t.Socket, t.Encoding, win.ID); err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotPainted, err)
	}
	paintFallback := fallback
	if r.WatchErr == nil {
		if r.WatchErr = d.WatchDrawing(win); r.WatchErr != nil {
			// Drawing is then seen only by looking again.
			paintFallback = poll
		}
	}
	err = whenChanged(ctx, changed, poll, paintFallback, func() (bool, error) {
		w, ok, err := find(win.ID)
		if err != nil || !ok {
			return false, err
		}
		win = w
		if strings.HasPrefix(w.Title, "Problem loading page") {
			return false, fmt.Errorf("%w (window title %q)", ErrPageLoad, w.Title)
		}
		if !w.Viewable {
			return false, nil
		}
		// Before the look: what is drawn after it is reported again.
		d.Drawn()
		colors, err := d.Colors(w, 8)
		return err == nil && colors >= 2, nil
	})
	if errors.Is(err, ErrPageLoad) {
		return r, err
	}
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrNotPainted, err)
	}
	r.Window, r.Title = time.Since(t.Started), win.Title
	return r, nil
}

// xpraClipboardWindow is the title of the window with which xpra (3.1 to 6.x) owns selections.
const xpraClipboardWindow = "Xpra-Clipboard"

// releaseClaim gives up the selections xpra claimed at its start. xpra claims CLIPBOARD,
// PRIMARY and SECONDARY before it has anything to offer, and answers a program that asks for
// them by asking its client; with none connected yet, each request waits for xpra's timeout
// (1.5 s). Firefox asks for the clipboard's targets and text while it starts and waits for the
// answers before its first paint: with no client, the claim made Firefox's window paint
// 3.9-4.2 s after xpra's exec instead of 2.1-2.3 s (docs/DESIGN.md, "xpra's empty clipboard
// claim"). It runs before the front lets any client through (so nothing a client gave xpra is
// given up) and after xpra serves its page (its claim is made by then); once a client gives
// xpra a clipboard, xpra claims again and pastes reach Firefox as before.
func releaseClaim(d *x11.Display) ([]string, error) {
	return d.ReleaseSelections(xpraClipboardWindow, "CLIPBOARD", "PRIMARY", "SECONDARY")
}

// showAllWindows asks xpra to map every client window: its show-all-windows control command
// (xpra 3.1 to 6.4). xpra 6.5 no longer registers that command (its seamless server still
// defines it, but nothing adds it any more: the answer is "invalid command"); there the window
// is mapped with the "map WID" command, and a window's id is its X window id (the seamless
// server's allocate_wid), so the id of the Firefox window the probe found is the one to map.
func showAllWindows(ctx context.Context, socket string, enc xpra.Encoding, xid uint32) error {
	_, err := xpra.Control(ctx, socket, enc, "show-all-windows")
	var ce *xpra.CommandError
	if !errors.As(err, &ce) || ce.Code != xpra.CodeInvalid {
		return err
	}
	if _, err := xpra.Control(ctx, socket, enc, "map", strconv.FormatUint(uint64(xid), 10)); err != nil {
		return fmt.Errorf("no show-all-windows command, and map of window %#x: %w", xid, err)
	}
	return nil
}

// HTTPProbe is ready when xpra serves its HTML5 page: what a session without an X display to
// look at (the fast tests' fake xpra) can offer.
type HTTPProbe struct{}

// Wait implements Probe.
func (HTTPProbe) Wait(ctx context.Context, t ProbeTarget) (Readiness, error) {
	if err := waitHTTP(ctx, t.Socket, t.XpraLog); err != nil {
		return Readiness{}, err
	}
	d := time.Since(t.Started)
	return Readiness{HTTP: d, Window: d}, nil
}

// waitHTTP asks for xpra's page until it is served. xpra 3.1 binds its socket early in its start
// but listens only once its main loop runs, and then logs "xpra is ready."; a look before that
// is refused at once. So the wait looks when xpra's log is written or the socket's directory
// gets an entry (xpra writes its log at every step of its start; pkg/fswait says what looks on
// a timer cost instead), never more often than every 2 ms, and at least every 50 ms in case no
// log line follows the listen. Where the files cannot be watched it looks every 2 ms.
func waitHTTP(ctx context.Context, socket, log string) error {
	const least = 2 * time.Millisecond
	paths := []string{filepath.Dir(socket)}
	if log != "" {
		paths = append(paths, log)
	}
	var changed <-chan struct{}
	most := least
	if w, err := fswait.New(paths...); err == nil {
		defer w.Close()
		changed, most = w.Changed(), 50*time.Millisecond
	}
	err := whenChanged(ctx, changed, least, most, func() (bool, error) { return xpra.HTTPReady(ctx, socket) })
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: %v", ErrNoHTTP, context.Cause(ctx))
	}
	return err
}

// whenChanged calls fn, then again after each receive from changed (but no sooner than least
// after the previous call) or once most has passed without one, until fn says done, fails, or
// ctx ends (ctx's cause is returned). A nil changed never receives: fn is then called every
// most.
func whenChanged(ctx context.Context, changed <-chan struct{}, least, most time.Duration, fn func() (bool, error)) error {
	idle := time.NewTimer(most)
	defer idle.Stop()
	for {
		last := time.Now()
		done, err := fn()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		idle.Reset(most - time.Since(last))
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-idle.C:
			continue
		case <-changed:
		}
		if wait := least - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(wait):
			}
		}
	}
}

// every calls fn every d until it says done, fails, or ctx ends (ctx's cause is returned): a
// wait with no reports to wake it.
func every(ctx context.Context, d time.Duration, fn func() (bool, error)) error {
	return whenChanged(ctx, nil, d, d, fn)
}
