package proc

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/oneline"
)

// Defaults for Ender's zero fields.
const (
	DefaultPoll     = 50 * time.Millisecond
	DefaultKillWait = 5 * time.Second
)

// EndResult says what End did.
type EndResult struct {
	// Termed and Killed count the SIGTERMs and SIGKILLs that were delivered.
	Termed, Killed int
	// Left holds the processes still alive when End returned: SIGKILL did not finish them within
	// KillWait (uninterruptible sleep, a frozen cgroup), ctx ended first, or signalling failed
	// for a reason other than ErrGone/ErrRefused. Refused identities are never in Left: they
	// were not ours to end.
	Left []Identity
	// Errs collects the refusals and signalling failures (a go-multierror, one-line format), or
	// is nil. A process that is simply gone is not an error.
	Errs error
}

// Ender ends a set of processes the way every ffl cleanup path does: SIGTERM to all (through
// Signal), wait up to Grace for them to go, SIGKILL the survivors, wait up to KillWait. Unlike an
// executor that signals only a group leader in the graceful phase, every process gets the TERM,
// because a session's processes live in several sessions and groups (Xvfb, crashhelper).
// A zombie counts as gone.
type Ender struct {
	// Grace is how long processes get to exit after SIGTERM.
	Grace time.Duration
	// Poll is the interval between liveness checks; zero means DefaultPoll.
	Poll time.Duration
	// KillWait bounds the wait after SIGKILL; zero means DefaultKillWait.
	KillWait time.Duration
	// Reap, if set, runs before every liveness check. A child subreaper passes its
	// Reaper.ReapOnce so that processes that reparented to it do not linger as zombies;
	// zombies count as gone anyway, but reaping them frees their PIDs promptly.
	Reap func()
}

// End ends ids. When ctx is done the waits are cut short, but the SIGKILL step still runs (it
// costs nothing and is what a deadline calls for) and End returns what is still alive in Left.
func (e Ender) End(ctx context.Context, ids []Identity) EndResult {
	var res EndResult
	var errs *multierror.Error
	poll, killWait := e.Poll, e.KillWait
	if poll <= 0 {
		poll = DefaultPoll
	}
	if killWait <= 0 {
		killWait = DefaultKillWait
	}

	// send signals each identity and keeps those that may still be alive.
	send := func(ids []Identity, sig unix.Signal, count *int) []Identity {
		var keep []Identity
		for _, id := range ids {
			err := Signal(id, sig)
			switch {
			case err == nil:
				*count++
				keep = append(keep, id)
			case errors.Is(err, ErrGone):
			case errors.Is(err, ErrRefused):
				errs = oneline.Append(errs, err)
			default: // EPERM and the like: we could not signal it, it may well be alive
				errs = oneline.Append(errs, err)
				keep = append(keep, id)
			}
		}
		return keep
	}

	pending := send(dedupe(ids), unix.SIGTERM, &res.Termed)
	pending = e.waitGone(ctx, pending, e.Grace, poll)
	if len(pending) > 0 {
		pending = send(pending, unix.SIGKILL, &res.Killed)
		pending = e.waitGone(ctx, pending, killWait, poll)
	}
	res.Left = pending
	res.Errs = oneline.Err(errs)
	return res
}

// waitGone polls until every id is gone, d has elapsed or ctx is done, and returns those still
// alive. It checks at least once, even with d <= 0 or ctx already done.
func (e Ender) waitGone(ctx context.Context, ids []Identity, d, poll time.Duration) []Identity {
	deadline := time.Now().Add(d)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if e.Reap != nil {
			e.Reap()
		}
		alive := ids[:0:0]
		for _, id := range ids {
			if id.Alive() {
				alive = append(alive, id)
			}
		}
		ids = alive
		left := time.Until(deadline)
		if len(ids) == 0 || left <= 0 || ctx.Err() != nil {
			return ids
		}
		timer.Reset(min(poll, left))
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
}

// dedupe drops repeated identities (a state file and a marker scan often name the same process).
func dedupe(ids []Identity) []Identity {
	seen := make(map[Identity]bool, len(ids))
	out := make([]Identity, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// DefaultRounds bounds MarkedEnder's find-and-end rounds.
const DefaultRounds = 4

// MarkedEnder is the one routine that ends the processes of sessions, for the launcher (a
// session's stop) and the root hooks (a job's leftovers): find them (a marker scan), SIGTERM all
// at once, one grace, SIGKILL the survivors, and look again, because a session can fork while
// it ends (a content process in the TERM phase), until a look finds nothing or Rounds looks
// were made. Only the first round gets the grace. Processes that survived SIGKILL are not
// signalled again.
//
// One empty look is not proof once something was ended: a /proc walk is no snapshot, and a
// process created while its parent dies can be missing from a walk that already shows the
// parent as a zombie (the bench caught fakexpra's daemonized grandchild this way, in 3 of 60
// stops right after a start, and it outlived its session). So after a round that ended
// processes (or when the caller says it signalled them), nothing found counts only when a
// second look, Settle later, finds nothing too.
type MarkedEnder struct {
	// Find returns the processes to end now; it is called once per round and should honour ctx
	// (a scan cut short returns what it found with an error, which is reported).
	Find func(ctx context.Context) ([]Identity, error)
	// Refuse, if set, is asked about every found process; a non-nil error leaves the process
	// alone, counted in Refused and reported (the Epilog refuses Slurm's daemons).
	Refuse func(Identity) error
	// Grace, Poll, KillWait and Reap are those of Ender.
	Grace, Poll, KillWait time.Duration
	Reap                  func()
	// Rounds bounds the rounds (0: DefaultRounds).
	Rounds int
	// Settle is the wait before the look that confirms an empty one (0: Poll, or DefaultPoll).
	Settle time.Duration
	// Signalled says the caller signalled the processes before End (the launcher TERMs xpra
	// first): an empty first look then needs its confirmation too.
	Signalled bool
}

// MarkedResult says what MarkedEnder.End did.
type MarkedResult struct {
	// Termed and Killed count delivered signals; Refused the processes left alone on principle
	// (Refuse, or Signal's refusals).
	Termed, Killed, Refused int
	// Left holds the processes that survived SIGKILL and are still alive at the end.
	Left []Identity
	// Rounds is the number of rounds that found something to end.
	Rounds int
	// Errs collects Find's errors, refusals and signalling failures (one-line format), or nil.
	Errs error
}

// End runs the rounds; see MarkedEnder. It returns when a round finds nothing, after Rounds
// rounds, or when ctx is done (after that round's SIGKILL step).
func (e MarkedEnder) End(ctx context.Context) MarkedResult {
	var res MarkedResult
	var errs *multierror.Error
	rounds := e.Rounds
	if rounds <= 0 {
		rounds = DefaultRounds
	}
	settle := e.Settle
	if settle <= 0 {
		settle = e.Poll
	}
	if settle <= 0 {
		settle = DefaultPoll
	}
	unkillable := map[Identity]bool{}
	refused := map[Identity]bool{}
	ended, confirming := e.Signalled, false
	for round := 0; round < rounds; {
		found, err := e.Find(ctx)
		if err != nil {
			errs = oneline.Append(errs, err)
		}
		var ids []Identity
		for _, id := range found {
			if unkillable[id] || refused[id] {
				continue
			}
			if e.Refuse != nil {
				if err := e.Refuse(id); err != nil {
					refused[id] = true
					res.Refused++
					errs = oneline.Append(errs, err)
					continue
				}
			}
			ids = append(ids, id)
		}
		if len(ids) == 0 {
			if !ended || confirming || ctx.Err() != nil {
				break
			}
			confirming = true
			t := time.NewTimer(settle)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
			continue
		}
		confirming, ended = false, true
		res.Rounds++
		grace := e.Grace
		if round > 0 {
			grace = 0
		}
		r := Ender{Grace: grace, Poll: e.Poll, KillWait: e.KillWait, Reap: e.Reap}.End(ctx, ids)
		res.Termed += r.Termed
		res.Killed += r.Killed
		if r.Errs != nil {
			errs = oneline.Append(errs, r.Errs)
			res.Refused += countRefused(r.Errs)
		}
		for _, id := range r.Left {
			unkillable[id] = true
		}
		if ctx.Err() != nil {
			break
		}
		round++
	}
	for id := range unkillable {
		if id.Alive() {
			res.Left = append(res.Left, id)
		}
	}
	res.Errs = oneline.Err(errs)
	return res
}

// countRefused counts the ErrRefused inside a (multi)error.
func countRefused(err error) int {
	var m *multierror.Error
	if errors.As(err, &m) {
		n := 0
		for _, e := range m.Errors {
			n += countRefused(e)
		}
		return n
	}
	if errors.Is(err, ErrRefused) {
		return 1
	}
	return 0
}
