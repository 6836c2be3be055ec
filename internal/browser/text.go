package browser

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// titlesJS lists the window titles the HTML5 client shows above its windows (xpra-html5 draws
// them as text in each window's head bar: what the user reads there).
const titlesJS = `Array.from(document.querySelectorAll('.windowtitle')).map(e => e.innerText).join(' | ')`

// WaitTitle opens url (the HTML5 client) and waits, up to wait, until a window title the
// client shows contains want. It returns the titles last seen.
func (b *Browser) WaitTitle(url, want string, wait time.Duration) (string, error) {
	if _, err := chromedp.Run(b.ctx, chromedp.Navigate(url)); err != nil {
		return "", fmt.Errorf("open the HTML5 client: %w", err)
	}
	deadline := time.Now().Add(wait)
	last := ""
	for {
		if titles, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](titlesJS)); err == nil {
			last = titles
			if strings.Contains(titles, want) {
				b.screenshot()
				return titles, nil
			}
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.screenshot()
			return last, fmt.Errorf("no window title with %q within %v (titles: %q)", want, wait, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the page as PNG to opts.Shot, when set (after a short settle, so that the
// window's first frames are painted).
func (b *Browser) screenshot() {
	if b.opts.Shot == "" {
		return
	}
	time.Sleep(time.Second)
	if png, err := b.Screenshot(); err == nil {
		_ = os.WriteFile(b.opts.Shot, png, 0o644)
	}
}

// Screenshot returns a PNG of the page chromium shows.
func (b *Browser) Screenshot() ([]byte, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.FullScreenshot(100))
}
