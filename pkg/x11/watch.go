package x11

import (
	"errors"
	"fmt"

	"github.com/jezek/xgb/damage"
	"github.com/jezek/xgb/xproto"
)

// watchMask is what a watched connection is told about each window Windows walks: its
// children created, mapped, reparented and destroyed (SubstructureNotify), its own map,
// reparent and size (StructureNotify) and its properties (WM_CLASS, the title). None of these
// masks is exclusive to one client (unlike SubstructureRedirect, xpra's as the window manager),
// so selecting them changes nothing for xpra or Firefox.
const watchMask = xproto.EventMaskSubstructureNotify | xproto.EventMaskStructureNotify | xproto.EventMaskPropertyChange

// Watch makes the connection tell the caller, through Changed, when what Windows and Colors
// report may have changed, so a caller waiting for Firefox's window need not ask again every
// few milliseconds. The readiness probe did: its walks of the window tree and looks at the
// pixels, 50 a second for the whole start, were most of the launcher's and much of the X
// server's CPU during a start, and grew with the start's length; on a node where eight
// sessions started at once they took a quarter of each start's CPU (docs/DESIGN.md, "Ready
// means visible").
//
// From Watch on, the root and every window a later Windows call walks are watched (watchMask),
// and WatchDrawing adds what is drawn into one window (the DAMAGE extension).
func (d *Display) Watch() error {
	if d.changed != nil {
		return nil
	}
	if err := xproto.ChangeWindowAttributesChecked(d.x, d.root, xproto.CwEventMask, []uint32{xproto.EventMaskSubstructureNotify}).Check(); err != nil {
		return fmt.Errorf("x11: watch the root window: %w", err)
	}
	d.changed = make(chan struct{}, 1)
	// The root keeps SubstructureNotify only: xpra changes the root's properties all along.
	d.watched = map[xproto.Window]bool{d.root: true}
	go d.pump(d.changed)
	return nil
}

// pump turns every event (and every error of a request sent without a reply, such as selecting
// events on a window that was destroyed meanwhile) into one pending wake-up on changed. It ends
// when the connection closes.
func (d *Display) pump(changed chan<- struct{}) {
	for {
		ev, err := d.x.WaitForEvent()
		if ev == nil && err == nil {
			return
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

// Changed receives after anything watched changed since the last receive (events are
// coalesced: one receive may stand for many). It is nil before Watch: a receive from it then
// blocks forever, so a caller selecting on it falls back to its own timer.
func (d *Display) Changed() <-chan struct{} { return d.changed }

// wake makes the next receive from Changed return at once: a window Windows started watching
// may have changed between the walk's look and the selection.
func (d *Display) wake() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// watch selects watchMask on the windows of one level of a walk that are not watched yet (one
// request each, once per window and connection).
func (d *Display) watch(ws []xproto.Window) {
	if d.changed == nil {
		return
	}
	added := false
	for _, w := range ws {
		if d.watched[w] {
			continue
		}
		d.watched[w] = true
		xproto.ChangeWindowAttributes(d.x, w, xproto.CwEventMask, []uint32{watchMask})
		added = true
	}
	if added {
		d.wake()
	}
}

// errNoDamage says the X server has no usable DAMAGE extension: a caller learns of drawing
// only by looking again.
var errNoDamage = errors.New("x11: no DAMAGE extension")

// WatchDrawing makes Changed receive when anything is drawn into w (the DAMAGE extension: one
// event once the window has undrawn-for damage, then none until Drawn is called). Only one
// window is watched this way at a time; a second call moves the watch.
func (d *Display) WatchDrawing(w Window) error {
	if d.changed == nil {
		return errors.New("x11: WatchDrawing before Watch")
	}
	if !d.damageReady {
		if err := damage.Init(d.x); err != nil {
			return fmt.Errorf("%w: %v", errNoDamage, err)
		}
		// The server refuses every other DAMAGE request of a client that has not told its
		// version first.
		if _, err := damage.QueryVersion(d.x, 1, 1).Reply(); err != nil {
			return fmt.Errorf("%w: version: %v", errNoDamage, err)
		}
		d.damageReady = true
	}
	if d.damage != 0 {
		damage.Destroy(d.x, d.damage)
		d.damage = 0
	}
	id, err := damage.NewDamageId(d.x)
	if err != nil {
		return fmt.Errorf("x11: damage id: %w", err)
	}
	if err := damage.CreateChecked(d.x, id, xproto.Drawable(w.ID), damage.ReportLevelNonEmpty).Check(); err != nil {
		return fmt.Errorf("x11: watch drawing into window %#x: %w", w.ID, err)
	}
	d.damage = id
	d.wake()
	return nil
}

// Drawn forgets what was drawn into the window WatchDrawing watches so far, so that the next
// drawing makes Changed receive again. A caller calls it before it looks at the pixels: what is
// drawn after the look is then never missed.
func (d *Display) Drawn() {
	if d.damage != 0 {
		damage.Subtract(d.x, d.damage, 0, 0)
	}
}
