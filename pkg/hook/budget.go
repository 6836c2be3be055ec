package hook

// The hooks' time budgets and whom a sweep visits: pure functions of their arguments (the time
// left, the counts), so budget_test.go tests them without root and without a clock.

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/reexec"
)

// Shares of a hook run's time. The steps run in order, each with its own deadline, so a step
// that a user makes slow (a scan over thousands of processes, a hung home) cannot eat the time
// of the steps after it: the node-local directories are always removed, last, with the time
// reserved for them.
const (
	// processShare is the part of the time left the Epilog's processes step may take (its
	// marker scan gets most of it: reclaim's scanShare).
	processShare = 0.35
	// dirsReserve is the part of the time left at the home step kept for the node-local
	// directories (at least minDirsReserve).
	dirsReserve    = 0.25
	minDirsReserve = 300 * time.Millisecond
	// resolveShare bounds the NSS re-read of the environment on the slow path.
	resolveShare = 0.2
	// ownersShare is the part of a sweep's time the listing of temp_dir may take: a user can
	// fill temp_dir with names, and the users' own parts of the sweep must keep their time.
	ownersShare = 0.2
	// DefaultSweepUserTimeout bounds the helper of one user in a sweep.
	DefaultSweepUserTimeout = 2 * time.Minute
)

// share is the part f of left.
func share(left time.Duration, f float64) time.Duration {
	return time.Duration(float64(left) * f)
}

// withShare returns ctx bounded to share f of the time it has left (unchanged without a
// deadline).
func withShare(ctx context.Context, f float64) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, share(time.Until(dl), f))
}

// helperDeadline keeps helperReserve of the remaining time after the helper for the root's
// last step (DefaultHelperTimeout from now without a deadline).
func helperDeadline(ctx context.Context) time.Time {
	dl, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(reclaim.DefaultHelperTimeout)
	}
	return dl.Add(-helperReserve(time.Until(dl)))
}

// helperReserve is the time kept after the helper from left: dirsReserve of it, at least
// minDirsReserve plus the helper's kill wait, at most half.
func helperReserve(left time.Duration) time.Duration {
	return min(max(share(left, dirsReserve), minDirsReserve+reexec.KillWait), left/2)
}

// userShare is the time one user's part of a sweep may take: an equal share of left among the
// users still to do, at most perUser (DefaultSweepUserTimeout when 0); perUser when there is no
// deadline (hasDeadline false). However one user's state makes that part slow, every later
// user still gets its share: no user delays another's cleanup by more than the sweep's time
// divided by the number of users (plus the helper's kill wait).
func userShare(left time.Duration, hasDeadline bool, perUser time.Duration, usersLeft int) time.Duration {
	if perUser <= 0 {
		perUser = DefaultSweepUserTimeout
	}
	if !hasDeadline || usersLeft <= 0 {
		return perUser
	}
	return min(perUser, left/time.Duration(usersLeft))
}

// mergeUIDs returns the sorted union of a and b.
func mergeUIDs(a, b []int) []int {
	set := map[int]bool{}
	for _, u := range append(append([]int(nil), a...), b...) {
		set[u] = true
	}
	out := make([]int, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	sort.Ints(out)
	return out
}

// unfinishedFrom returns the steps from phase on ("" or an unknown phase: all of them): what
// the watchdog names as unfinished when a run is stuck in phase.
func unfinishedFrom(phases []string, phase string) []string {
	for i, p := range phases {
		if p == phase {
			return append([]string(nil), phases[i:]...)
		}
	}
	return append([]string(nil), phases...)
}

// timedOut says whether a step ended at its deadline (the helper killed at it, or an NSS lookup
// that ran out) rather than with an answer: the step is then unfinished, not done.
func timedOut(err error) bool {
	return errors.Is(err, reclaim.ErrHelperTimeout) || errors.Is(err, context.DeadlineExceeded)
}
