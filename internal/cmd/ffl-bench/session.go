package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// benchColor is the colour of the page Firefox opens in L6, which the browser looks for.
const benchColor = 0x3a9d23

// sessionFigures measures a real session (xpra + firefox-esr): its memory while idle (L5) and
// how long a user waits from the launcher's exec until the page is painted in a real browser
// (L6), split into xpra's own readiness, Firefox's own start and what comes after.
func (b *bench) sessionFigures() {
	reps := b.reps(3, 2)
	var pss []int64
	var parts []string
	b.progress("session PSS idle (real xpra + firefox-esr on about:blank), %d runs", reps)
	for i := 0; i < reps; i++ {
		total, by, err := b.idlePSSRun()
		if err != nil {
			b.rep.note("L5 run %d failed: %v", i, err)
			continue
		}
		pss = append(pss, total)
		parts = append(parts, by)
	}
	if len(pss) == 0 {
		b.rep.add(row{"L5", "Session PSS, idle (xpra + Xvfb + Firefox on about:blank)", "no successful run", "<= 350 MiB", resError})
	} else {
		med := medianInt(pss)
		b.rep.add(row{"L5", "Session PSS, idle 20 s after ready (xpra + Xvfb + Firefox on about:blank, every process with the session's marker)",
			fmt.Sprintf("median %s, max %s (n=%d)", mib(med), mib(maxInt(pss)), len(pss)), "<= 350 MiB", verdict(med <= 350*1024)})
		b.rep.note("L5 breakdown of the last run (PSS by process name): %s. PSS splits a shared library's pages among every process mapping it, so other Firefox sessions on the node lower it. Before the lean defaults (xpra's and Firefox's own defaults, 5760x2560 Xvfb with GLX) a session was about 600-670 MiB here (issue 7; 667 MiB measured on this machine with the prototype).", parts[len(parts)-1])
	}

	b.progress("exec -> Firefox's page painted in a real browser, %d runs", reps)
	var http, window, seen, total, loaded, shown samples
	for i := 0; i < reps; i++ {
		r, err := b.paintedRun()
		if err != nil {
			b.rep.note("L6 run %d failed: %v", i, err)
			continue
		}
		http, window, seen, total = append(http, r.http), append(window, r.window), append(seen, r.browser), append(total, r.total)
		loaded, shown = append(loaded, r.loaded), append(shown, r.shown)
	}
	if len(total) == 0 {
		b.rep.add(row{"L6", "exec -> Firefox's page painted in a real browser", "no successful run", "", resError})
		return
	}
	b.rep.add(row{"L6a", "xpra's own readiness (exec of xpra -> HTML5 page served: http_ms)", http.summary(), "reference", resInfo})
	b.rep.add(row{"L6b", "Firefox's own start (http_ms -> Firefox's window mapped and painted: window_ms - http_ms)", diff(window, http).summary(), "reference", resInfo})
	b.rep.add(row{"L6c", "Session ready -> the page painted in the HTML5 client of a running chromium (JSON line -> canvas shows the page)", seen.summary(), "<= 1 s", verdict(seen.median() <= time.Second)})
	b.rep.add(row{"L6", "ffl-launch exec -> Firefox's page painted in a real browser", total.summary(), "information (L6a + L6b + L6c + the launcher's own start)", resInfo})
	b.rep.note("L6c in parts (medians, from chromium's navigation): the HTML5 client's page loaded after %s, the first window canvas existed after %s, the page's colour covered it after %s; load average %s.",
		ms(loaded.median()), ms(shown.median()), ms(seen.median()), loadavg())
	b.rep.note("L6: `ffl-launch run --sessions 1 --json --url file://<page of one colour>` as the bench user with the real xpra and firefox-esr; chromium (headless, as the bench user: the session admits only its user) is started before the launcher and navigates to the session's URL the moment the JSON line is printed; the page counts as painted when a window canvas of the HTML5 client has >= 30%% of its pixels in the page's colour (polled every 20 ms).")
}

func diff(a, b samples) samples {
	var out samples
	for i := range a {
		if i < len(b) {
			out = append(out, a[i]-b[i])
		}
	}
	return out
}

// idlePSSRun starts one real session on about:blank, lets it idle, and sums the PSS of every
// process carrying its marker.
func (b *bench) idlePSSRun() (int64, string, error) {
	l, err := b.startLauncher(b.cfgReal, 1)
	if err != nil {
		return 0, "", err
	}
	defer b.stopLauncher(l)
	got, err := l.await(1, 120*time.Second)
	if err != nil {
		return 0, "", err
	}
	time.Sleep(20 * time.Second)
	lay := b.layout(l.job)
	var total, uss int64
	byComm := map[string]int64{}
	for _, id := range b.marked(lay.Marker(got[0].Port)) {
		kb, err := smapsKB(id.PID, "Pss")
		if err != nil {
			continue
		}
		if u, err := smapsKB(id.PID, "Private_Clean", "Private_Dirty"); err == nil {
			uss += u
		}
		st, _ := proc.ReadStat(id.PID)
		total += kb
		byComm[st.Comm] += kb
	}
	if total == 0 {
		return 0, "", fmt.Errorf("no session process found")
	}
	names := make([]string, 0, len(byComm))
	for n := range byComm {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return byComm[names[i]] > byComm[names[j]] })
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %s", n, mib(byComm[n])))
	}
	return total, fmt.Sprintf("%s; USS (pages no other process shares, the least the session costs) %s", strings.Join(parts, ", "), mib(uss)), nil
}

// smapsKB reads fields of /proc/PID/smaps_rollup (kB), summed.
func smapsKB(pid int, fields ...string) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	var sum int64
	found := 0
	for _, line := range strings.Split(string(data), "\n") {
		for _, f := range fields {
			if v, ok := strings.CutPrefix(line, f+":"); ok {
				n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				if err == nil {
					sum += n
					found++
				}
			}
		}
	}
	if found != len(fields) {
		return 0, fmt.Errorf("pid %d: smaps_rollup lacks %v", pid, fields)
	}
	return sum, nil
}

type paintedResult struct {
	http, window, browser, total time.Duration
	loaded, shown                time.Duration
}

// paintedRun: chromium first, then the launcher; at the JSON line chromium opens the session.
func (b *bench) paintedRun() (paintedResult, error) {
	var r paintedResult
	page := filepath.Join(b.user.home, "bench-page.html")
	body := fmt.Sprintf("<!DOCTYPE html><html><head><title>ffl bench</title></head><body style=\"background:#%06x;margin:0\"></body></html>\n", benchColor)
	if err := os.WriteFile(page, []byte(body), 0o644); err != nil {
		return r, err
	}
	_ = os.Chown(page, b.user.uid, b.user.gid)
	profile, err := os.MkdirTemp(b.user.home, "chromium")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(profile)
	_ = os.Chown(profile, b.user.uid, b.user.gid)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	br, err := browser.Start(ctx, browser.Options{UID: b.user.uid, GID: b.user.gid, ProfileDir: profile, Color: benchColor, Wait: 30 * time.Second})
	if err != nil {
		return r, err
	}
	defer br.Close()
	l, err := b.startLauncher(b.cfgReal, 1, "--url", "file://"+page)
	if err != nil {
		return r, err
	}
	defer b.stopLauncher(l)
	got, err := l.await(1, 120*time.Second)
	if err != nil {
		return r, err
	}
	seen, err := br.See("http://127.0.0.1:" + strconv.Itoa(got[0].Port) + "/")
	if err != nil {
		return r, err
	}
	r.total = got[0].at.Sub(l.started) + seen.Painted
	r.browser, r.loaded, r.shown = seen.Painted, seen.Loaded, seen.Window
	_ = l.cmd.Process.Signal(unix.SIGTERM)
	<-l.exited
	httpMS, ok1 := l.logField("session ready", "http_ms")
	windowMS, ok2 := l.logField("session ready", "window_ms")
	if !ok1 || !ok2 {
		return r, fmt.Errorf("no http_ms/window_ms in the log: %s", l.logTail())
	}
	r.http = time.Duration(httpMS * float64(time.Millisecond))
	r.window = time.Duration(windowMS * float64(time.Millisecond))
	return r, nil
}
