package x11

import (
	"fmt"

	"github.com/jezek/xgb/xproto"
)

// ReleaseSelections gives up each of the selections named in names (CLIPBOARD, PRIMARY, ...)
// whose owner is a window titled ownerTitle (its WM_NAME or WM_TITLE), and returns the names
// it released. A selection with no owner, or another window's, is left alone.
//
// The launcher uses it to give up xpra's empty clipboard claim before Firefox's start waits
// for it: why, with the figures, at lifecycle's releaseClaim and in docs/DESIGN.md.
func (d *Display) ReleaseSelections(ownerTitle string, names ...string) ([]string, error) {
	var released []string
	for _, name := range names {
		owned, err := d.SelectionOwnedBy(name, ownerTitle)
		if err != nil {
			return released, err
		}
		if !owned {
			continue
		}
		// At CurrentTime, which X never refuses: a claim made between the look above and this
		// release would be undone too. ffl releases before the front lets any client through and
		// within Firefox's first second, before it can have anything of its own to claim.
		if err := xproto.SetSelectionOwnerChecked(d.x, xproto.WindowNone, d.atom(name), xproto.TimeCurrentTime).Check(); err != nil {
			return released, fmt.Errorf("x11: release %s: %w", name, err)
		}
		released = append(released, name)
	}
	return released, nil
}

// SelectionOwnedBy says whether the selection name (CLIPBOARD, PRIMARY, ...) is owned by a
// window titled ownerTitle (its WM_NAME or WM_TITLE). The browser tests use it to see that
// xpra holds what the HTML5 client sent of the browser's clipboard.
func (d *Display) SelectionOwnedBy(name, ownerTitle string) (bool, error) {
	sel := d.atom(name)
	if sel == xproto.AtomNone {
		return false, nil
	}
	r, err := xproto.GetSelectionOwner(d.x, sel).Reply()
	if err != nil {
		return false, fmt.Errorf("x11: owner of %s: %w", name, err)
	}
	return r.Owner != xproto.WindowNone && d.titled(r.Owner, ownerTitle), nil
}

// titled says whether window w's WM_NAME or WM_TITLE (xpra 6 names its clipboard window with
// the latter) is title.
func (d *Display) titled(w xproto.Window, title string) bool {
	nameC := xproto.GetProperty(d.x, false, w, xproto.AtomWmName, xproto.AtomString, 0, 256)
	var titleC xproto.GetPropertyCookie
	wmTitle := d.atom("WM_TITLE")
	if wmTitle != xproto.AtomNone {
		titleC = xproto.GetProperty(d.x, false, w, wmTitle, xproto.AtomString, 0, 256)
	}
	name, wmTitleValue := propString(nameC), ""
	if wmTitle != xproto.AtomNone {
		wmTitleValue = propString(titleC)
	}
	return name == title || wmTitleValue == title
}
