package hook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/reexec"
)

// The hooks' time budgets (budget.go), as functions of the time left: no clock, no root.

func TestHelperReserve(t *testing.T) {
	floor := minDirsReserve + reexec.KillWait
	for _, tc := range []struct {
		left, want time.Duration
	}{
		{10 * time.Second, 2500 * time.Millisecond}, // a quarter
		{2 * time.Second, floor},                    // at least the floor
		{floor, floor / 2},                          // at most half
		{0, 0},
	} {
		if got := helperReserve(tc.left); got != tc.want {
			t.Errorf("helperReserve(%s) = %s, want %s", tc.left, got, tc.want)
		}
	}
}

func TestUserShare(t *testing.T) {
	for _, tc := range []struct {
		name        string
		left        time.Duration
		hasDeadline bool
		perUser     time.Duration
		users       int
		want        time.Duration
	}{
		{"equal share", 10 * time.Minute, true, time.Hour, 4, 150 * time.Second},
		{"capped per user", 10 * time.Minute, true, time.Minute, 2, time.Minute},
		{"default cap", time.Hour, true, 0, 1, DefaultSweepUserTimeout},
		{"no deadline", 0, false, 3 * time.Minute, 5, 3 * time.Minute},
		{"no users left", time.Minute, true, time.Hour, 0, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := userShare(tc.left, tc.hasDeadline, tc.perUser, tc.users); got != tc.want {
				t.Errorf("userShare = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestShare(t *testing.T) {
	if got := share(10*time.Second, processShare); got != 3500*time.Millisecond {
		t.Errorf("processes' share of 10s = %s", got)
	}
	if got := share(10*time.Second, resolveShare); got != 2*time.Second {
		t.Errorf("NSS share of 10s = %s", got)
	}
}

func TestMergeUIDs(t *testing.T) {
	for _, tc := range []struct {
		a, b, want []int
	}{
		{nil, nil, []int{}},
		{[]int{3, 1}, nil, []int{1, 3}},
		{[]int{2, 1}, []int{1, 5, 2}, []int{1, 2, 5}},
	} {
		if got := mergeUIDs(tc.a, tc.b); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("mergeUIDs(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestUnfinishedFrom(t *testing.T) {
	for _, tc := range []struct {
		phase string
		want  []string
	}{
		{reclaim.PhaseHome, []string{reclaim.PhaseHome, reclaim.PhaseDirs}},
		{reclaim.PhaseProcesses, EpilogPhases},
		{"", EpilogPhases},
		{"unknown", EpilogPhases},
	} {
		if got := unfinishedFrom(EpilogPhases, tc.phase); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("unfinishedFrom(%q) = %v, want %v", tc.phase, got, tc.want)
		}
	}
}

// TestTimedOut: a step that ran out of time, however the error is wrapped, is unfinished; an
// answer (a refusal, a missing user) is not.
func TestTimedOut(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("user u: %w", reclaim.ErrHelperTimeout), true},
		{fmt.Errorf("uid 1000: lookup: %w", context.DeadlineExceeded), true},
		{context.Canceled, false},
		{errors.New("uid 1000: no such user"), false},
		{nil, false},
	} {
		if got := timedOut(tc.err); got != tc.want {
			t.Errorf("timedOut(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
