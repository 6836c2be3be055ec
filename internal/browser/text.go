package browser

import (
	"fmt"
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
				return titles, nil
			}
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			return last, fmt.Errorf("no window title with %q within %v (titles: %q)", want, wait, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
