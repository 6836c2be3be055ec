// Command ffl-screenshot checks, for the demo, that a session shows Firefox's page to its user:
// it opens the session's HTML5 client in headless chromium, waits until the page colour COLOR
// (RRGGBB, the demo's start page) is painted in Firefox's window, and saves a screenshot:
//
//	ffl-screenshot URL OUT.png COLOR
//
// Run it as the session's user (the session admits nobody else). It prints how long the page
// took to appear, or one line saying what was seen instead, and exits 1.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: ffl-screenshot URL OUT.png COLOR (as the session's user)")
		os.Exit(2)
	}
	color, err := strconv.ParseUint(os.Args[3], 16, 32)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ffl-screenshot: COLOR %q: want RRGGBB\n", os.Args[3])
		os.Exit(2)
	}
	profile, err := os.MkdirTemp("", "ffl-screenshot")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ffl-screenshot:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	seen, err := browser.SeePage(ctx, os.Args[1], browser.Options{ProfileDir: profile, Color: uint32(color), Shot: os.Args[2], Wait: 60 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ffl-screenshot:", err)
		os.Exit(1)
	}
	fmt.Printf("Firefox's page painted in the HTML5 client %v after the browser opened it (%d of %dx%d pixels)\n",
		seen.Painted.Round(time.Millisecond), seen.Pixels, seen.Width, seen.Height)
}
