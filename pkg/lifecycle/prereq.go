package lifecycle

import (
	"context"

	"github.com/ffl-hpc/ffl/pkg/prereq"
)

// CheckPrerequisites fails early, naming the Debian package, when xpra or Firefox is missing (a
// missing Firefox would otherwise leave xpra running with no window: FACTS.md), and, through
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
