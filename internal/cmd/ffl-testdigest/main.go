// Command ffl-testdigest reads `go tool test2json`'s events for a whole CI log and prints, for
// every test that failed and has no failed subtest, the last messages that test logged: the
// error that says why is almost always among them. .ci/run prints it at the end of a failed run,
// where a long log is read first (and where a shortened copy of the log still shows it):
//
//	go tool test2json <ci.log | ffl-testdigest [-messages N] [-lines N] [-tests N]
//
// A test name seen again (the same suite on another Slurm) starts afresh; a failure already
// seen is kept.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

func main() {
	msgs := flag.Int("messages", 5, "the last `N` messages of each failed test")
	lines := flag.Int("lines", 3, "at most `N` lines of each message")
	tests := flag.Int("tests", 3, "at most `N` failed tests")
	flag.Parse()
	failures, err := Digest(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ffl-testdigest:", err)
		os.Exit(2)
	}
	Print(os.Stdout, failures, *msgs, *lines, *tests)
}

// Failure is one failed test and what it printed, in order.
type Failure struct {
	Test  string
	Lines []string
}

// event is the part of a test2json event the digest reads.
type event struct {
	Action string
	Test   string
	Output string
}

// Digest reads test2json events and returns the failed tests that have no failed subtest, in
// the order they failed. A line that is not an event (test2json passes none, a hand-made input
// may) is skipped.
func Digest(r io.Reader) ([]Failure, error) {
	out := map[string][]string{} // a test's output since its last run event
	since := map[string]int{}    // len(all) at a test's last run event
	type failed struct {
		Failure
		from int // all[from:] failed after this test's run event: its subtests among them
	}
	var all []failed
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Test == "" {
			continue
		}
		switch e.Action {
		case "run":
			out[e.Test], since[e.Test] = nil, len(all)
		case "output":
			if l := strings.TrimRight(e.Output, "\n"); keep(l) {
				out[e.Test] = append(out[e.Test], l)
			}
		case "fail":
			all = append(all, failed{Failure{Test: e.Test, Lines: out[e.Test]}, since[e.Test]})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading test2json events: %w", err)
	}
	var leaves []Failure
	for i, f := range all {
		sub := func(g failed) bool { return strings.HasPrefix(g.Test, f.Test+"/") }
		if !slices.ContainsFunc(all[f.from:i], sub) {
			leaves = append(leaves, f.Failure)
		}
	}
	return leaves, nil
}

// keep drops go test's own framing: the === RUN/PAUSE/CONT/NAME and --- PASS/FAIL lines.
func keep(line string) bool {
	t := strings.TrimSpace(line)
	return t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ")
}

// Print writes the digest: at most maxTests failures, the last maxMsgs messages of each (a
// message is a t.Log or t.Error call: its "file_test.go:N:" line and the lines indented under
// it), each cut to its first maxLines lines, so that a long dump logged after the error (a
// daemon's log, a launcher's output) does not push the error out.
func Print(w io.Writer, failures []Failure, maxMsgs, maxLines, maxTests int) {
	if len(failures) == 0 {
		fmt.Fprintln(w, "ffl-testdigest: no failed test in the log (the failure is outside go test: read the lines above)")
		return
	}
	fmt.Fprintf(w, "ffl-testdigest: %d failed test(s); the last messages of each (the whole log is above):\n", len(failures))
	for i, f := range failures {
		if i == maxTests {
			fmt.Fprintf(w, "... and %d more failed test(s)\n", len(failures)-maxTests)
			break
		}
		fmt.Fprintf(w, "--- FAIL: %s\n", f.Test)
		msgs := messages(f.Lines)
		if len(msgs) > maxMsgs {
			fmt.Fprintf(w, "    [%d earlier messages]\n", len(msgs)-maxMsgs)
			msgs = msgs[len(msgs)-maxMsgs:]
		}
		for _, m := range msgs {
			for j, l := range m {
				if j == maxLines {
					fmt.Fprintf(w, "        [%d more lines]\n", len(m)-maxLines)
					break
				}
				fmt.Fprintln(w, l)
			}
		}
	}
}

// messages groups a test's lines by the log call that printed them: a line "file.go:N: ..."
// (after its indent) starts one; the lines after it belong to it.
func messages(lines []string) [][]string {
	var msgs [][]string
	for _, l := range lines {
		if len(msgs) == 0 || isCallSite(l) {
			msgs = append(msgs, nil)
		}
		msgs[len(msgs)-1] = append(msgs[len(msgs)-1], l)
	}
	return msgs
}

// isCallSite reports whether line starts with go test's "name.go:N: " prefix.
func isCallSite(line string) bool {
	file, rest, ok := strings.Cut(strings.TrimLeft(line, " \t"), ".go:")
	if !ok || file == "" || strings.ContainsAny(file, " \t") {
		return false
	}
	n, _, ok := strings.Cut(rest, ": ")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}
