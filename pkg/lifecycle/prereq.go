package lifecycle

import (
	"context"
	"fmt"

	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// CheckPrerequisites fails early, naming the Debian package, when xpra or Firefox is missing (a
// missing Firefox would otherwise leave xpra running with no window: xpra 3.1 does not exit when
// its --start-child cannot be started), and, through
// draw (prereq.CheckDraw when nil), when xpra could start but not draw: a session that cannot
// show Firefox must never be reported ready.
func CheckPrerequisites(ctx context.Context, xpra, firefox, path string, draw func(ctx context.Context, xpraPath, path string) error) error {
	xp, err := prereq.Command(xpra, path, "xpra")
	if err != nil {
		return err
	}
	if _, err := prereq.Command(firefox, path, "firefox-esr"); err != nil {
		return err
	}
	if draw == nil {
		draw = prereq.CheckDraw
	}
	return draw(ctx, xp, path)
}

// xpraVersion asks the installed xpra its version (`xpra --version`, through execenv and, in the
// supervisor, its reaper). A version ffl cannot read is a prerequisite error: the command line
// and the control encoding depend on it.
func xpraVersion(ctx context.Context, reaper *proc.Reaper, bin, path string) (xpra.Version, error) {
	xp, err := prereq.Command(bin, path, "xpra")
	if err != nil {
		return xpra.Version{}, err
	}
	line, err := prereq.VersionWith(ctx, runner(reaper), xp)
	if err != nil {
		return xpra.Version{}, fmt.Errorf("%w: %v: reinstall xpra", ErrMissing, err)
	}
	v, err := xpra.ParseVersion(line)
	if err != nil {
		return xpra.Version{}, fmt.Errorf("%w: %s --version: %v: reinstall xpra", ErrMissing, xp, err)
	}
	return v, nil
}
