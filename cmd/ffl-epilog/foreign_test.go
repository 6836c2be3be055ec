package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// warnings returns the warning lines of a hook's log.
func warnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=warning") {
			out = append(out, l)
		}
	}
	return out
}

// promValue returns the value of one series of a metrics file ("" when absent).
func promValue(data, series string) string {
	for _, l := range strings.Split(data, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestAttackTempFlood: a user fills temp_dir with 100,000 empty ffl-<n> dirs and squats the
// victim's ffl-<uid>. The sweep says so in ONE counted line (not a line per entry), counts
// them as foreign and not as errors in the metrics (the cleanup-errors alert stays quiet),
// exits 0, leaves every planted dir alone, and still removes the victim's stale job.
func TestAttackTempFlood(t *testing.T) {
	const n = 100_000
	prom := filepath.Join(t.TempDir(), "ffl.prom")
	h := newHarness(t, "metrics_file = \""+prom+"\"")
	for i := 0; i < n; i++ {
		p := filepath.Join(h.temp, layout.UserTempName(200_000+i))
		testutil.Must(t, os.Mkdir(p, 0o755))
		testutil.Must(t, os.Lchown(p, h.other.uid, h.other.gid))
	}
	squat := h.layout(h.user, "540").FallbackRuntimeParent()
	testutil.MkdirAs(t, squat, h.other, 0o777)
	// The victim's stale job (its supervisor long gone), made old enough for the sweep.
	local, home := h.session(h.user, "540", 8001, false, nil, "")
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range []string{local, home, filepath.Dir(local), filepath.Dir(home)} {
		_ = filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
			if err == nil {
				_ = os.Chtimes(q, old, old)
			}
			return nil
		})
	}
	r := h.run([]string{"PATH=/usr/bin:/bin"}, "sweep", "--node", h.node, "--older-than", "24h")
	if r.code != 0 || !strings.Contains(r.log, "sweep done") {
		t.Fatalf("sweep: exit %d, summary %v", r.code, strings.Contains(r.log, "sweep done"))
	}
	warn := warnings(r.log)
	if len(warn) > 3 {
		t.Errorf("the sweep wrote %d warning lines for a user's plants; first: %q", len(warn), warn[0])
	}
	foreign := 0
	for _, l := range warn {
		if strings.Contains(l, "entries of other users left alone") {
			foreign++
			if !strings.Contains(l, strconv.Itoa(n+1)+" entries") {
				t.Errorf("the foreign line does not count %d entries: %q", n+1, l)
			}
		}
	}
	if foreign != 1 {
		t.Errorf("%d lines report the foreign entries, want exactly one", foreign)
	}
	if !strings.Contains(r.log, "errors=0") || !strings.Contains(r.log, "foreign="+strconv.Itoa(n+1)) {
		t.Errorf("sweep summary does not say errors=0 foreign=%d", n+1)
	}
	data := string(testutil.MustRead(t, prom))
	if v := promValue(data, `ffl_errors_total{hook="sweep"}`); v != "0" {
		t.Errorf("ffl_errors_total{hook=\"sweep\"} = %q, want 0", v)
	}
	if v := promValue(data, `ffl_foreign_total{hook="sweep"}`); v != strconv.Itoa(n+1) {
		t.Errorf("ffl_foreign_total{hook=\"sweep\"} = %q, want %d", v, n+1)
	}
	if testutil.Exists(local) || testutil.Exists(home) {
		t.Errorf("the victim's stale job was not swept: %s %s", local, home)
	}
	for _, p := range []string{squat, filepath.Join(h.temp, layout.UserTempName(200_000)), filepath.Join(h.temp, layout.UserTempName(200_000+n-1))} {
		if !testutil.Exists(p) {
			t.Errorf("planted %s was removed", p)
		}
	}
}

// TestAttackSquatKeepsFastPath: another user squats the victim's <temp>/ffl-<uid> (no
// Prolog). The Epilog of each of the victim's jobs that never used ffl stays on its fast path
// with errors=0, says the squat in one counted line, leaves it alone; a job of the victim that
// did use ffl (in a private parent) is still found and cleaned.
func TestAttackSquatKeepsFastPath(t *testing.T) {
	prom := filepath.Join(t.TempDir(), "ffl.prom")
	h := newHarness(t, "metrics_file = \""+prom+"\"")
	squat := h.layout(h.user, jobA).FallbackRuntimeParent()
	testutil.MkdirAs(t, squat, h.other, 0o777)
	testutil.WriteAs(t, filepath.Join(squat, "plant"), h.other, []byte("mine"))
	for _, job := range []string{"550", "551"} {
		r := h.epilog(job, h.user)
		for _, want := range []string{"fast=true", "errors=0", "foreign=1"} {
			if !strings.Contains(r.log, want) {
				t.Errorf("job %s: the summary does not say %s", job, want)
			}
		}
		if w := warnings(r.log); len(w) != 1 || !strings.Contains(w[0], "1 entries of other users left alone") || !strings.Contains(w[0], squat) {
			t.Errorf("job %s: warning lines %q, want the one foreign line naming %s", job, w, squat)
		}
		testutil.Must(t, os.Truncate(h.logFile, 0))
	}
	if !testutil.Exists(filepath.Join(squat, "plant")) {
		t.Error("the squat was touched")
	}
	data := string(testutil.MustRead(t, prom))
	if v := promValue(data, `ffl_errors_total{hook="epilog"}`); v != "0" {
		t.Errorf("ffl_errors_total{hook=\"epilog\"} = %q, want 0", v)
	}
	// A job of the victim that ran ffl under the squat (a private parent) still leaves the fast
	// path and is cleaned.
	private := filepath.Join(h.temp, layout.PrivateTempName(h.user.uid, "0123456789abcdef"))
	testutil.MkdirAs(t, private, h.user, 0o700)
	procs := h.tree(h.user, h.layout(h.user, "552").Marker(8001))
	local, _ := h.sessionIn(h.user, "552", 8001, filepath.Join(private, layout.JobDirName("552")), procs, "")
	r := h.epilog("552", h.user)
	if !strings.Contains(r.log, "fast=false") || !strings.Contains(r.log, "sessions=1") {
		t.Errorf("job 552 (a session in a private parent) was not cleaned off the fast path")
	}
	testutil.WaitGone(t, procs)
	if testutil.Exists(local) {
		t.Errorf("%s left", local)
	}
}
