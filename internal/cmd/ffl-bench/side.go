package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/x11"
)

// sideResult is one run of a configuration of the side-by-side figures: exec -> the page
// painted where its user looks, and the PSS of every process of the run once it idled.
type sideResult struct {
	painted time.Duration
	pss     int64
	byComm  string
}

// markedPSS sums the PSS of the bench user's processes whose FFL_SESSION starts with prefix,
// and says it by process name (largest first).
func (b *bench) markedPSS(prefix string) (int64, string) {
	var total int64
	byComm := map[string]int64{}
	for _, id := range b.marked(prefix) {
		kb, err := smapsKB(id.PID, "Pss")
		if err != nil {
			continue
		}
		st, _ := proc.ReadStat(id.PID)
		total += kb
		byComm[st.Comm] += kb
	}
	return total, largestFirst(byComm, mib)
}

// benchPage writes the page of one colour Firefox opens in the real-session figures.
func (b *bench) benchPage() (string, error) {
	page := filepath.Join(b.user.home, "bench-page.html")
	body := fmt.Sprintf("<!DOCTYPE html><html><head><title>ffl bench</title></head><body style=\"background:#%06x;margin:0\"></body></html>\n", benchColor)
	if err := os.WriteFile(page, []byte(body), 0o644); err != nil {
		return "", err
	}
	return page, os.Chown(page, b.user.uid, b.user.gid)
}

// scratchHome makes a fresh directory of the bench user under its home (a HOME, a profile).
func (b *bench) scratchHome(name string) (string, error) {
	d, err := os.MkdirTemp(b.user.home, name)
	if err != nil {
		return "", err
	}
	return d, os.Chown(d, b.user.uid, b.user.gid)
}

// freeDisplay returns an X display number in 600-899 with no socket and no lock in /tmp,
// starting the search at a random one; an error when all are taken.
func freeDisplay() (int, error) {
	start := int(time.Now().UnixNano() % 300)
	for i := 0; i < 300; i++ {
		n := 600 + (start+i)%300
		if !exists(fmt.Sprintf("/tmp/.X11-unix/X%d", n)) && !exists(fmt.Sprintf("/tmp/.X%d-lock", n)) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("no free X display in :600-:899 (/tmp/.X11-unix)")
}

// floorRun is the floor of the time to painted: Firefox alone on an Xvfb display (no xpra, no
// HTML5 client, no launcher), on a fresh profile with Firefox's own defaults, from the exec of
// Xvfb until the page's colour is in Firefox's window on the X display.
func (b *bench) floorRun(marker string) (sideResult, error) {
	home, err := b.scratchHome("floor")
	if err != nil {
		return sideResult{}, err
	}
	defer os.RemoveAll(home)
	return b.floorRunIn(marker, home, false)
}

// floorFFLRun is the floor with ffl's settings: Firefox alone on Xvfb as in floorRun, on a
// fresh profile holding the user.js ffl writes into a session's profile (content_processes cp).
// Beside the floor it says what ffl's settings alone change in Firefox's start; beside ffl it
// says what xpra, the HTML5 client and their share of the CPUs add.
func (b *bench) floorFFLRun(marker string, cp int) (sideResult, error) {
	home, err := b.scratchHome("floorffl")
	if err != nil {
		return sideResult{}, err
	}
	defer os.RemoveAll(home)
	// The bench runs as root and home is the bench user's: the file goes in through the dir
	// opened without following a symlink, replacing (never following) whatever is there. Firefox
	// only reads it.
	d, err := safefs.OpenTrustedOwned(home, b.user.uid)
	if err != nil {
		return sideResult{}, err
	}
	err = safefs.ReplaceFile(d, "user.js", []byte(lifecycle.UserJS(cp, "", filepath.Join(home, "cache"))), 0o644)
	d.Close()
	if err != nil {
		return sideResult{}, err
	}
	return b.floorRunIn(marker, home, false)
}

// floorWarmRun is the floor for a returning user: Firefox alone on the profile an earlier
// Firefox alone on it left (its page painted, 3 s more, then quit), so that it starts with the
// startup caches that earlier one wrote, as ffl's persistent profile does (S-warm).
func (b *bench) floorWarmRun(marker string) (sideResult, error) {
	home, err := b.scratchHome("floorwarm")
	if err != nil {
		return sideResult{}, err
	}
	defer os.RemoveAll(home)
	if _, err := b.floorRunIn(marker+"prime/", home, true); err != nil {
		return sideResult{}, fmt.Errorf("the earlier start: %w", err)
	}
	return b.floorRunIn(marker, home, false)
}

// floorRunIn is one floor run with home as HOME and profile. prime ends Firefox 3 s after its
// page was painted, as a user who quits it (its start marker removed, as Firefox's own quit
// does: a TERM skips that quit), and measures no memory.
func (b *bench) floorRunIn(marker, home string, prime bool) (sideResult, error) {
	var r sideResult
	page, err := b.benchPage()
	if err != nil {
		return r, err
	}
	n, err := freeDisplay()
	if err != nil {
		return r, err
	}
	cookie := make([]byte, 16)
	_, _ = rand.Read(cookie)
	xauth := filepath.Join(home, "Xauthority")
	if out, err := exec.Command("xauth", "-f", xauth, "add", ":"+strconv.Itoa(n), ".", hex.EncodeToString(cookie)).CombinedOutput(); err != nil {
		return r, fmt.Errorf("xauth: %v: %s", err, out)
	}
	_ = os.Chown(xauth, b.user.uid, b.user.gid)
	env := b.userEnv("HOME="+home, "XAUTHORITY="+xauth, "DISPLAY=:"+strconv.Itoa(n), layout.MarkerVar+"="+marker, "MOZ_CRASHREPORTER_DISABLE=1")
	t0 := time.Now()
	xvfb := exec.Command("Xvfb", ":"+strconv.Itoa(n), "-screen", "0", "2560x1600x24", "-nolisten", "tcp", "-noreset", "-auth", xauth)
	xvfb.Env = env
	b.asUser(xvfb)
	if err := xvfb.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = xvfb.Process.Signal(unix.SIGTERM)
		_ = xvfb.Wait()
		b.killMarked(marker)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var d *x11.Display
	for d == nil {
		if d, err = x11.Dial(ctx, "", n, cookie); err != nil {
			if ctx.Err() != nil {
				return r, fmt.Errorf("Xvfb :%d never answered: %v", n, err)
			}
			d = nil
			time.Sleep(5 * time.Millisecond)
		}
	}
	defer d.Close()
	ff := exec.Command("firefox-esr", "--no-remote", "--new-instance", "--profile", home, "file://"+page)
	ff.Env = env
	b.asUser(ff)
	if err := ff.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = ff.Process.Signal(unix.SIGTERM)
		_ = ff.Wait()
	}()
	if err := b.waitColor(ctx, d); err != nil {
		return r, fmt.Errorf("floor: %w", err)
	}
	r.painted = time.Since(t0)
	if prime {
		time.Sleep(3 * time.Second)
		_ = ff.Process.Signal(unix.SIGTERM)
		_ = ff.Wait()
		if err := os.Remove(filepath.Join(home, lifecycle.StartupMarker)); err != nil && !os.IsNotExist(err) {
			return r, err
		}
		return r, nil
	}
	time.Sleep(time.Until(t0.Add(r.painted + 20*time.Second)))
	r.pss, r.byComm = b.markedPSS(marker)
	return r, nil
}

// waitColor waits until a mapped Firefox window shows the bench page's colour in its middle.
func (b *bench) waitColor(ctx context.Context, d *x11.Display) error {
	for ctx.Err() == nil {
		ws, _ := d.Windows(x11.IsFirefox)
		for _, w := range ws {
			if !w.Viewable || w.Width < 100 || w.Height < 100 {
				continue
			}
			if c, err := d.Pixel(w, w.Width/2, w.Height*2/3); err == nil && c == benchColor {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("Firefox's window never showed the page: %w", ctx.Err())
}

// peerRun is the peer configuration: xpra and Firefox with their own defaults, started the way
// jupyter-xprahtml5-proxy starts them (xpra start --bind-tcp --html=on --start-child firefox,
// foreground), Firefox on a fresh default profile, and a browser that polls the port (every
// 50 ms, as jupyter-server-proxy does before it lets the user's request through) and then loads
// the HTML5 client; exec of xpra -> the page painted in chromium's canvas.
func (b *bench) peerRun(marker string, br *browser.Browser) (sideResult, error) {
	var r sideResult
	page, err := b.benchPage()
	if err != nil {
		return r, err
	}
	home, err := b.scratchHome("peer")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(home)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n, err := freeDisplay()
	if err != nil {
		return r, err
	}
	logPath := filepath.Join(b.logs, "peer-"+strconv.Itoa(port)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return r, err
	}
	defer logf.Close()
	t0 := time.Now()
	x := exec.Command("xpra", "start", ":"+strconv.Itoa(n), "--bind-tcp=127.0.0.1:"+strconv.Itoa(port), "--html=on", "--daemon=no",
		"--exit-with-children=yes", "--start-child=firefox-esr --profile "+home+" file://"+page)
	x.Env = b.userEnv("HOME="+home, "XDG_RUNTIME_DIR="+home, layout.MarkerVar+"="+marker)
	x.Stdout, x.Stderr = logf, logf
	b.asUser(x)
	x.SysProcAttr.Setpgid = true
	if err := x.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = x.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = x.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = x.Process.Kill()
			<-done
		}
		b.killMarked(marker)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("peer xpra never listened on %d (log %s)", port, logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := br.See("http://127.0.0.1:" + strconv.Itoa(port) + "/"); err != nil {
		return r, fmt.Errorf("peer: %w (log %s)", err, logPath)
	}
	r.painted = time.Since(t0)
	time.Sleep(time.Until(t0.Add(r.painted + 20*time.Second)))
	r.pss, r.byComm = b.markedPSS(marker)
	return r, nil
}
