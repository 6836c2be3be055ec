package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// formSite serves the page Firefox shows in the input tests: one textarea over the whole page
// (of pageColor, so the HTML5 client's canvas shows it), focused, whose value the page posts
// back to the test at every change. What the test reads is what arrived in Firefox's field,
// not what was sent.
type formSite struct {
	url   string
	mu    sync.Mutex
	value string
	seq   int
}

func newFormSite(t *testing.T) *formSite {
	t.Helper()
	s := &formSite{}
	mux := http.NewServeMux()
	mux.HandleFunc("/form", func(w http.ResponseWriter, r *http.Request) {
		// ?text=...: the field starts with this text, selected (what the user selected to copy).
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><meta charset="utf-8"><title>ffl input test</title></head>`+
			`<body style="margin:0;background:#%06x"><textarea id="f" autofocus spellcheck="false" `+
			`style="position:fixed;left:0;top:0;width:100%%;height:100%%;border:0;margin:0;padding:20px;box-sizing:border-box;background:#%06x;color:#%06x;font-size:14px"></textarea>
<script>
const f = document.getElementById('f');
let seq = 0;
const post = () => fetch('/value?seq=' + (++seq), {method: 'POST', headers: {'Content-Type': 'text/plain;charset=utf-8'}, body: f.value});
f.addEventListener('input', post);
const start = new URLSearchParams(location.search).get('text');
if (start) { f.value = start; f.focus(); f.select(); post(); }
</script></body></html>`, pageColor, pageColor, pageColor+0x101010)
	})
	mux.HandleFunc("/value", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		seq, _ := strconv.Atoi(r.URL.Query().Get("seq"))
		s.mu.Lock()
		// The page posts every change at once, so posts may arrive out of order: the value of
		// the latest change counts.
		if seq > s.seq {
			s.value, s.seq = string(b), seq
		}
		s.mu.Unlock()
	})
	srv := httptest.NewServer(mux) // on 127.0.0.1, where the session's Firefox reaches it
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// field is the value of Firefox's field after its latest change.
func (s *formSite) field() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value
}

// waitField waits until Firefox's field holds want and returns what it last held.
func (s *formSite) waitField(want string) string {
	got := ""
	testutil.Eventually(20*time.Second, func() bool { got = s.field(); return got == want })
	return got
}

// fullStop is the key typed after a test's input: it reaches Firefox after every key before it.
var fullStop = chord{key: browser.Key{Code: "Period", Key: ".", KeyCode: 190, Text: "."}}

// settled types fullStop after the test's input and waits until Firefox's field holds want
// followed by it. Keys arrive in order, so a key that arrived twice (a repeat, a second copy)
// is in the field by then, and the field is exactly what the user typed or it is not. It
// returns the field without the full stop.
func settled(t *testing.T, s *formSite, b *browser.Browser, want string) string {
	t.Helper()
	typeKeys(t, b, []chord{fullStop})
	got := s.waitField(want + ".")
	return strings.TrimSuffix(got, ".")
}

// inputSession starts a session on the form page (with cfg, the page's query pageQuery) and a
// chromium as the user (browser language lang) on its HTML5 client with Firefox's page
// painted; reading the clipboard allowed or blocked (readClipboard) as the user answered the
// browser's question, and with click the mouse clicked into the field (as a user starts typing).
// It returns the form's site, the browser, the session's env and its announcement.
func inputSession(t *testing.T, job string, cfg map[string]string, pageQuery string, lang string, click, readClipboard bool) (*formSite, *browser.Browser, *env, lifecycle.Info) {
	t.Helper()
	if d := os.Getenv("FFL_E2E_XPRA_DEBUG"); d != "" {
		// xpra's debug log of these categories, printed when the test fails.
		cfg = maps.Clone(cfg)
		if cfg == nil {
			cfg = map[string]string{}
		}
		cfg["xpra_args"] = `["--debug=` + d + `"]`
	}
	e := newEnv(t, "ffltest", job, cfg)
	s := newFormSite(t)
	l := e.run("--url", s.url+"/form"+pageQuery)
	info := l.ready(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("xpra.log:\n%s", e.xpraLog(info.Port))
		}
		l.stop(t, syscall.SIGTERM)
		e.assertNothingLeft(t, info.Port)
	})
	profile := filepath.Join(e.dir, "chromium-"+strconv.Itoa(rand.IntN(1e6)))
	testutil.MkdirAs(t, profile, e.user, 0o700)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	flags := map[string]any{}
	if lang != "" {
		flags["lang"] = lang
		flags["accept-lang"] = lang
	}
	b, err := browser.Start(ctx, browser.Options{UID: e.user.UID, GID: e.user.GID, ProfileDir: profile, Color: pageColor,
		Shot: filepath.Join(artifactDir(t), "input-"+job+".png"), Wait: 60 * time.Second, Flags: flags})
	testutil.Must(t, err, "chromium")
	t.Cleanup(b.Close)
	testutil.Must(t, b.AllowClipboard(info.URL, readClipboard), "clipboard permission")
	if _, err := b.See(info.URL); err != nil {
		t.Fatalf("Firefox's form in the HTML5 client: %v", err)
	}
	if click {
		clickFirefox(t, b)
	}
	return s, b, e, info
}

// clickFirefox clicks into the middle of Firefox's window in the HTML5 client: the field covers
// the page.
func clickFirefox(t *testing.T, b *browser.Browser) {
	t.Helper()
	rect, err := b.Eval(`(() => { let best = null; for (const c of document.querySelectorAll('canvas')) { const r = c.getBoundingClientRect(); if (!best || r.width*r.height > best.width*best.height) best = r; } return best ? [best.left + best.width/2, best.top + best.height/2].join(' ') : ''; })()`)
	testutil.Must(t, err, "window canvas")
	var x, y float64
	if _, err := fmt.Sscanf(rect, "%f %f", &x, &y); err != nil {
		t.Fatalf("no window canvas to click (%q)", rect)
	}
	testutil.Must(t, b.Click(x, y), "click into Firefox")
}

// typeKeys presses each key, holding the modifier keys of a chord around it.
func typeKeys(t *testing.T, b *browser.Browser, keys []chord) {
	t.Helper()
	for _, c := range keys {
		for _, m := range c.hold {
			testutil.Must(t, b.Down(m), "modifier down")
		}
		testutil.Must(t, b.Press(c.key), "key")
		for i := len(c.hold) - 1; i >= 0; i-- {
			testutil.Must(t, b.Up(c.hold[i]), "modifier up")
		}
	}
}

// chord is a key pressed while the hold keys are held down.
type chord struct {
	hold []browser.Key
	key  browser.Key
}

var (
	shiftL = browser.Key{Code: "ShiftLeft", Key: "Shift", KeyCode: 16, Location: 1}
	ctrlL  = browser.Key{Code: "ControlLeft", Key: "Control", KeyCode: 17, Location: 1}
	altGr  = browser.Key{Code: "AltRight", Key: "AltGraph", KeyCode: 225, Location: 2}
)

// usKeys is what a US keyboard sends for text (letters, digits, space and the punctuation
// used in the tests).
func usKeys(t *testing.T, text string) []chord {
	t.Helper()
	var out []chord
	for _, r := range text {
		s := string(r)
		switch {
		case r >= 'a' && r <= 'z':
			out = append(out, chord{key: browser.Key{Code: "Key" + strings.ToUpper(s), Key: s, KeyCode: int64(r - 'a' + 'A'), Text: s}})
		case r >= 'A' && r <= 'Z':
			out = append(out, chord{hold: []browser.Key{shiftL}, key: browser.Key{Code: "Key" + s, Key: s, KeyCode: int64(r), Text: s, Modifiers: browser.ModShift}})
		case r >= '0' && r <= '9':
			out = append(out, chord{key: browser.Key{Code: "Digit" + s, Key: s, KeyCode: int64(r), Text: s}})
		case r == ' ':
			out = append(out, chord{key: browser.Key{Code: "Space", Key: " ", KeyCode: 32, Text: " "}})
		case r == ',':
			out = append(out, chord{key: browser.Key{Code: "Comma", Key: ",", KeyCode: 188, Text: ","}})
		case r == '.':
			out = append(out, chord{key: browser.Key{Code: "Period", Key: ".", KeyCode: 190, Text: "."}})
		case r == '!':
			out = append(out, chord{hold: []browser.Key{shiftL}, key: browser.Key{Code: "Digit1", Key: "!", KeyCode: 49, Text: "!", Modifiers: browser.ModShift}})
		case r == '@':
			out = append(out, chord{hold: []browser.Key{shiftL}, key: browser.Key{Code: "Digit2", Key: "@", KeyCode: 50, Text: "@", Modifiers: browser.ModShift}})
		default:
			t.Fatalf("usKeys: no US key for %q", r)
		}
	}
	return out
}

// TestTypingUS: keys typed into the HTML5 client arrive in Firefox's field exactly as typed.
func TestTypingUS(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	s, b, _, _ := inputSession(t, "9801", nil, "", "en-US", true, true)
	want := "Hello, World! 42 @home."
	typeKeys(t, b, usKeys(t, want))
	if got := settled(t, s, b, want); got != want {
		t.Errorf("typed %q on a US keyboard, Firefox's field holds %q", want, got)
	}
}

// deKeys is what a German (de, T1) keyboard sends for text: z and y swapped, umlauts and ß on
// their own keys, @ and € with AltGr, ê as the dead key ^ then e. The keyCodes are chromium's
// on Linux for that layout.
func deKeys(t *testing.T, text string) []chord {
	t.Helper()
	key := func(code, k string, kc int64) browser.Key {
		return browser.Key{Code: code, Key: k, KeyCode: kc, Text: k}
	}
	shifted := func(k browser.Key) chord {
		k.Modifiers = browser.ModShift
		return chord{hold: []browser.Key{shiftL}, key: k}
	}
	deadCircumflex := browser.Key{Code: "Backquote", Key: "Dead", KeyCode: 220}
	var out []chord
	for _, r := range text {
		s := string(r)
		switch {
		case r == 'z':
			out = append(out, chord{key: key("KeyY", s, 'Z')})
		case r == 'y':
			out = append(out, chord{key: key("KeyZ", s, 'Y')})
		case r == 'Z':
			out = append(out, shifted(key("KeyY", s, 'Z')))
		case r >= 'a' && r <= 'z':
			out = append(out, chord{key: key("Key"+strings.ToUpper(s), s, int64(r-'a'+'A'))})
		case r >= 'A' && r <= 'Z':
			out = append(out, shifted(key("Key"+s, s, int64(r))))
		case r == ' ':
			out = append(out, chord{key: key("Space", " ", 32)})
		case r == ',':
			out = append(out, chord{key: key("Comma", ",", 188)})
		case r == '!':
			out = append(out, shifted(key("Digit1", "!", '1')))
		case r == '/':
			out = append(out, shifted(key("Digit7", "/", '7')))
		case r == 'ü':
			out = append(out, chord{key: key("BracketLeft", s, 186)})
		case r == 'ö':
			out = append(out, chord{key: key("Semicolon", s, 192)})
		case r == 'ä':
			out = append(out, chord{key: key("Quote", s, 222)})
		case r == 'Ü':
			out = append(out, shifted(key("BracketLeft", s, 186)))
		case r == 'ß':
			out = append(out, chord{key: key("Minus", s, 219)})
		case r == '@':
			out = append(out, chord{hold: []browser.Key{altGr}, key: key("KeyQ", s, 'Q')})
		case r == '€':
			out = append(out, chord{hold: []browser.Key{altGr}, key: key("KeyE", s, 'E')})
		case r == 'ê':
			out = append(out, chord{key: deadCircumflex}, chord{key: key("KeyE", s, 'E')})
		case r == '^':
			// The dead key, then the space bar: the browser types "^" on the space's keydown.
			out = append(out, chord{key: deadCircumflex}, chord{key: key("Space", s, 32)})
		case r == '2':
			out = append(out, chord{key: key("Digit2", s, '2')})
		case r == 'à':
			// Shift+´ is the dead grave accent.
			grave := browser.Key{Code: "Equal", Key: "Dead", KeyCode: 221, Modifiers: browser.ModShift}
			out = append(out, chord{hold: []browser.Key{shiftL}, key: grave}, chord{key: key("KeyA", s, 'A')})
		default:
			t.Fatalf("deKeys: no German key for %q", r)
		}
	}
	return out
}

// TestTypingHeldKey: a key held down (its release comes 1.5 s after its press, longer than
// X's autorepeat delay, as on a slow link or a busy node) arrives once; a key the browser
// repeats while it is held arrives as often as the browser repeated it.
func TestTypingHeldKey(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	s, b, _, _ := inputSession(t, "9805", nil, "", "en-US", true, true)
	x := usKeys(t, "x")[0].key
	testutil.Must(t, b.Down(x), "x down")
	time.Sleep(1500 * time.Millisecond) // the release arrives late: a slow link, a busy node
	testutil.Must(t, b.Up(x), "x up")
	if got := settled(t, s, b, "x"); got != "x" {
		t.Errorf("one x held down for 1.5 s: Firefox's field holds %q, want %q", got, "x")
	}
	y := usKeys(t, "y")[0].key
	testutil.Must(t, b.Down(y), "y down")
	y.Repeat = true
	for i := 0; i < 4; i++ {
		testutil.Must(t, b.Down(y), "y repeated")
	}
	testutil.Must(t, b.Up(y), "y up")
	if got := settled(t, s, b, "x.yyyyy"); got != "x.yyyyy" {
		t.Errorf("y held while the browser repeated it 4 times: Firefox's field holds %q, want %q", got, "x.yyyyy")
	}
}

// TestTypingGerman: on a German keyboard (the browser's language de-DE), what the user types
// arrives in Firefox's field exactly: z/y where the keyboard has them, umlauts and ß on their
// own keys, AltGr+Q = @, AltGr+E = €, the dead key ^ then e = ê.
func TestTypingGerman(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	for _, tc := range []struct {
		name, job, lang string
		cfg             map[string]string
	}{
		{"the browser's language", "9802", "de-DE", nil},
		{"keyboard_layout = de, an English browser", "9806", "en-US", map[string]string{"keyboard_layout": `"de"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, b, _, _ := inputSession(t, tc.job, tc.cfg, "", tc.lang, true, true)
			want := "Grüße aus Zürich, yz! @ € ê / Übermaß ^2 à"
			typeKeys(t, b, deKeys(t, want))
			if got := settled(t, s, b, want); got != want {
				t.Errorf("typed %q on a German keyboard, Firefox's field holds %q", want, got)
			}
		})
	}
}

// ctrl is Ctrl+<letter> as a keyboard sends it (the browser types nothing for it).
func ctrl(letter string) chord {
	return chord{hold: []browser.Key{ctrlL}, key: browser.Key{Code: "Key" + strings.ToUpper(letter), Key: letter, KeyCode: int64(strings.ToUpper(letter)[0]), Modifiers: browser.ModCtrl}}
}

// clipText is what the clipboard tests copy: Latin-1, CJK and a dash outside Latin-1.
const clipText = "Grüße, 東京 – ok"

// TestClipboardIntoFirefox: text copied on the user's machine (on chromium's clipboard) pastes
// into Firefox's field with Ctrl+V, exactly: when the user allowed the session's page to read
// the clipboard, and when they blocked it (the paste itself carries the text).
func TestClipboardIntoFirefox(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	for _, tc := range []struct {
		name string
		job  string
		read bool
	}{
		{"reading allowed", "9803", true},
		{"reading blocked", "9807", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, b, _, _ := inputSession(t, tc.job, nil, "", "en-US", false, tc.read)
			testutil.Must(t, b.CopyElsewhere(s.url+"/form", clipText), "copy on the user's machine")
			if _, err := b.ReadClipboard(); (err == nil) != tc.read {
				t.Fatalf("reading the clipboard allowed=%v, but the page's readText() gave error %v", tc.read, err)
			}
			clickFirefox(t, b)
			typeKeys(t, b, []chord{ctrl("v")})
			if got := settled(t, s, b, clipText); got != clipText {
				t.Errorf("copied %q on the user's machine, Ctrl+V in Firefox's field gave %q", clipText, got)
			}
		})
	}
}

// TestClipboardFromFirefox: text selected in Firefox's field and copied with Ctrl+C is on the
// user's clipboard (chromium's, read with the Clipboard API), exactly.
func TestClipboardFromFirefox(t *testing.T) {
	require(t, "xpra", "firefox-esr", "chromium")
	s, b, e, info := inputSession(t, "9804", nil, "?text="+url.QueryEscape(clipText), "en-US", false, true)
	if got := s.waitField(clipText); got != clipText {
		t.Fatalf("Firefox's field holds %q, want %q (the page's own text)", got, clipText)
	}
	testutil.Must(t, b.WriteClipboard("before"), "clipboard")
	clickFirefox(t, b)
	// A user's Ctrl+C comes a moment after their click, not within milliseconds: the HTML5
	// client reads the browser's clipboard at the click (asynchronously) and sends it to xpra,
	// which claims the X clipboard with it. A copy in Firefox made before that read arrives is
	// overwritten by it (xpra 3.1's client; seen with --debug=clipboard: the client's "before"
	// came 10 ms after Firefox's claim). Wait until xpra holds the browser's text.
	d := sessionDisplay(t, e, info)
	defer d.Close()
	if !testutil.Eventually(10*time.Second, func() bool {
		owned, err := d.SelectionOwnedBy("CLIPBOARD", "Xpra-Clipboard")
		return err == nil && owned
	}) {
		t.Fatal("xpra never claimed the X clipboard with the browser's text after the click")
	}
	typeKeys(t, b, []chord{ctrl("a"), ctrl("c")})
	got := ""
	testutil.Eventually(20*time.Second, func() bool { got, _ = b.ReadClipboard(); return got == clipText })
	if got != clipText {
		t.Errorf("copied %q in Firefox, the user's clipboard holds %q", clipText, got)
	}
}
