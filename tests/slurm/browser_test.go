package slurm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// pageColor is the one distinctive colour of the page the scenarios that look at a session
// start Firefox on.
const pageColor = 0x3a9d23

// colorPage writes that page into the user's working dir and returns its file:// URL.
func (c *Cluster) colorPage(t *testing.T, u User) string {
	t.Helper()
	p := filepath.Join(c.work[u.Name], "ffl-test-page.html")
	body := fmt.Sprintf("<!DOCTYPE html><html><head><title>ffl test page</title></head><body style=\"background:#%06x;margin:0\"></body></html>\n", pageColor)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	return "file://" + p
}

// seeFirefox opens the session's HTML5 client in a real chromium running as the user (the
// session admits nobody else) and waits until Firefox's page is painted in it.
func (c *Cluster) seeFirefox(t *testing.T, u User, info lifecycle.Info) {
	t.Helper()
	if why := os.Getenv(envNoHTML5); why != "" {
		t.Logf("job %s: the HTML5 client is not looked at in a browser on this node: %s", info.Job, why)
		return
	}
	profile := filepath.Join(c.work[u.Name], ".chromium-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(profile, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	art := filepath.Join(c.root, "tests", "artifacts")
	_ = os.MkdirAll(art, 0o755)
	shot := filepath.Join(art, "slurm-html5-client-firefox.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seen, err := browser.SeePage(ctx, info.URL, browser.Options{UID: u.UID, GID: u.GID, ProfileDir: profile, Color: pageColor, Shot: shot, Wait: 45 * time.Second})
	if err != nil {
		t.Fatalf("job %s: %v (screenshot %s)", info.Job, err, shot)
	}
	t.Logf("job %s: Firefox's page painted in the HTML5 client %v after chromium opened it (%d of %dx%d pixels; %s)",
		info.Job, seen.Painted.Round(time.Millisecond), seen.Pixels, seen.Width, seen.Height, shot)
}
