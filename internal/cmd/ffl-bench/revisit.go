package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/internal/browser"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// revisitWait is how long a session idles after it is ready before its first client comes, as a
// prestarted Jupyter session does (the job logs of issue 20 had it ready 6-12 s before the click).
const revisitWait = 5 * time.Second

// revisitVisits is how many clients each revisit run sends: the first, then later ones.
const revisitVisits = 3

// revisitDwell is how long each client stays on the painted page before the next one comes, as a
// user's does: long enough for what a client does after its first frames (ffl's client sends
// the browser's screen size once the draws pause, and xpra 3.1 then adds a RandR mode and waits
// 0.5 s), so a later client finds the session as a user's first visit left it.
const revisitDwell = 2 * time.Second

// revisitResult is one revisit run: each client's navigation -> the page painted (and its parts),
// and the lines of xpra's log about the screen.
type revisitResult struct {
	seen   []browser.Seen
	screen []string
}

// revisitFigures isolates item 1 of issue 20 from Jupyter: on a session that is ready and idle,
// the first client against later ones (each: chromium's navigation to the session's URL ->
// Firefox's page painted, overlay gone). The session idles revisitWait after ready before the
// first client, so Firefox's own start is out of it: what is left is what the first client
// costs xpra and Firefox and a later one does not.
func (b *bench) revisitFigures() {
	reps := b.reps(3, 2)
	br, closeBr, err := b.startBrowser(false)
	if err != nil {
		b.rep.add(row{"R", "first client of a ready session against later ones", "chromium: " + err.Error(), "", resError})
		return
	}
	defer closeBr()
	b.progress("revisit: a ready session's first client against later ones, %d runs", reps)
	var first, later samples
	var parts []string
	var screen []string
	for i := 0; i < reps; i++ {
		r, err := b.revisitRun(br)
		if err != nil {
			b.rep.note("R run %d failed: %v", i, err)
			continue
		}
		first = append(first, r.seen[0].Painted)
		for _, s := range r.seen[1:] {
			later = append(later, s.Painted)
		}
		parts = parts[:0]
		for k, s := range r.seen {
			parts = append(parts, fmt.Sprintf("client %d: loaded %s, hello %s, first canvas %s, painted %s (canvas %dx%d)", k+1, ms(s.Loaded), ms(s.FirstFrame), ms(s.Window), ms(s.Painted), s.Width, s.Height))
		}
		screen = r.screen
	}
	if len(first) == 0 {
		b.rep.add(row{"R", "first client of a ready session against later ones", "no successful run", "", resError})
		return
	}
	b.rep.add(row{"R1", "A ready session's first client: navigation -> Firefox's page painted in chromium (session idle 5 s after ready)", first.summary(), "reference", resInfo})
	b.rep.add(row{"R2", "The same session's later clients (tab reloaded): navigation -> painted", later.summary(), "reference", resInfo})
	x := ratio(first.median(), later.median())
	b.rep.add(row{"R-x", "first / later client of a ready session (medians of this run; what is left of J1/J2 once Firefox's start is out)", fmt.Sprintf("%.2fx", x), "<= 1.3x", verdict(x <= 1.3)})
	b.rep.note("R (last run, from each navigation): %s; xpra's screen log lines: %s; load average %s.", strings.Join(parts, "; "), strings.Join(screen, " | "), loadavg())
}

// revisitRun starts one session on the bench page, waits until it is ready and revisitWait
// more, then sends revisitVisits clients one after the other (br navigates to the session's URL
// and waits for the painted page each time).
func (b *bench) revisitRun(br *browser.Browser) (revisitResult, error) {
	var r revisitResult
	page, err := b.benchPage()
	if err != nil {
		return r, err
	}
	if _, err := br.Eval("location.href = 'about:blank'; 'ok'"); err != nil {
		return r, err
	}
	l, err := b.startLauncher(b.cfgReal, 1, "--url", "file://"+page)
	if err != nil {
		return r, err
	}
	defer b.stopLauncher(l)
	got, err := l.await(1, 120*time.Second)
	if err != nil {
		return r, err
	}
	time.Sleep(revisitWait)
	url := "http://127.0.0.1:" + strconv.Itoa(got[0].Port) + "/"
	for k := 0; k < revisitVisits; k++ {
		if _, err := br.Eval("location.href = 'about:blank'; 'ok'"); err != nil {
			return r, err
		}
		time.Sleep(500 * time.Millisecond)
		s, err := br.See(url)
		if err != nil {
			return r, fmt.Errorf("client %d: %w", k+1, err)
		}
		r.seen = append(r.seen, s)
		time.Sleep(revisitDwell)
	}
	if _, err := br.Eval("location.href = 'about:blank'; 'ok'"); err != nil {
		return r, err
	}
	lay := b.layout(l.job)
	for _, d := range lay.RuntimeJobDirs() {
		data, _ := os.ReadFile(filepath.Join(d, layout.SessionDirName(got[0].Port), "xpra.log"))
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "virtual display") || strings.Contains(line, "resolution") || strings.Contains(line, "DPI") || strings.Contains(line, "New connection") || strings.Contains(line, "client display size") {
				r.screen = append(r.screen, strings.TrimSpace(line))
			}
		}
	}
	return r, nil
}
