package jupyter

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
)

// EnvBench names the file TestVisitBench writes its figures to (JSON, a list of visitFigure);
// without it the test skips. `make bench` (ffl-bench's jupyter section) sets it and prints the
// figures in its table. EnvBenchRounds is how many servers each setting spawns (default 1).
const (
	EnvBench       = "FFL_JUPYTER_BENCH"
	EnvBenchRounds = "FFL_JUPYTER_BENCH_ROUNDS"
	// benchVisits is how many visits each server gets: the first, then later ones.
	benchVisits = 4
	// visitDwell is how long each visit's tab stays on the painted page before it is closed, as
	// a user's does: long enough for what ffl's client does after its first frames (it sends the
	// browser's screen size once the draws pause; xpra 3.1 then adds a RandR mode and waits
	// 0.5 s), so a later visit finds the session as the user's first visit left it.
	visitDwell = 2 * time.Second
)

// visitFigure is one visit of the bench: the setting, which server and visit, the time from the
// click on JupyterLab's Firefox card to Firefox's painted page in the new tab, and the machine's
// load average then.
type visitFigure struct {
	Prestart string  `json:"prestart"` // jupyter_prestart: "false", "true" or "recent"
	Round    int     `json:"round"`
	Visit    int     `json:"visit"` // 1: the first visit of the server
	Seconds  float64 `json:"seconds"`
	Load     string  `json:"load"`
	At       string  `json:"at"` // the click, UTC, to compare with the job log's "session ready"
}

// TestVisitBench is a benchmark, not a test of speed (issue 20): the user's first visit to
// Firefox against later ones, with jupyter_prestart false, true and "recent" (the default) in
// the same run; "recent" comes last, when the earlier servers' visits are on record, so it
// measures the default for a user who opens Firefox from JupyterLab. Each round
// spawns ffluser1's server with the setting, clicks JupyterLab's Firefox card as soon as the
// spawn ends (as a user does), looks at Firefox for visitDwell, closes the tab, and clicks again; then stops the server and
// requires that it left nothing. It asserts what the user sees (the painted page) and writes the
// times to $FFL_JUPYTER_BENCH; it never asserts a time.
func TestVisitBench(t *testing.T) {
	out := os.Getenv(EnvBench)
	if out == "" {
		t.Skip("a benchmark: set " + EnvBench + "=FILE (make bench does) to run it")
	}
	rounds := 1
	if v := os.Getenv(EnvBenchRounds); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of rounds >= 1", EnvBenchRounds, v)
		}
		rounds = n
	}
	e := env(t)
	e.requireProxy(t)
	defer e.hub.dumpOnFailure(t)
	u := e.users["ffluser1"]
	t.Cleanup(func() {
		if err := e.writeUserConfig(u, e.portMin, e.portMax); err != nil {
			t.Error(err)
		}
	})
	var figs []visitFigure
	for round := 1; round <= rounds; round++ {
		for _, prestart := range []string{"false", "true", "recent"} {
			if err := e.writeBenchConfig(u, prestart); err != nil {
				t.Fatal(err)
			}
			s := e.newSession(t, u.Name)
			s.spawn(t)
			s.b.dwell = visitDwell
			for visit := 1; visit <= benchVisits; visit++ {
				d, st, err := s.b.LaunchFirefoxFromLab(s.color, visitLimit)
				if err != nil {
					t.Fatalf("jupyter_prestart=%s, round %d, visit %d: %v", prestart, round, visit, err)
				}
				f := visitFigure{Prestart: prestart, Round: round, Visit: visit, Seconds: d.Seconds(), Load: loadAverage(),
					At: time.Now().Add(-d).UTC().Format("15:04:05.000")}
				figs = append(figs, f)
				t.Logf("figure: jupyter_prestart=%s round %d visit %d: click at %s to painted %.2f s (%s; load %s)", prestart, round, visit, f.At, f.Seconds, st.Detail, f.Load)
			}
			// When the session was ready, against the clicks above.
			recentStarted := false
			for _, l := range strings.Split(string(testutil.MustRead(t, s.job.Log())), "\n") {
				if strings.Contains(l, "session ready") || strings.Contains(l, "Jupyter proxy port") || strings.Contains(l, "wrapped command started") {
					t.Logf("job %s: %s", s.job.ID, l)
				}
				recentStarted = recentStarted || strings.Contains(l, "within 14 days: starting the Jupyter proxy port's session")
			}
			if prestart == "recent" && !recentStarted {
				t.Errorf("jupyter_prestart = \"recent\" after this round's visits: job %s did not start the session with the server", s.job.ID)
			}
			if err := e.hub.StopServer(u.Name); err != nil {
				t.Fatal(err)
			}
			s.job.assertClean(t, nil)
			s.b.Close()
			if t.Failed() {
				return
			}
		}
	}
	data, err := json.MarshalIndent(figs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeBenchConfig writes u's FFL_CONFIG as the suite's (u's page, the whole port range), with
// jupyter_prestart set.
func (e *Env) writeBenchConfig(u User, prestart string) error {
	page := "file://" + filepath.Join(e.dir, "page-"+u.Name+".html")
	value := prestart
	if value != "true" && value != "false" {
		value = strconv.Quote(value)
	}
	extra := fmt.Sprintf("start_url = %q\njupyter_prestart = %s\n", page, value)
	cfg := slurmtest.FFLConfig(configTag, runtimeRoot, e.portMin, e.portMax, extra, e.epilogLog)
	return os.WriteFile(e.userConfig(u), []byte(cfg), 0o644)
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
