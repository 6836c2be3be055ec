// Command ffl-screenshot takes a screenshot of a session's HTML5 client with headless chromium,
// for the demo: ffl-screenshot URL PASSWORD_FILE OUT.png. It prints the window's title.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: ffl-screenshot URL PASSWORD_FILE OUT.png")
		os.Exit(2)
	}
	pw, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "ffl-screenshot: password file: %v\n", err)
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
	url := strings.TrimSuffix(os.Args[1], "/") + "/?password=" + strings.TrimSpace(string(pw))
	title, err := browser.SeeWindow(ctx, url, os.Args[3], profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ffl-screenshot:", err)
		os.Exit(1)
	}
	fmt.Println(title)
}
