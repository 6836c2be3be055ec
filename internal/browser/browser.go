// Package browser drives a real headless Debian chromium over the DevTools protocol to look at a
// session the way a user does: the xpra HTML5 client, with the Firefox window in it.
package browser

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium is Debian's chromium binary.
const Chromium = "/usr/bin/chromium"

// SeeWindow opens url (the HTML5 client, with ?password=... for the session) in headless
// chromium, waits until the client draws a window with a title, saves a PNG screenshot to shot
// and returns the window's title. A one-shot `chromium --screenshot` does not wait long enough
// (it shows only "Opening WebSocket connection"), hence the DevTools protocol.
func SeeWindow(ctx context.Context, url, shot, profileDir string) (string, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		// This machine has no network: without these chromium retries connections endlessly.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profileDir),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(ctx, opts...)
	defer cancel()
	bctx, cancel2 := chromedp.NewContext(actx)
	defer cancel2()
	if _, err := chromedp.Run(bctx, chromedp.Navigate(url)); err != nil {
		return "", fmt.Errorf("open the HTML5 client: %w", err)
	}
	title, err := chromedp.Run(bctx, chromedp.Poll[string](`(() => { const e = [...document.querySelectorAll('.windowtitle')].find(x => x.textContent.trim() !== ''); return e ? e.textContent.trim() : false; })()`, chromedp.WithPollingInterval(250*time.Millisecond)))
	if err != nil {
		return "", fmt.Errorf("the HTML5 client showed no window: %w", err)
	}
	// Let the canvas paint a few frames before the picture.
	if _, err := chromedp.Run(bctx, chromedp.Sleep(2*time.Second)); err != nil {
		return title, err
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		return title, fmt.Errorf("screenshot: %w", err)
	}
	return title, os.WriteFile(shot, png, 0o644)
}
