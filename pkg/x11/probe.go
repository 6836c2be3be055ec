// Package x11 looks into a session's own X display (the Xvfb xpra runs) the way a user would
// look at the screen: is Firefox's window there, is it mapped, and has it painted anything.
// ffl-launch reports a session ready only then, so a user who opens the URL at that moment
// sees Firefox, not an empty desktop that fills in later.
package x11

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/damage"
	"github.com/jezek/xgb/xproto"
)

func init() {
	// xgb logs to stderr when it finds no Xauthority entry of its own; ffl passes the cookie
	// itself (authConn), so that line would only mislead.
	xgb.Logger = log.New(io.Discard, "", 0)
}

// Display is a connection to one local X display.
type Display struct {
	x    *xgb.Conn
	conn net.Conn
	root xproto.Window
	stop func() bool
	// atoms caches the atoms asked for by name (atom).
	atoms map[string]xproto.Atom
	// changed, watched, damage and damageReady belong to Watch (watch.go): nil until then.
	changed     chan struct{}
	watched     map[xproto.Window]bool
	damage      damage.Damage
	damageReady bool
}

// Dial connects to display n through its socket in xdir/.X11-unix (xdir "" is /tmp, where
// Xvfb puts it) with the MIT-MAGIC-COOKIE-1 cookie. Every request of the connection fails once
// ctx is done: a stopped X server cannot hang the caller.
func Dial(ctx context.Context, xdir string, n int, cookie []byte) (*Display, error) {
	if xdir == "" {
		xdir = "/tmp"
	}
	if len(cookie) != 16 {
		return nil, fmt.Errorf("x11: cookie of %d bytes, want 16", len(cookie))
	}
	path := filepath.Join(xdir, ".X11-unix", "X"+strconv.Itoa(n))
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("x11: connect %s: %w", path, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	x, err := xgb.NewConnNet(&authConn{Conn: c, cookie: cookie})
	if err != nil {
		stop()
		c.Close()
		return nil, fmt.Errorf("x11: display :%d: %w", n, err)
	}
	setup := xproto.Setup(x)
	if setup == nil || len(setup.Roots) == 0 {
		stop()
		x.Close()
		return nil, fmt.Errorf("x11: display :%d: no screen", n)
	}
	return &Display{x: x, conn: c, root: setup.DefaultScreen(x).Root, stop: stop, atoms: map[string]xproto.Atom{}}, nil
}

// Close ends the connection.
func (d *Display) Close() {
	d.stop()
	d.x.Close()
}

// authConn puts ffl's cookie into the connection setup request xgb writes first (xgb would
// otherwise read $XAUTHORITY, process-wide state a supervisor of several sessions cannot set
// per display).
type authConn struct {
	net.Conn
	cookie []byte
	sent   bool
}

func (c *authConn) Write(b []byte) (int, error) {
	if c.sent {
		return c.Conn.Write(b)
	}
	c.sent = true
	if len(b) < 12 || b[0] != 'l' {
		return 0, errors.New("x11: unexpected connection setup")
	}
	pad := func(n int) int { return (n + 3) &^ 3 }
	req := make([]byte, 12+pad(len(CookieName))+pad(len(c.cookie)))
	copy(req, b[:6]) // byte order, protocol major and minor
	binary.LittleEndian.PutUint16(req[6:], uint16(len(CookieName)))
	binary.LittleEndian.PutUint16(req[8:], uint16(len(c.cookie)))
	copy(req[12:], CookieName)
	copy(req[12+pad(len(CookieName)):], c.cookie)
	if _, err := c.Conn.Write(req); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Window is a top-level client window as the probe sees it.
type Window struct {
	ID uint32
	// Class is WM_CLASS (instance and class, comma separated), Title _NET_WM_NAME or WM_NAME.
	Class, Title string
	// Mapped says the client mapped it; Viewable that it and every ancestor are mapped (only
	// then has it pixels to look at).
	Mapped, Viewable bool
	Width, Height    int
}

// maxWalk bounds the windows one Windows call looks at (xpra makes a dozen of its own).
const maxWalk = 512

// Windows returns the windows whose WM_CLASS satisfies match, down to three levels below the
// root (xpra reparents a client's window into a "corral" window of its own), level by level.
//
// Each level's requests go out together and their replies are read afterwards (xgb matches
// them by sequence number), so one call costs a handful of round trips, not one per window and
// property: the readiness probe calls it every 20 ms during Firefox's start, and each round
// trip is a wake-up of both this process and the X server (measured with perf: the walk, one
// request at a time, was most of the launcher's CPU during a start).
func (d *Display) Windows(match func(class string) bool) ([]Window, error) {
	var out []Window
	seen := 0
	level := []xproto.Window{d.root}
	for depth := 1; depth <= 3 && len(level) > 0; depth++ {
		trees := make([]xproto.QueryTreeCookie, len(level))
		for i, w := range level {
			trees[i] = xproto.QueryTree(d.x, w)
		}
		var next []xproto.Window
		for i, c := range trees {
			children, err := d.children(level[i], c)
			if err != nil {
				return out, err
			}
			for _, ch := range children {
				if seen++; seen > maxWalk {
					break
				}
				next = append(next, ch)
			}
		}
		classes := make([]xproto.GetPropertyCookie, len(next))
		for i, w := range next {
			classes[i] = xproto.GetProperty(d.x, false, w, xproto.AtomWmClass, xproto.AtomString, 0, 256)
		}
		for i, c := range classes {
			cls := propString(c)
			if match(cls) {
				if win, ok := d.describe(next[i], cls); ok {
					out = append(out, win)
				}
			}
		}
		d.watch(next)
		level = next
	}
	return out, nil
}

// children reads the reply of QueryTree(w). A window destroyed between its parent's listing
// and this query (Firefox and xpra create and destroy windows while a session starts) has none:
// BadWindow then means "gone meanwhile", not a broken display.
func (d *Display) children(w xproto.Window, c xproto.QueryTreeCookie) ([]xproto.Window, error) {
	tree, err := c.Reply()
	var gone xproto.WindowError
	switch {
	case err == nil:
		return tree.Children, nil
	case w != d.root && errors.As(err, &gone):
		return nil, nil
	default:
		return nil, fmt.Errorf("x11: query tree: %w", err)
	}
}

func (d *Display) describe(w xproto.Window, cls string) (Window, bool) {
	attrC := xproto.GetWindowAttributes(d.x, w)
	geoC := xproto.GetGeometry(d.x, xproto.Drawable(w))
	var netC, nameC xproto.GetPropertyCookie
	netName, utf8 := d.atom("_NET_WM_NAME"), d.atom("UTF8_STRING")
	hasNet := netName != xproto.AtomNone && utf8 != xproto.AtomNone
	if hasNet {
		netC = xproto.GetProperty(d.x, false, w, netName, utf8, 0, 256)
	}
	nameC = xproto.GetProperty(d.x, false, w, xproto.AtomWmName, xproto.AtomString, 0, 256)
	attr, aerr := attrC.Reply()
	geo, gerr := geoC.Reply()
	title := ""
	if hasNet {
		title = propString(netC)
	}
	if name := propString(nameC); title == "" {
		title = name
	}
	if aerr != nil || gerr != nil {
		return Window{}, false // gone meanwhile
	}
	return Window{
		ID: uint32(w), Class: cls, Title: title,
		Mapped:   attr.MapState != xproto.MapStateUnmapped,
		Viewable: attr.MapState == xproto.MapStateViewable,
		Width:    int(geo.Width), Height: int(geo.Height),
	}, true
}

// atom returns the atom named name if the server has it (AtomNone if not), asked once per
// connection.
func (d *Display) atom(name string) xproto.Atom {
	if a, ok := d.atoms[name]; ok {
		return a
	}
	r, err := xproto.InternAtom(d.x, true, uint16(len(name)), name).Reply()
	if err != nil {
		return xproto.AtomNone
	}
	if r.Atom != xproto.AtomNone {
		// An atom, once interned, exists until the server resets; AtomNone is asked again
		// (the name may be interned later, by Firefox).
		d.atoms[name] = r.Atom
	}
	return r.Atom
}

// propString is a text property's reply, NULs (WM_CLASS separates its two strings with them)
// turned into commas, at most 1 KiB; "" for an error or no property.
func propString(c xproto.GetPropertyCookie) string {
	r, err := c.Reply()
	if err != nil || r == nil {
		return ""
	}
	return strings.TrimRight(strings.ReplaceAll(string(r.Value), "\x00", ","), ",")
}

// ScreenSize is the size of the X screen (its root window), which xpra fits to its client's
// browser window.
func (d *Display) ScreenSize() (width, height int, err error) {
	geo, err := xproto.GetGeometry(d.x, xproto.Drawable(d.root)).Reply()
	if err != nil {
		return 0, 0, fmt.Errorf("x11: root geometry: %w", err)
	}
	return int(geo.Width), int(geo.Height), nil
}

// Colors samples rows of a viewable window (a 1-pixel band every height/rows pixels) and
// returns how many distinct colours they hold. A window nothing has drawn into is one colour
// (its background); Firefox's first paint (toolbar, tabs, page) gives dozens.
func (d *Display) Colors(w Window, rows int) (int, error) {
	if !w.Viewable {
		return 0, errors.New("x11: window is not viewable")
	}
	if rows < 1 {
		rows = 1
	}
	colors := map[uint32]bool{}
	for i := 0; i < rows; i++ {
		y := int16((w.Height * (2*i + 1)) / (2 * rows))
		img, err := xproto.GetImage(d.x, xproto.ImageFormatZPixmap, xproto.Drawable(w.ID), 0, y, uint16(w.Width), 1, 0xffffffff).Reply()
		if err != nil {
			return 0, fmt.Errorf("x11: get image: %w", err)
		}
		for j := 0; j+3 < len(img.Data); j += 4 {
			colors[binary.LittleEndian.Uint32(img.Data[j:])&0xffffff] = true
		}
	}
	return len(colors), nil
}

// Pixel returns the colour (0xRRGGBB) at x, y of a viewable window.
func (d *Display) Pixel(w Window, x, y int) (uint32, error) {
	img, err := xproto.GetImage(d.x, xproto.ImageFormatZPixmap, xproto.Drawable(w.ID), int16(x), int16(y), 1, 1, 0xffffffff).Reply()
	if err != nil {
		return 0, fmt.Errorf("x11: get image: %w", err)
	}
	if len(img.Data) < 4 {
		return 0, errors.New("x11: short image")
	}
	return binary.LittleEndian.Uint32(img.Data) & 0xffffff, nil
}

// IsFirefox matches Firefox's top-level windows by WM_CLASS ("Navigator,firefox-esr" for
// Debian's firefox-esr, "Navigator,firefox" for Mozilla's builds).
func IsFirefox(class string) bool {
	_, c, _ := strings.Cut(class, ",")
	return strings.HasPrefix(strings.ToLower(c), "firefox")
}
