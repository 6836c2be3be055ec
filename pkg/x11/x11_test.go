package x11

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jezek/xgb/xproto"
)

func xauthEntry(family uint16, addr, display, name string, data []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, family)
	for _, f := range [][]byte{[]byte(addr), []byte(display), []byte(name), data} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

func TestCookie(t *testing.T) {
	cookie := []byte("0123456789abcdef")
	file := append(xauthEntry(familyLocal, "host", "7", CookieName, []byte("wrongwrongwrong!")),
		xauthEntry(familyLocal, "host", "12", "XDM-AUTHORIZATION-1", cookie)...)
	file = append(file, xauthEntry(familyLocal, "host", "12", CookieName, cookie)...)
	path := filepath.Join(t.TempDir(), "Xauthority")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Cookie(path, 12)
	if err != nil || string(got) != string(cookie) {
		t.Errorf("Cookie(12) = %q, %v", got, err)
	}
	if _, err := Cookie(path, 3); err == nil {
		t.Error("Cookie of a display without an entry succeeded")
	}
	for _, bad := range [][]byte{{0x01}, {0x01, 0x00, 0x00}, {0x01, 0x00, 0x00, 0x05, 'a'}} {
		if _, err := ParseXauthority(bad); err == nil {
			t.Errorf("ParseXauthority(%q) succeeded", bad)
		}
	}
}

func FuzzParseXauthority(f *testing.F) {
	f.Add(xauthEntry(familyLocal, "h", "0", CookieName, []byte("0123456789abcdef")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := ParseXauthority(data)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range es {
			again = append(again, xauthEntry(e.Family, e.Address, e.Display, e.Name, e.Data)...)
		}
		if string(again) != string(data) {
			t.Fatalf("re-encoding %d entries gives different bytes", len(es))
		}
	})
}

func TestIsFirefox(t *testing.T) {
	for class, want := range map[string]bool{
		"Navigator,firefox-esr": true, "Navigator,firefox": true, "firefox-esr,Firefox-esr": true,
		"xpra,": false, "Navigator": false, "": false, "chromium,Chromium": false,
	} {
		if IsFirefox(class) != want {
			t.Errorf("IsFirefox(%q) = %v", class, !want)
		}
	}
}

// TestRealXvfb runs a real Xvfb with a cookie, draws a window that calls itself Firefox, and
// checks what the probe sees: not found while unmapped, found and one colour when mapped and
// blank, two colours once something is painted.
// startXvfb starts a real Xvfb (800x600) for the test and returns its display and cookie.
func startXvfb(t *testing.T) (int, []byte) {
	t.Helper()
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		if os.Getenv("FFL_E2E") == "1" {
			t.Fatal("FFL_E2E=1 but Xvfb is missing (make deps)")
		}
		t.Skip("Xvfb missing: make deps")
	}
	dir := t.TempDir()
	cookie := make([]byte, 16)
	_, _ = rand.Read(cookie)
	auth := filepath.Join(dir, "Xauthority")
	// Xvfb reads the cookie from -auth; the display number is not known yet, so a wildcard entry.
	if err := os.WriteFile(auth, xauthEntry(familyWild, "", "", CookieName, cookie), 0o600); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xvfb, "-displayfd", "3", "-auth", auth, "-screen", "0", "800x600x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	n := -1
	// SIGTERM, so that Xvfb removes its socket in /tmp/.X11-unix as it exits (a SIGKILLed one
	// leaves it behind, and every run would add one); what a killed one left is removed after
	// it: the display was this test's. Not with xdisplay.Remove, ffl's own: it refuses root's
	// displays, and this test runs as root in CI.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
			return
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if n < 0 {
			return
		}
		for _, p := range []string{fmt.Sprintf("/tmp/.X11-unix/X%d", n), fmt.Sprintf("/tmp/.X%d-lock", n)} {
			if err := os.Remove(p); err == nil {
				t.Logf("removed %s, left by the test's killed Xvfb", p)
			}
		}
	})
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("Xvfb told no display: %v", err)
	}
	n, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	return n, cookie
}

func TestRealXvfb(t *testing.T) {
	n, cookie := startXvfb(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Dial(ctx, "", n, make([]byte, 16)); err == nil {
		t.Error("a wrong cookie was accepted")
	}
	d, err := Dial(ctx, "", n, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if w, h, err := d.ScreenSize(); err != nil || w != 800 || h != 600 {
		t.Errorf("screen size %dx%d, %v; want Xvfb's 800x600", w, h, err)
	}
	x := d.x
	wid, _ := xproto.NewWindowId(x)
	screen := xproto.Setup(x).DefaultScreen(x)
	if err := xproto.CreateWindowChecked(x, screen.RootDepth, wid, screen.Root, 0, 0, 400, 300, 0,
		xproto.WindowClassInputOutput, screen.RootVisual, xproto.CwBackPixel, []uint32{0x000000}).Check(); err != nil {
		t.Fatal(err)
	}
	cls := "Navigator\x00firefox-esr\x00"
	xproto.ChangeProperty(x, xproto.PropModeReplace, wid, xproto.AtomWmClass, xproto.AtomString, 8, uint32(len(cls)), []byte(cls))
	xproto.ChangeProperty(x, xproto.PropModeReplace, wid, xproto.AtomWmName, xproto.AtomString, 8, 15, []byte("Mozilla Firefox"))
	ws, err := d.Windows(IsFirefox)
	if err != nil || len(ws) != 1 || ws[0].Mapped {
		t.Fatalf("unmapped window: %+v, %v", ws, err)
	}
	if err := xproto.MapWindowChecked(x, wid).Check(); err != nil {
		t.Fatal(err)
	}
	ws, err = d.Windows(IsFirefox)
	if err != nil || len(ws) != 1 || !ws[0].Viewable || ws[0].Title != "Mozilla Firefox" || ws[0].Width != 400 {
		t.Fatalf("mapped window: %+v, %v", ws, err)
	}
	if c, err := d.Colors(ws[0], 8); err != nil || c != 1 {
		t.Errorf("blank window: %d colours, %v; want 1", c, err)
	}
	gc, _ := xproto.NewGcontextId(x)
	xproto.CreateGC(x, gc, xproto.Drawable(wid), xproto.GcForeground, []uint32{0x3a9d23})
	if err := xproto.PolyFillRectangleChecked(x, xproto.Drawable(wid), gc, []xproto.Rectangle{{X: 0, Y: 0, Width: 200, Height: 300}}).Check(); err != nil {
		t.Fatal(err)
	}
	if c, err := d.Colors(ws[0], 8); err != nil || c != 2 {
		t.Errorf("painted window: %d colours, %v; want 2", c, err)
	}
	if px, err := d.Pixel(ws[0], 10, 10); err != nil || px != 0x3a9d23 {
		t.Errorf("pixel = %06x, %v", px, err)
	}
	// A window destroyed while Windows walks the tree (listed by its parent, gone when its own
	// children are asked for) is skipped, not an error that fails the session's start.
	gone, _ := xproto.NewWindowId(x)
	if err := xproto.CreateWindowChecked(x, screen.RootDepth, gone, screen.Root, 0, 0, 10, 10, 0,
		xproto.WindowClassInputOutput, screen.RootVisual, 0, nil).Check(); err != nil {
		t.Fatal(err)
	}
	if err := xproto.DestroyWindowChecked(x, gone).Check(); err != nil {
		t.Fatal(err)
	}
	if ch, err := d.children(gone, xproto.QueryTree(x, gone)); err != nil || len(ch) != 0 {
		t.Errorf("children of a destroyed window: %v, %v; want none, no error", ch, err)
	}
	if ch, err := d.children(screen.Root, xproto.QueryTree(x, screen.Root)); err != nil || len(ch) == 0 {
		t.Errorf("children of the root: %v, %v", ch, err)
	}

	// Levels: a Firefox window inside two windows of xpra's (depth 3) is found, with its
	// _NET_WM_NAME title; one a level deeper is not looked at.
	parent := screen.Root
	var nested []xproto.Window
	for i := 0; i < 4; i++ {
		id, _ := xproto.NewWindowId(x)
		if err := xproto.CreateWindowChecked(x, screen.RootDepth, id, parent, 0, 0, 300, 200, 0,
			xproto.WindowClassInputOutput, screen.RootVisual, 0, nil).Check(); err != nil {
			t.Fatal(err)
		}
		nested, parent = append(nested, id), id
	}
	utf8, name := d.atom("UTF8_STRING"), d.atom("_NET_WM_NAME")
	if utf8 == xproto.AtomNone || name == xproto.AtomNone {
		r1, _ := xproto.InternAtom(x, false, 11, "UTF8_STRING").Reply()
		r2, _ := xproto.InternAtom(x, false, 12, "_NET_WM_NAME").Reply()
		utf8, name = r1.Atom, r2.Atom
	}
	for i, id := range nested[2:] {
		title := []byte("deep " + strconv.Itoa(i+3))
		xproto.ChangeProperty(x, xproto.PropModeReplace, id, xproto.AtomWmClass, xproto.AtomString, 8, uint32(len(cls)), []byte(cls))
		xproto.ChangeProperty(x, xproto.PropModeReplace, id, name, utf8, 8, uint32(len(title)), title)
	}
	ws, err = d.Windows(IsFirefox)
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, w := range ws {
		titles = append(titles, w.Title)
	}
	if strings.Join(titles, "|") != "Mozilla Firefox|deep 3" {
		t.Errorf("windows found: %q; want the top-level one and the one at depth 3", titles)
	}
}

// TestReleaseSelections: on a real X server, the selections a window titled like xpra's
// clipboard window owns are released (the title as WM_NAME, as xpra 3.1 sets it, or WM_TITLE, as
// xpra 6 does), and one another window owns is kept.
func TestReleaseSelections(t *testing.T) {
	n, cookie := startXvfb(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The owners on one connection, the releasing display on another, as in a session (xpra and
	// the launcher are two clients).
	owners, err := Dial(ctx, "", n, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer owners.Close()
	d, err := Dial(ctx, "", n, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	x := owners.x
	screen := xproto.Setup(x).DefaultScreen(x)
	intern := func(name string) xproto.Atom {
		r, err := xproto.InternAtom(x, false, uint16(len(name)), name).Reply()
		if err != nil {
			t.Fatal(err)
		}
		return r.Atom
	}
	window := func(prop, title string) xproto.Window {
		wid, _ := xproto.NewWindowId(x)
		if err := xproto.CreateWindowChecked(x, 0, wid, screen.Root, 0, 0, 1, 1, 0,
			xproto.WindowClassInputOnly, 0, 0, nil).Check(); err != nil {
			t.Fatal(err)
		}
		if err := xproto.ChangePropertyChecked(x, xproto.PropModeReplace, wid, intern(prop), xproto.AtomString, 8, uint32(len(title)), []byte(title)).Check(); err != nil {
			t.Fatal(err)
		}
		return wid
	}
	own := func(w xproto.Window, name string) {
		if err := xproto.SetSelectionOwnerChecked(x, w, intern(name), xproto.TimeCurrentTime).Check(); err != nil {
			t.Fatal(err)
		}
	}
	owner := func(name string) xproto.Window {
		o, err := xproto.GetSelectionOwner(x, intern(name)).Reply()
		if err != nil {
			t.Fatal(err)
		}
		return o.Owner
	}
	xpra31 := window("WM_NAME", "Xpra-Clipboard")
	xpra6 := window("WM_TITLE", "Xpra-Clipboard")
	other := window("WM_NAME", "Mozilla Firefox")
	own(xpra31, "CLIPBOARD")
	own(xpra6, "PRIMARY")
	own(other, "SECONDARY")
	for name, want := range map[string]bool{"CLIPBOARD": true, "PRIMARY": true, "SECONDARY": false, "FFL_NEVER_INTERNED": false} {
		if got, err := d.SelectionOwnedBy(name, "Xpra-Clipboard"); err != nil || got != want {
			t.Errorf("SelectionOwnedBy(%s) before the release = %v, %v; want %v", name, got, err, want)
		}
	}

	got, err := d.ReleaseSelections("Xpra-Clipboard", "CLIPBOARD", "PRIMARY", "SECONDARY", "FFL_NEVER_INTERNED")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "CLIPBOARD,PRIMARY" {
		t.Errorf("released %v, want CLIPBOARD and PRIMARY", got)
	}
	for _, name := range []string{"CLIPBOARD", "PRIMARY"} {
		if o := owner(name); o != xproto.WindowNone {
			t.Errorf("%s is still owned by %#x", name, o)
		}
	}
	if owned, err := d.SelectionOwnedBy("CLIPBOARD", "Xpra-Clipboard"); err != nil || owned {
		t.Errorf("SelectionOwnedBy(CLIPBOARD) after the release = %v, %v; want false", owned, err)
	}
	if o := owner("SECONDARY"); o != other {
		t.Errorf("SECONDARY is owned by %#x, want the other window %#x: only the named owner's go", o, other)
	}
	// Nothing left to release: none again.
	if got, err := d.ReleaseSelections("Xpra-Clipboard", "CLIPBOARD", "PRIMARY"); err != nil || len(got) != 0 {
		t.Errorf("second release: %v, %v; want none", got, err)
	}
}

// TestWatch: on a real X server, a watching connection is told of what another client (as
// Firefox is) does to the windows it looks at, and of nothing while nothing happens: a window
// created, walked, renamed, mapped and drawn into; drawing is told once until Drawn.
func TestWatch(t *testing.T) {
	n, cookie := startXvfb(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, err := Dial(ctx, "", n, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ff, err := Dial(ctx, "", n, cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	if d.Changed() != nil {
		t.Fatal("Changed before Watch is not nil")
	}
	if err := d.WatchDrawing(Window{ID: uint32(d.root)}); err == nil {
		t.Error("WatchDrawing before Watch succeeded")
	}
	if err := d.Watch(); err != nil {
		t.Fatal(err)
	}
	told := func(what string) {
		t.Helper()
		select {
		case <-d.Changed():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not told", what)
		}
	}
	// quiet waits a little for a report that must not come (a bound for the test, not a speed).
	quiet := func(what string) {
		t.Helper()
		select {
		case <-d.Changed():
			t.Fatalf("%s: told of a change", what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	// settle takes a report that may still come of what happened before.
	settle := func() {
		select {
		case <-d.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	quiet("nothing happened")

	x := ff.x
	screen := xproto.Setup(x).DefaultScreen(x)
	wid, _ := xproto.NewWindowId(x)
	if err := xproto.CreateWindowChecked(x, screen.RootDepth, wid, screen.Root, 0, 0, 400, 300, 0,
		xproto.WindowClassInputOutput, screen.RootVisual, xproto.CwBackPixel, []uint32{0x000000}).Check(); err != nil {
		t.Fatal(err)
	}
	told("window created")
	quiet("after the creation")
	cls := "Navigator\x00firefox-esr\x00"
	if err := xproto.ChangePropertyChecked(x, xproto.PropModeReplace, wid, xproto.AtomWmClass, xproto.AtomString, 8, uint32(len(cls)), []byte(cls)).Check(); err != nil {
		t.Fatal(err)
	}
	quiet("a property of a window not walked yet")
	ws, err := d.Windows(IsFirefox)
	if err != nil || len(ws) != 1 {
		t.Fatalf("windows: %+v, %v", ws, err)
	}
	told("a window the walk saw first")
	quiet("after the walk")
	if _, err := d.Windows(IsFirefox); err != nil {
		t.Fatal(err)
	}
	quiet("a second walk of the same windows")
	if err := xproto.ChangePropertyChecked(x, xproto.PropModeReplace, wid, xproto.AtomWmName, xproto.AtomString, 8, 15, []byte("Mozilla Firefox")).Check(); err != nil {
		t.Fatal(err)
	}
	told("title set")
	if err := xproto.MapWindowChecked(x, wid).Check(); err != nil {
		t.Fatal(err)
	}
	told("window mapped")
	ws, err = d.Windows(IsFirefox)
	if err != nil || len(ws) != 1 || !ws[0].Viewable {
		t.Fatalf("mapped window: %+v, %v", ws, err)
	}
	if err := d.WatchDrawing(ws[0]); err != nil {
		t.Fatal(err)
	}
	told("drawing watched")
	// The map is reported twice (to the root's watch and to the window's own); the second
	// report may still be on its way.
	settle()
	d.Drawn()
	quiet("nothing drawn since Drawn")

	gc, _ := xproto.NewGcontextId(x)
	xproto.CreateGC(x, gc, xproto.Drawable(wid), xproto.GcForeground, []uint32{0x3a9d23})
	draw := func() {
		t.Helper()
		if err := xproto.PolyFillRectangleChecked(x, xproto.Drawable(wid), gc, []xproto.Rectangle{{X: 0, Y: 0, Width: 50, Height: 50}}).Check(); err != nil {
			t.Fatal(err)
		}
	}
	draw()
	told("drawn into")
	draw()
	quiet("drawn into again before Drawn")
	d.Drawn()
	draw()
	told("drawn into after Drawn")
	if c, err := d.Colors(ws[0], 8); err != nil || c != 2 {
		t.Errorf("painted window: %d colours, %v; want 2", c, err)
	}
}
