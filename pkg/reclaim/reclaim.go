// Package reclaim decides what ffl sessions left behind and removes it: processes, the
// node-local runtime directories, the session trees in the user's home and the X files of their
// displays. It is the discovery-and-decision core of ffl-epilog (root, after every job),
// ffl-prolog, the periodic sweep and `ffl-launch clean` / `list`: the steps those runs are made
// of (EndJob, CleanHome, RemoveNodeLocal, Stale, SweepUser, the helper's protocol), while the
// runs themselves, their order and time budgets, live in pkg/hook. The pure decisions (what is
// stale, which record describes which session, what a scan may skip) are in decide.go. The
// mechanisms it decides with live below it: safefs (every fd-relative filesystem call), proc
// (identities, signals, the find-TERM-KILL routine), procscan (scans of other processes'
// memory, in a child; the slurmstepd listing), reexec and account (the privilege-dropped
// helper), xdisplay, runtimedir (the node-local dirs, their listing, the supervisor record),
// layout.
//
// Everything here may run as root in directories a user can write, acting on PIDs a user can
// write into a state file, so the rules are:
//
//   - a directory is opened only through safefs (no symlink followed below an admin-controlled
//     prefix), its owner checked before anything in it is trusted, and removed only through
//     safefs with the job owner's uid as the only owner whose files go;
//   - state and supervisor records are read with a size cap and parsed strictly
//     (layout.ParseState), and acted upon only when node, boot id, job and uid match;
//   - a process is signalled only through proc.Signal, only when it runs as the job's uid and
//     carries the job's FFL_SESSION marker (a record alone never names a process ffl may end),
//     never slurmstepd or slurmd;
//   - work in the home (possibly NFS, possibly hung, possibly root_squash) is done by the
//     helper running as the user (RunHelper), whose answer is trusted only for logging;
//   - every step has a deadline of its own (the hooks' shares, pkg/hook), so a user can make a
//     step slow but never make it cost the steps after it.
//
// reclaim never imports lifecycle or control, and they never import it.
package reclaim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/procscan"
)

// Options tunes Stale and Job (and the helper operations built on them).
type Options struct {
	// BootID is this boot's id (proc.BootID); records from another boot are stale and their
	// PIDs mean nothing. Empty: read it from /proc.
	BootID string
	// Grace is how long processes get between SIGTERM and SIGKILL.
	Grace time.Duration
	// DryRun reports what would be ended and removed, and changes nothing.
	DryRun bool
	// OlderThan, when > 0, limits Stale to jobs whose last activity (newest mtime of their
	// directories and records) is older than that.
	OlderThan time.Duration
	// Log receives one line per problem and per removed session; nil discards.
	Log *logrus.Entry

	// XDir is where X servers keep their lock files (/tmp/.X<N>-lock, /tmp/.X11-unix/X<N>);
	// empty means /tmp. Xvfb hard-codes /tmp; tests point it elsewhere.
	XDir string
	// KillWait bounds the wait after SIGKILL; zero means DefaultKillWait.
	KillWait time.Duration
	// RemoveTimeout bounds each directory removal when ctx has no earlier deadline; zero means
	// DefaultRemoveTimeout.
	RemoveTimeout time.Duration
	// Scanner runs the scans that read other processes' memory (nil: procscan.InProcess, a
	// goroutine abandoned at the deadline; the root hooks pass a procscan.Child).
	Scanner procscan.Scanner
}

func (o Options) scanner() procscan.Scanner {
	if o.Scanner == nil {
		return procscan.InProcess{}
	}
	return o.Scanner
}

// Defaults for Options' zero fields.
const (
	// DefaultKillWait is the wait after SIGKILL before a process counts as unkillable.
	DefaultKillWait = 2 * time.Second
	// DefaultRemoveTimeout bounds one tree removal without a context deadline.
	DefaultRemoveTimeout = 30 * time.Second
	// RecordlessGrace protects a job directory without any supervisor record: a launcher
	// writes its record right after creating the directory, so only a directory older than
	// this without one is an abandoned start (or a reboot's leftover) rather than a start in
	// progress.
	RecordlessGrace = 2 * time.Minute
	// maxProblems bounds the problem lines one report carries (the rest are counted).
	maxProblems = 50
	// maxRemoved bounds the human lines of one report.
	maxRemoved = 1000
)

// Report says what a reclaim call did, for the one summary line the Epilog logs and for
// `ffl-launch clean`.
type Report struct {
	// Sessions counts the sessions (session-<port> dirs, node-local or home) ended or removed.
	Sessions int `json:"sessions"`
	// Termed and Killed count SIGTERMs and SIGKILLs delivered; Left counts processes still
	// alive at the end (unkillable, or not signallable).
	Termed int `json:"termed"`
	Killed int `json:"killed"`
	Left   int `json:"left"`
	// Dirs counts the job and session trees removed; Files the entries removed inside them.
	Dirs  int `json:"dirs"`
	Files int `json:"files"`
	// Refused counts what was left alone on principle: a process that is root's, another
	// user's, slurmstepd or without the job's marker; a file or directory not owned by the job's
	// user; a mount point.
	Refused int `json:"refused"`
	// Bytes is the size of the regular files removed.
	Bytes int64 `json:"bytes"`
	// Removed has one human line per job or session removed (or that would be, with DryRun).
	Removed []string `json:"removed,omitempty"`
	// Problems has one line per problem met (each also logged), capped.
	Problems []string `json:"problems,omitempty"`
	// MoreProblems counts the problems beyond the cap.
	MoreProblems int `json:"more_problems,omitempty"`
	// Foreign counts entries of another user found where ffl keeps its own (a squatted
	// <temp>/ffl-<uid>, planted ffl-<n> dirs in temp_dir): left alone and said in one line
	// (ForeignLine), never a problem: they are a user's doing, not ffl's error, and must not
	// fire the cleanup-errors alert. ForeignExample names the first one.
	Foreign        int    `json:"foreign,omitempty"`
	ForeignExample string `json:"foreign_example,omitempty"`
	// Unfinished names the steps cut short by their deadline (PhaseProcesses, PhaseHome,
	// PhaseDirs, ...), for the summary line.
	Unfinished []string `json:"unfinished,omitempty"`
}

// The steps of a hook run, as the summary line's unfinished= names them.
const (
	PhaseProcesses = "processes" // the marker scan and the signals
	PhaseXFiles    = "x-files"   // X locks and sockets
	PhaseHome      = "home"      // the helper's work in the home
	PhaseDirs      = "dirs"      // node-local directories
	PhaseSweep     = "sweep"     // the users a sweep did not reach
	// maxUnfinished caps Report.Unfinished (a helper's report could name anything).
	maxUnfinished = 8
)

// Add folds o into r (counts summed, lines appended within their caps).
func (r *Report) Add(o Report) {
	r.Sessions += o.Sessions
	r.Termed += o.Termed
	r.Killed += o.Killed
	r.Left += o.Left
	r.Dirs += o.Dirs
	r.Files += o.Files
	r.Refused += o.Refused
	r.Bytes += o.Bytes
	r.Foreign += o.Foreign
	if r.ForeignExample == "" {
		r.ForeignExample = o.ForeignExample
	}
	for _, l := range o.Removed {
		if len(r.Removed) < maxRemoved {
			r.Removed = append(r.Removed, l)
		}
	}
	for _, p := range o.Problems {
		if len(r.Problems) < maxProblems {
			r.Problems = append(r.Problems, p)
		} else {
			r.MoreProblems++
		}
	}
	r.MoreProblems += o.MoreProblems
	for _, u := range o.Unfinished {
		r.unfinish(u)
	}
}

// unfinish adds phase to Unfinished once.
func (r *Report) unfinish(phase string) {
	for _, u := range r.Unfinished {
		if u == phase {
			return
		}
	}
	if len(r.Unfinished) < maxUnfinished {
		r.Unfinished = append(r.Unfinished, phase)
	}
}

// ForeignLine is the one line that reports r's foreign entries, however many ("" when none).
func (r Report) ForeignLine() string {
	if r.Foreign == 0 {
		return ""
	}
	return fmt.Sprintf("%d entries of other users left alone where ffl keeps its own (a squat or plant, not ffl's error), e.g. %s", r.Foreign, Sanitize(r.ForeignExample))
}

// Err returns the problems as one error (nil when there were none), so callers that only
// want "did it all work" need not look at the lines.
func (r Report) Err() error {
	if len(r.Problems) == 0 && r.MoreProblems == 0 {
		return nil
	}
	var errs *multierror.Error
	for _, p := range r.Problems {
		errs = oneline.Append(errs, errors.New(p))
	}
	if r.MoreProblems > 0 {
		errs = oneline.Append(errs, fmt.Errorf("%d more problems", r.MoreProblems))
	}
	return oneline.Err(errs)
}

// Tally collects one call's report and logs as it goes; safe for concurrent use. The hooks'
// steps (pkg/hook) report through it too, so every problem line has one format and one cap.
type Tally struct {
	mu  sync.Mutex
	rep Report
	log *logrus.Entry
}

// NewTally starts a report that logs to log (nil discards).
func NewTally(log *logrus.Entry) *Tally {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &Tally{log: log}
}

// Log is the logger the tally writes to.
func (t *Tally) Log() *logrus.Entry { return t.log }

// Problem records and logs one problem; the line names the thing and what was wrong.
func (t *Tally) Problem(format string, args ...any) {
	msg := Sanitize(fmt.Sprintf(format, args...))
	t.mu.Lock()
	if len(t.rep.Problems) < maxProblems {
		t.rep.Problems = append(t.rep.Problems, msg)
	} else {
		t.rep.MoreProblems++
	}
	t.mu.Unlock()
	t.log.Warn(msg)
}

// Foreign counts one entry of another user (path, owned by uid owner) found where ffl keeps
// its own, without a line of its own: see Report.Foreign.
func (t *Tally) Foreign(path string, owner int) {
	t.mu.Lock()
	t.rep.Foreign++
	if t.rep.ForeignExample == "" {
		t.rep.ForeignExample = Sanitize(fmt.Sprintf("%s (owner uid %d)", path, owner))
	}
	t.mu.Unlock()
}

// removed records and logs one removed (or would-be removed) thing.
func (t *Tally) removed(format string, args ...any) {
	msg := Sanitize(fmt.Sprintf(format, args...))
	t.mu.Lock()
	if len(t.rep.Removed) < maxRemoved {
		t.rep.Removed = append(t.rep.Removed, msg)
	}
	t.mu.Unlock()
	t.log.Info(msg)
}

// Unfinished records that phase was cut short by its deadline.
func (t *Tally) Unfinished(phase string) {
	t.update(func(r *Report) { r.unfinish(phase) })
}

// Add folds o into the report (Report.Add), without logging it.
func (t *Tally) Add(o Report) { t.update(func(r *Report) { r.Add(o) }) }

func (t *Tally) update(fn func(r *Report)) {
	t.mu.Lock()
	fn(&t.rep)
	t.mu.Unlock()
}

// Report returns a copy of what was collected so far.
func (t *Tally) Report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rep
	r.Removed = append([]string(nil), r.Removed...)
	r.Problems = append([]string(nil), r.Problems...)
	r.Unfinished = append([]string(nil), r.Unfinished...)
	return r
}

// DoneVerb is the one wording of a cleanup's lines and summaries: "removed", or "would
// remove" for a dry run (the sweep's, `ffl-launch clean --dry-run`).
func DoneVerb(dryRun bool) string {
	if dryRun {
		return "would remove"
	}
	return "removed"
}

// Sanitize makes s safe for a log line (oneline.Sanitize, 2 KiB).
func Sanitize(s string) string { return oneline.Sanitize(s, 2048) }

// deadline returns the removal deadline: ctx's, else now + d.
func deadline(ctx context.Context, d time.Duration) time.Time {
	if d <= 0 {
		d = DefaultRemoveTimeout
	}
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}
