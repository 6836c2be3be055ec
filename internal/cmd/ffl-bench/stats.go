package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// samples are repeated measurements of one figure. Benchmarks report their median (robust to
// the odd slow run on a shared machine) and, with enough runs, their 90th percentile; never a
// mean, which one outlier moves.
type samples []time.Duration

// median is the middle value (the mean of the two middle values for an even count); 0 if empty.
func (s samples) median() time.Duration {
	return s.quantile(0.5)
}

// p90 is the 90th percentile by linear interpolation between closest ranks; 0 if empty.
func (s samples) p90() time.Duration {
	return s.quantile(0.9)
}

// quantile interpolates linearly between the closest ranks (the "R-7" definition, as numpy and
// spreadsheets use), so that the median of an even count is the mean of the middle two.
func (s samples) quantile(q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := append(samples(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	pos := q * float64(len(c)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return c[lo] + time.Duration(frac*float64(c[hi]-c[lo]))
}

// minP90Runs is the fewest runs for which a p90 is worth printing: below it the p90 is just the
// slowest run or close to it.
const minP90Runs = 10

// ms formats a duration in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}

// summary is "median X (p90 Y, n=N)", or without the p90 for few runs.
func (s samples) summary() string {
	if len(s) == 0 {
		return "no runs"
	}
	if len(s) >= minP90Runs {
		return fmt.Sprintf("median %s (p90 %s, n=%d)", ms(s.median()), ms(s.p90()), len(s))
	}
	return fmt.Sprintf("median %s (n=%d)", ms(s.median()), len(s))
}

// ratio divides two durations; NaN when the divisor is zero.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// mib formats a size in KiB (as /proc/PID/status gives it) as MiB.
func mib(kib int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// largestFirst says a figure per process name, largest first (ties by name), each formatted by
// format: "firefox-esr 277.3 MiB, Xvfb 58.2 MiB, ..." or "firefox-esr 1500 ms, xpra 900 ms, ...".
func largestFirst[V int64 | time.Duration](byComm map[string]V, format func(V) string) string {
	names := make([]string, 0, len(byComm))
	for n := range byComm {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if byComm[names[i]] != byComm[names[j]] {
			return byComm[names[i]] > byComm[names[j]]
		}
		return names[i] < names[j]
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + format(byComm[n])
	}
	return strings.Join(parts, ", ")
}

// medianInt is the median of integer samples (the lower middle for an even count is fine for
// memory sizes, which differ by pages).
func medianInt(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]int64(nil), v...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c[(len(c)-1)/2]
}

func maxInt(v []int64) int64 {
	var m int64
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
