package browser

import (
	"fmt"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// seenAttr marks the window canvases that existed when MarkWindows ran.
const seenAttr = "data-ffl-seen"

// MarkWindows marks every canvas of the current page, so that WaitNewWindow can tell a window
// the HTML5 client made after a reconnect from the one it showed before (xpra's client drops
// its window canvases when it loses the server and makes new ones when it is back).
func (b *Browser) MarkWindows() (int, error) {
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](
		`(() => { const cs = document.querySelectorAll('canvas'); cs.forEach(c => c.setAttribute('`+seenAttr+`', '1')); return cs.length; })()`))
	return n, err
}

// WaitNewWindow waits, up to wait and without navigating, until the current page shows
// Firefox's page of opts.Color (MinShare of the canvas, not under the starting overlay) in a
// window canvas that MarkWindows did not mark: the client has reconnected and the page was painted again. A tab that went
// to the disconnect page instead fails with ErrDisconnected and its text.
func (b *Browser) WaitNewWindow(wait time.Duration) (Seen, error) {
	js := pollScript("canvas:not(["+seenAttr+"])", b.opts.Color)
	var seen Seen
	t0 := time.Now()
	last := ""
	for {
		state, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
		if err == nil {
			last = state
			switch {
			case strings.HasPrefix(state, "connect:"):
				seen.DisconnectText = strings.TrimPrefix(state, "connect:")
				return seen, fmt.Errorf("%w: %s", ErrDisconnected, seen.DisconnectText)
			case strings.HasPrefix(state, "canvas:"):
				seen.readCanvas(state)
				if seen.Window == 0 {
					seen.Window = time.Since(t0)
				}
				if seen.paintedEnough(b.opts.MinShare) {
					seen.Painted = time.Since(t0)
					return seen, nil
				}
			}
		}
		if time.Since(t0) > wait || b.ctx.Err() != nil {
			if strings.HasPrefix(last, "canvas:") {
				return seen, fmt.Errorf("%w: the best new window canvas (%dx%d) had %d pixels of #%06x", ErrEmptyFrame, seen.Width, seen.Height, seen.Pixels, b.opts.Color)
			}
			return seen, fmt.Errorf("%w after the reconnect (state %q)", ErrNoWindow, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ClickAndType is a user's input through the DevTools protocol (Input.dispatchMouseEvent and
// Input.dispatchKeyEvent, the events a real mouse and keyboard make): a click at (x, y) in CSS
// pixels of the viewport, then the keys.
func (b *Browser) ClickAndType(x, y float64, keys string) error {
	return chromedp.Do(b.ctx, chromedp.MouseClickXY(x, y), chromedp.KeyEvent(keys))
}
