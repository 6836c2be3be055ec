package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// Modifier bits of a key or mouse event, as DevTools numbers them.
const (
	ModAlt   = 1
	ModCtrl  = 2
	ModMeta  = 4
	ModShift = 8
)

// Key is one key as a user's keyboard sends it to chromium: the physical key (Code, e.g.
// "KeyQ"), what the layout makes of it with the modifiers held (Key, e.g. "@", "Dead",
// "AltGraph"), the legacy keyCode (KeyCode, what `event.keyCode` says), the text it types
// ("" for modifiers and dead keys), the modifier bits held, and Location (1 left, 2 right)
// for the keys that exist twice. A keyboard of another layout differs only in Key, KeyCode and
// Text for the same Code: that is exactly what the HTML5 client must get right.
type Key struct {
	Code      string
	Key       string
	KeyCode   int64
	Text      string
	Modifiers int64
	Location  int64
	// Repeat marks a keydown the browser repeats while the key is held (event.repeat).
	Repeat bool
}

// Down sends the key's keydown as chromium gets it from a keyboard: "keyDown" with the text
// it types (which makes keypress and input unless the page prevents it), or "rawKeyDown" for
// a key that types nothing (modifiers, dead keys).
func (b *Browser) Down(k Key) error {
	typ := input.DispatchKeyEventTypeKeyDown
	if k.Text == "" {
		typ = input.DispatchKeyEventTypeRawKeyDown
	}
	_, err := chromedp.Call(b.ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
		Type: typ, Code: k.Code, Key: k.Key, WindowsVirtualKeyCode: k.KeyCode, NativeVirtualKeyCode: k.KeyCode,
		Text: k.Text, UnmodifiedText: k.Text, Modifiers: k.Modifiers, Location: k.Location, AutoRepeat: &k.Repeat,
	})
	if err != nil {
		return fmt.Errorf("key down %s (%q): %w", k.Code, k.Key, err)
	}
	return nil
}

// Up sends the key's keyup.
func (b *Browser) Up(k Key) error {
	_, err := chromedp.Call(b.ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
		Type: input.DispatchKeyEventTypeKeyUp, Code: k.Code, Key: k.Key, WindowsVirtualKeyCode: k.KeyCode, NativeVirtualKeyCode: k.KeyCode,
		Modifiers: k.Modifiers, Location: k.Location,
	})
	if err != nil {
		return fmt.Errorf("key up %s (%q): %w", k.Code, k.Key, err)
	}
	return nil
}

// Press is Down then Up.
func (b *Browser) Press(k Key) error {
	if err := b.Down(k); err != nil {
		return err
	}
	return b.Up(k)
}

// Click presses and releases the left mouse button at (x, y) of the page (CSS pixels).
func (b *Browser) Click(x, y float64) error {
	for _, typ := range []input.DispatchMouseEventType{input.DispatchMouseEventTypeMouseMoved, input.DispatchMouseEventTypeMousePressed, input.DispatchMouseEventTypeMouseReleased} {
		p := input.DispatchMouseEventParams{Type: typ, X: x, Y: y}
		if typ != input.DispatchMouseEventTypeMouseMoved {
			p.Button, p.Buttons, p.ClickCount = input.MouseButtonLeft, 1, 1
		}
		if _, err := chromedp.Call(b.ctx, input.DispatchMouseEvent, p); err != nil {
			return fmt.Errorf("click at %.0f,%.0f: %w", x, y, err)
		}
	}
	return nil
}

// AllowClipboard answers for the page of pageURL's origin what a user answers when the
// browser asks "See text and images copied to the clipboard": allowed (read) or blocked (!read).
// It also keeps the page focused as a visible tab is (headless chromium has no window focus, and
// the Clipboard API answers only a focused document).
func (b *Browser) AllowClipboard(pageURL string, read bool) error {
	u, err := url.Parse(pageURL)
	if err != nil {
		return fmt.Errorf("clipboard permission: %w", err)
	}
	origin := u.Scheme + "://" + u.Host
	setting := cdpbrowser.PermissionSettingGranted
	if !read {
		setting = cdpbrowser.PermissionSettingDenied
	}
	// One setting: with allowWithoutSanitization chromium maps clipboard-read and clipboard-write
	// to the same read-write setting, which is the one the user's answer sets. (A grant of
	// clipboard-write, set as well from a map in random order, undid a blocked read about one
	// run in eight: TestClipboardIntoFirefox/reading_blocked then failed.)
	_, err = chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "clipboard-read", AllowWithoutSanitization: true},
		Setting:    setting, Origin: origin,
	})
	if err != nil {
		return fmt.Errorf("set clipboard-read to %s for %s: %w", setting, origin, err)
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		return fmt.Errorf("focus emulation: %w", err)
	}
	return nil
}

// CopyElsewhere puts text on chromium's clipboard from another tab, showing pageURL (of
// another origin), as a user copies text from another page; the tab is closed afterwards.
func (b *Browser) CopyElsewhere(pageURL, text string) error {
	tctx, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Navigate(pageURL)); err != nil {
		return fmt.Errorf("open %s: %w", pageURL, err)
	}
	other := &Browser{opts: b.opts, ctx: tctx, cancel: cancel}
	if err := other.AllowClipboard(pageURL, true); err != nil {
		return err
	}
	return other.WriteClipboard(text)
}

// ReadClipboard is the text on chromium's clipboard, read with the Clipboard API in the current
// page (what any other page or application of the user's machine would paste).
func (b *Browser) ReadClipboard() (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
}

// WriteClipboard puts text on chromium's clipboard with the Clipboard API, as copying it from
// any page or application of the user's machine does.
func (b *Browser) WriteClipboard(text string) error {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	lit, err := json.Marshal(text)
	if err != nil {
		return err
	}
	_, err = chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.writeText(`+string(lit)+`).then(() => "ok")`, chromedp.EvalAwaitPromise))
	return err
}
