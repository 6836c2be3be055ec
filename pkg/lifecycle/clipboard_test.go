package lifecycle

import (
	"slices"
	"testing"

	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// TestXpraArgsClipboard: every session has the clipboard on both ways, whatever a site's
// xpra.conf says, and an admin's xpra_args come later, so that they can turn it off.
func TestXpraArgsClipboard(t *testing.T) {
	p := sessionPaths{Home: "/h/s", Runtime: "/r/s"}
	for _, v := range []xpra.Version{{Major: 3, Minor: 1, Micro: 3}, {Major: 6, Minor: 5, Micro: 5}} {
		args := xpraArgs(v, p, 3, "1920x1080", []string{"firefox-esr"}, []string{"--clipboard=no"})
		on, dir, off := slices.Index(args, "--clipboard=yes"), slices.Index(args, "--clipboard-direction=both"), slices.Index(args, "--clipboard=no")
		if on < 0 || dir < 0 {
			t.Errorf("xpra %v: no --clipboard=yes --clipboard-direction=both in %v", v, args)
		}
		if off < on {
			t.Errorf("xpra %v: the admin's --clipboard=no (at %d) must come after ffl's --clipboard=yes (at %d)", v, off, on)
		}
	}
}
