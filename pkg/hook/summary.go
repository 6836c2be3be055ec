package hook

import (
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/metrics"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

// Summary is what one hook run (an Epilog, a Prolog, a sweep) did, for its one summary line
// and its metrics.
type Summary struct {
	// Hook names the run: its line is "<hook> done".
	Hook metrics.Hook
	reclaim.Report
	// Jobs and JobsWithLeftovers are the run's job counts (metrics.Run).
	Jobs, JobsWithLeftovers int
	// Took is how long the run took.
	Took time.Duration
	// Fields are the run's own fields (job, user, uid, node, fast, swept, ...).
	Fields logrus.Fields
}

// Summarize logs s's one line, the line admins grep for ("epilog done", "prolog done", "sweep
// done"; a warning "..., with problems (see the lines above)" when there were any), and adds the
// run to epilog.metrics_file. It is the one summary of the three hooks and their watchdogs.
func (e *Env) Summarize(s Summary) {
	errs := len(s.Problems) + s.MoreProblems
	defer e.Record(metrics.Run{Hook: s.Hook, Jobs: s.Jobs, JobsWithLeftovers: s.JobsWithLeftovers, Sessions: s.Sessions,
		Termed: s.Termed, Killed: s.Killed, Left: s.Left, Refused: s.Refused, Dirs: s.Dirs, Files: s.Files,
		Bytes: s.Bytes, Errors: errs, Foreign: s.Foreign, Duration: s.Took, TimedOut: len(s.Unfinished) > 0})
	unfinished := "none"
	if len(s.Unfinished) > 0 {
		unfinished = strings.Join(s.Unfinished, ",")
	}
	fields := logrus.Fields{
		"sessions": s.Sessions, "termed": s.Termed, "killed": s.Killed, "left": s.Left, "refused": s.Refused,
		"dirs": s.Dirs, "files": s.Files, "bytes": s.Bytes, "foreign": s.Foreign, "unfinished": unfinished,
		"duration_ms": s.Took.Round(time.Millisecond).Milliseconds(), "errors": errs,
	}
	for k, v := range s.Fields {
		fields[k] = v
	}
	entry := e.Log.WithFields(fields)
	if errs > 0 {
		entry.Warn(string(s.Hook) + " done, with problems (see the lines above)")
		return
	}
	entry.Info(string(s.Hook) + " done")
}

// Watchdog is the summary a run's watchdog writes when the run is stuck in step phase: the
// steps from phase on (of phases) unfinished, and one problem saying why.
func (e *Env) Watchdog(s Summary, phases []string, phase string) {
	line := "watchdog: the run did not end by its timeout plus " + WatchdogMargin.String()
	e.Log.Warn(line)
	s.Report = reclaim.Report{Unfinished: unfinishedFrom(phases, phase), Problems: []string{line}}
	e.Summarize(s)
}
