package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWhenChanged: the probe looks once at the start, once per reported change (bursts folded,
// never closer than least), every most when nothing is reported, and stops on done, an error
// or the end of ctx. Durations only bound the test; no figure is a speed target.
func TestWhenChanged(t *testing.T) {
	errLook := errors.New("look failed")
	tests := []struct {
		name        string
		least, most time.Duration
		reports     int // changes reported before the first look, one at a time
		nilChanged  bool
		doneAt      int // the look that says done (0: never)
		failAt      int // the look that fails (0: never)
		timeout     time.Duration
		wantLooks   int // exact, or the least when atLeast
		atLeast     bool
		wantErr     error
		minDuration time.Duration
	}{
		{name: "done at once", least: time.Millisecond, most: time.Hour, doneAt: 1, wantLooks: 1},
		{name: "each report looks again", least: time.Millisecond, most: time.Hour, reports: 3, doneAt: 4, wantLooks: 4},
		{name: "looks fail the wait", least: time.Millisecond, most: time.Hour, reports: 3, failAt: 2, wantLooks: 2, wantErr: errLook},
		{name: "no report: looks every most", least: time.Millisecond, most: 20 * time.Millisecond, nilChanged: true, doneAt: 4, wantLooks: 4, minDuration: 60 * time.Millisecond},
		{name: "reports never closer than least", least: 50 * time.Millisecond, most: time.Hour, reports: 3, doneAt: 4, wantLooks: 4, minDuration: 150 * time.Millisecond},
		{name: "nothing reported: the end of ctx", least: time.Millisecond, most: time.Hour, timeout: 100 * time.Millisecond, wantLooks: 1, wantErr: context.DeadlineExceeded},
		{name: "nil changed: looks until ctx ends", least: time.Millisecond, most: 10 * time.Millisecond, nilChanged: true, timeout: 200 * time.Millisecond, wantLooks: 3, atLeast: true, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 30 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			reports := make(chan struct{}, 1)
			var changed <-chan struct{} = reports
			if tt.nilChanged {
				changed = nil
			}
			looks, pending := 0, tt.reports
			start := time.Now()
			err := whenChanged(ctx, changed, tt.least, tt.most, func() (bool, error) {
				looks++
				if looks == tt.failAt {
					return false, errLook
				}
				if looks == tt.doneAt {
					return true, nil
				}
				if pending > 0 {
					pending--
					reports <- struct{}{}
				}
				return false, nil
			})
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if looks != tt.wantLooks && !(tt.atLeast && looks >= tt.wantLooks) {
				t.Errorf("%d looks, want %d", looks, tt.wantLooks)
			}
			if d := time.Since(start); d < tt.minDuration {
				t.Errorf("took %v, want at least %v", d, tt.minDuration)
			}
		})
	}
}
