package slurmtest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Scenario is one named step of a suite that runs its scenarios in order on one cluster (a
// restart costs seconds).
type Scenario struct {
	Name string
	Run  func(t *testing.T)
}

// Result is how one scenario went: whether it ran at all (an earlier t.FailNow of the parent
// stops the rest), whether it skipped itself (a mode this Slurm does not have), whether it
// passed, and how long it took.
type Result struct {
	Name             string
	Ran, Skipped, OK bool
	Took             time.Duration
}

// RunScenarios runs each scenario as a subtest of t, in order, and returns the table of their
// results and durations, closed by the line totalLabel with the time since t0: the suites log
// it, so a slow or failed run shows where its time went.
func RunScenarios(t *testing.T, scenarios []Scenario, totalLabel string, t0 time.Time) string {
	t.Helper()
	var results []Result
	for _, sc := range scenarios {
		start := time.Now()
		r := Result{Name: sc.Name}
		r.OK = t.Run(sc.Name, func(t *testing.T) {
			r.Ran = true
			// t.Skip ends the subtest with runtime.Goexit: only a deferred call sees it.
			defer func() { r.Skipped = t.Skipped() }()
			sc.Run(t)
		})
		r.Took = time.Since(start)
		results = append(results, r)
	}
	return ResultsTable(results, totalLabel, time.Since(t0))
}

// ResultsTable renders results as RunScenarios logs them: a header, a line a scenario (PASS,
// FAIL, "skipped" or "not run", seconds), and the total. A skipped scenario is never shown as
// passed: it checked nothing.
func ResultsTable(results []Result, totalLabel string, total time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %-7s %s\n", "scenario", "result", "duration")
	for _, r := range results {
		verdict := "PASS"
		switch {
		case !r.Ran:
			verdict = "not run"
		case !r.OK:
			verdict = "FAIL"
		case r.Skipped:
			verdict = "skipped"
		}
		fmt.Fprintf(&b, "%-36s %-7s %6.1fs\n", r.Name, verdict, r.Took.Seconds())
	}
	fmt.Fprintf(&b, "%-36s %-7s %6.1fs", totalLabel, "", total.Seconds())
	return b.String()
}
