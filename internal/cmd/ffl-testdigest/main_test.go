package main

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	ev := func(action, test, output string) string {
		return `{"Action":"` + action + `","Test":"` + test + `","Output":` + strings.ReplaceAll(`"`+output+`\n"`, "\n\\n", "\\n") + "}\n"
	}
	tests := []struct {
		name   string
		events string
		want   []Failure
	}{
		{"only the leaf of a failed tree", ev("run", "A", "") + ev("run", "A/b", "") + ev("output", "A/b", "    x_test.go:1: why") +
			ev("output", "A/b", "--- FAIL: A/b (0.00s)") + ev("fail", "A/b", "") + ev("output", "A", "    x_test.go:2: parent note") + ev("fail", "A", ""),
			[]Failure{{"A/b", []string{"    x_test.go:1: why"}}}},
		{"a parent that failed itself", ev("run", "A", "") + ev("run", "A/b", "") + ev("pass", "A/b", "") + ev("output", "A", "    x_test.go:3: own") + ev("fail", "A", ""),
			[]Failure{{"A", []string{"    x_test.go:3: own"}}}},
		{"a name run again starts afresh and keeps the earlier failure", ev("run", "A", "") + ev("output", "A", "first") + ev("fail", "A", "") +
			ev("run", "A", "") + ev("output", "A", "second") + ev("pass", "A", ""),
			[]Failure{{"A", []string{"first"}}}},
		{"a later failure of a name with an earlier failed sub", ev("run", "A", "") + ev("run", "A/b", "") + ev("fail", "A/b", "") + ev("fail", "A", "") +
			ev("run", "A", "") + ev("output", "A", "own") + ev("fail", "A", ""),
			[]Failure{{"A/b", nil}, {"A", []string{"own"}}}},
		{"not events and package lines are skipped", "make: something\n" + ev("output", "", "FAIL") + ev("run", "A", "") + ev("pass", "A", ""), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Digest(strings.NewReader(tc.events))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestDigestOfRealLog runs the real test2json over a -v log with parallel subtests, two runs of
// the same suite and a top-level failure, as .ci/run does.
func TestDigestOfRealLog(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go in PATH for go tool test2json")
	}
	log, err := os.Open("testdata/v.log")
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(goBin, "tool", "test2json")
	cmd.Stdin = log
	events, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool test2json: %v", err)
	}
	failures, err := Digest(bytes.NewReader(events))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Print(&out, failures, 2, 2, 6)
	want := `ffl-testdigest: 2 failed test(s); the last messages of each (the whole log is above):
--- FAIL: TestScenarios/17_mode/ends/scancel
    [1 earlier messages]
    job_test.go:292: job 7: no 'epilog done' line in epilog.log
    job_test.go:96: launcher log of job 7:
        line one
        [1 more lines]
--- FAIL: TestOther
    other_test.go:5: wanted 1, got 2
`
	if out.String() != want {
		t.Errorf("digest:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPrintLimits(t *testing.T) {
	var out bytes.Buffer
	Print(&out, []Failure{{"A", []string{"a"}}, {"B", nil}, {"C", nil}}, 5, 3, 2)
	if !strings.HasSuffix(out.String(), "--- FAIL: B\n... and 1 more failed test(s)\n") {
		t.Errorf("digest:\n%s", out.String())
	}
	out.Reset()
	Print(&out, nil, 5, 3, 2)
	if !strings.Contains(out.String(), "no failed test") {
		t.Errorf("digest of nothing: %s", out.String())
	}
}

func TestIsCallSite(t *testing.T) {
	for line, want := range map[string]bool{
		"    job_test.go:292: job 7: no line": true,
		"x.go:1: ":                            true,
		"        line one":                    false,
		"see main.go:12 for it":               false,
		"a b.go:3: c":                         false,
		"x.go:1a: c":                          false,
		"x.go:: c":                            false,
	} {
		if got := isCallSite(line); got != want {
			t.Errorf("isCallSite(%q) = %v, want %v", line, got, want)
		}
	}
}
