package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name        string
		in          samples
		median, p90 time.Duration
	}{
		{"empty", nil, 0, 0},
		{"one", samples{5 * ms}, 5 * ms, 5 * ms},
		{"odd unsorted", samples{9 * ms, 1 * ms, 5 * ms}, 5 * ms, 8200 * time.Microsecond},
		{"even: mean of the middle two", samples{4 * ms, 1 * ms, 3 * ms, 2 * ms}, 2500 * time.Microsecond, 3700 * time.Microsecond},
		{"eleven", samples{10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 1000}, 60, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.in.median(); got != c.median {
				t.Errorf("median = %v, want %v", got, c.median)
			}
			if got := c.in.p90(); got != c.p90 {
				t.Errorf("p90 = %v, want %v", got, c.p90)
			}
		})
	}
	in := samples{3, 1, 2}
	_ = in.median()
	if in[0] != 3 {
		t.Errorf("median sorted its receiver: %v", in)
	}
}

func TestSummaryAndFormats(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{samples{}.summary(), "no runs"},
		{samples{2 * time.Millisecond, 4 * time.Millisecond}.summary(), "median 3.00 ms (n=2)"},
		{make(samples, 10).summary(), "median 0.00 ms (p90 0.00 ms, n=10)"},
		{ms(1500 * time.Microsecond), "1.50 ms"},
		{ms(15 * time.Millisecond), "15.0 ms"},
		{ms(1500 * time.Millisecond), "1500 ms"},
		{mib(15 * 1024), "15.0 MiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !math.IsNaN(ratio(1, 0)) || ratio(3, 2) != 1.5 {
		t.Errorf("ratio")
	}
	if medianInt([]int64{5, 1, 3, 2}) != 2 || maxInt([]int64{5, 1, 7}) != 7 || medianInt(nil) != 0 {
		t.Errorf("medianInt/maxInt")
	}
}

func TestMarkdown(t *testing.T) {
	r := &report{title: "T", header: []string{"h"}}
	r.add(row{"A", "fig | with pipe", "1 ms", "< 2 ms", verdict(true)})
	r.add(row{"B", "fig", "3 ms", "< 2 ms", verdict(false)})
	r.add(row{"C", "ref", "x", "reference", resInfo})
	r.add(row{"D", "broken", "failed", "", resError})
	r.note("line one\nline two")
	md := r.markdown()
	for _, want := range []string{
		"# T\n\nh\n\n| id | figure | measured | target | result |\n|---|---|---|---|---|\n",
		`| A | fig \| with pipe | 1 ms | < 2 ms | pass |`,
		"| B | fig | 3 ms | < 2 ms | **MISS** |",
		"\nNotes:\n\n- line one line two\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if p, m, f := r.counts(); p != 1 || m != 1 || f != 1 {
		t.Errorf("counts = %d %d %d", p, m, f)
	}
}

// perfSample is trimmed real `perf report --children --stdio --sort comm,symbol -g none` output.
const perfSample = `# To display the perf.data header info, please use --header/--header-only options.
#
# Total Lost Samples: 0
#
# Samples: 1K of event 'cpu-clock:ppp'
# Event count (approx.): 200000000
#
# Children      Self  Command          Symbol                                              IPC   [IPC Coverage]
# ........  ........  ...............  ..................................................  ....................
#
    75.00%     0.00%  ffl-launch-prof  [.] runtime.goexit.abi0                             -      -
    40.00%     0.00%  ffl-launch-prof  [.] main.main                                       -      -
    38.00%     0.00%  ffl-launch-prof  [.] github.com/ffl-hpc/ffl/pkg/lifecycle.(*Manager).Start   -      -
    38.00%     0.00%  ffl-launch-prof  [.] github.com/ffl-hpc/ffl/pkg/lifecycle.(*Session).start   -      -
    30.00%     5.00%  ffl-launch-prof  [.] github.com/ffl-hpc/ffl/pkg/proc.(*scanner).walk     -      -
    25.00%    12.00%  ffl-launch-prof  [k] seq_read_iter                                       -      -
    10.00%    10.00%  ffl-launch-prof  [k] clear_page_erms                                     -      -
    14.00%    14.00%  Web Content      [k] clear_page_erms                                     -      -
     3.00%     3.00%  fakexpra         [.] runtime.memmove                                     -      -
`

func TestParsePerfReport(t *testing.T) {
	ns, ents := parsePerfReport([]byte(perfSample))
	if ns != 200000000 {
		t.Errorf("event count = %d, want 200000000", ns)
	}
	if len(ents) != 9 {
		t.Fatalf("%d entries, want 9: %+v", len(ents), ents)
	}
	if e := ents[5]; !e.kernel || e.sym != "seq_read_iter" || e.comm != "ffl-launch-prof" || e.children != 25 || e.self != 12 {
		t.Errorf("kernel entry parsed as %+v", e)
	}
	if e := ents[7]; e.comm != "Web Content" {
		t.Errorf("a command with a space parsed as %q", e.comm)
	}
	for _, c := range []struct {
		name  string
		runs  int
		comms []string
		want  []string
	}{
		{"one process", 1, []string{"ffl-launch-prof"}, []string{
			"CPU of ffl-launch-prof: 60 ms in all;",
			"main.main 80 ms;",
			"ffl functions, inclusive: 76 ms pkg/lifecycle.(*Session).start, 60 ms pkg/proc.(*scanner).walk;",
			"hottest, self: 24 ms seq_read_iter [k], 20 ms clear_page_erms [k], 10 ms github.com/ffl-hpc/ffl/pkg/proc.(*scanner).walk",
		}},
		{"all processes, per run", 10, nil, []string{
			"CPU of the profiled processes per run (10 runs): 9.40 ms in all;",
			"hottest, self: 4.80 ms clear_page_erms [k], 2.40 ms seq_read_iter [k]",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			shares := parseCommShares([]byte("# Overhead  Command\n    30.00%  ffl-launch-prof\n    14.00%  Web Content    \n     3.00%  fakexpra\n"))
			got := describeProfile(ns, ents, shares, c.runs, c.comms...)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestDurationField(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "?"},
		{`level=info msg="epilog done" dirs=2 duration_ms=44 errors=0`, "44 ms"},
		{"duration_ms=1\nlevel=info msg=\"sweep done\" duration_ms=1157 errors=0\n", "1157 ms"},
	} {
		if got := durationField(c.in); got != c.want {
			t.Errorf("durationField(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzParsePerfReport: whatever perf prints, parsing never panics, every entry has a one-word
// symbol and finite non-negative shares, and describing it never panics.
func FuzzParsePerfReport(f *testing.F) {
	f.Add([]byte(perfSample))
	f.Add([]byte("# Event count (approx.): 12\n    1.00%     1.00%  sh  [k] x\n"))
	f.Add([]byte("    99999999999999999999.5%  0%  a b  [.] sym  -  -\n"))
	f.Add([]byte("    " + strings.Repeat("9", 400) + "%  1.0%  a  [.] sym\n    " + strings.Repeat("9", 400) + "%  x\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		ns, ents := parsePerfReport(data)
		if ns < 0 {
			t.Errorf("negative event count %d", ns)
		}
		for _, e := range ents {
			if e.sym == "" || strings.ContainsAny(e.sym, " \t\n") {
				t.Errorf("symbol %q", e.sym)
			}
			for _, v := range []float64{e.children, e.self} {
				if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("share %v in %+v", v, e)
				}
			}
		}
		shares := parseCommShares(data)
		for c, v := range shares {
			if v < 0 || math.IsNaN(v) || strings.HasPrefix(c, "#") {
				t.Errorf("comm %q share %v", c, v)
			}
		}
		_ = describeProfile(ns, ents, shares, 3, "sh")
		_ = durationField(string(data))
	})
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name string
		line string
		want time.Duration
		err  bool
	}{
		{"plain", "42 (Xvfb) S 1 42 42 0 -1 4194560 100 0 0 0 150 25 3 2 20 0 1 0 500 1000 10", 1800 * time.Millisecond, false},
		{"name with parens and spaces", "7 (Web Content) x) Z 1) R 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7", 100 * time.Millisecond, false},
		{"too short", "7 (a) R 1 2 3", 0, true},
		{"no name", "7 a R", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.line)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseStatCPU(%q) = %v, %v; want %v, error %v", tt.line, got, err, tt.want, tt.err)
			}
		})
	}
}

// TestSharesWithSession: the names of a session's own programs (xpra 3.1 renames its Xvfb).
func TestSharesWithSession(t *testing.T) {
	for comm, want := range map[string]bool{
		"firefox-esr": true, "firefox": true, "xpra": true, "Xvfb": true, "Xvfb-for-Xpra-S": true,
		"Web Content": false, "chromium": false, "bash": false, "python3": false,
	} {
		if got := sharesWithSession(comm); got != want {
			t.Errorf("sharesWithSession(%q) = %v, want %v", comm, got, want)
		}
	}
}

func TestLargestFirst(t *testing.T) {
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"none", largestFirst(map[string]int64{}, mib), ""},
		{"PSS, largest first", largestFirst(map[string]int64{"Xvfb": 59392, "firefox-esr": 283955, "xpra": 51200}, mib),
			"firefox-esr 277.3 MiB, Xvfb 58.0 MiB, xpra 50.0 MiB"},
		{"CPU, ties by name", largestFirst(map[string]time.Duration{"xpra": 300 * time.Millisecond, "Xvfb": 80 * time.Millisecond, "Web Content": 80 * time.Millisecond}, ms),
			"xpra " + ms(300*time.Millisecond) + ", Web Content " + ms(80*time.Millisecond) + ", Xvfb " + ms(80*time.Millisecond)},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
}
