package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// perfFreq is the sampling frequency of the profiles (Hz).
const perfFreq = 1999

// profiled wraps argv so that it runs under `perf record -g` (as root), dropping to the bench
// user first when asUser is set; it returns the command and the profile's path. Profiles are
// taken only after a miss, in a separate run that is not timed.
func (b *bench) profiled(name string, asUser bool, argv ...string) (*exec.Cmd, string) {
	data := filepath.Join(b.logs, name+".perf.data")
	args := []string{"record", "-q", "-B", "-k", "CLOCK_MONOTONIC", "-F", strconv.Itoa(perfFreq), "-g", "-o", data, "--"}
	if asUser {
		args = append(args, "setpriv", "--reuid="+strconv.Itoa(b.user.uid), "--regid="+strconv.Itoa(b.user.gid), "--clear-groups", "--")
	}
	cmd := exec.Command("perf", append(args, argv...)...)
	if asUser {
		cmd.Dir = b.user.home
	}
	return cmd, data
}

// perfReportLine matches `perf report --children --stdio --sort comm,symbol` lines: children%,
// self%, the command, [.] (user) or [k] (kernel), the symbol, then optional columns (IPC).
var perfReportLine = regexp.MustCompile(`^\s+([0-9.]+)%\s+([0-9.]+)%\s+(.+?)\s+\[([.k])\]\s+(\S+)`)

// perfEventLine matches the "# Event count (approx.): N" header; for cpu-clock N is in ns.
var perfEventLine = regexp.MustCompile(`^# Event count \(approx\.\): (\d+)`)

// perfEntry is one (command, symbol) of a perf report; shares are of all samples.
type perfEntry struct {
	children, self float64
	comm           string
	kernel         bool
	sym            string
}

// parsePerfReport reads the event count (ns of CPU for cpu-clock) and the entries of
// `perf report --children --stdio --sort comm,symbol`.
func parsePerfReport(out []byte) (eventNS int64, ents []perfEntry) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := perfEventLine.FindStringSubmatch(l); m != nil {
			eventNS, _ = strconv.ParseInt(m[1], 10, 64)
			continue
		}
		m := perfReportLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		c, err1 := strconv.ParseFloat(m[1], 64)
		s, err2 := strconv.ParseFloat(m[2], 64)
		if err1 != nil || err2 != nil || c > 100 || s > 100 {
			continue // not a perf share
		}
		ents = append(ents, perfEntry{c, s, strings.TrimSpace(m[3]), m[4] == "k", m[5]})
	}
	return eventNS, ents
}

// fflPrefix is the import path prefix of ffl's own code in symbol names.
const fflPrefix = "github.com/ffl-hpc/ffl/"

// landmarks are runtime and kernel entry points whose inclusive time says what a process spent
// outside its own logic.
var landmarks = []struct{ sym, label string }{
	{"main.main", "main.main"},
	{"runtime.doInit1", "package initialisers"},
	{"runtime.schedinit", "runtime.schedinit"},
	{"asm_exc_page_fault", "page faults"},
	{"runtime.gcBgMarkWorker", "GC"},
	{"runtime.mallocgc", "allocation"},
}

// describeProfile renders a parsed profile of the processes named comms (all when empty) as one
// line of CPU milliseconds divided by runs: the total, the landmarks, the heaviest of ffl's own
// functions (inclusive: with what they call; a caller with the same time as the callee listed
// just before it is folded into it) and the hottest functions by self time ([k] = kernel).
func describeProfile(eventNS int64, ents []perfEntry, commShare map[string]float64, runs int, comms ...string) string {
	keep := map[string]bool{}
	for _, c := range comms {
		keep[c] = true
	}
	var sel []perfEntry
	for _, e := range ents {
		if len(keep) == 0 || keep[e.comm] {
			sel = append(sel, e)
		}
	}
	runs = max(runs, 1)
	msOf := func(pct float64) float64 { return pct / 100 * float64(eventNS) / 1e6 / float64(runs) }
	var total float64
	for c, share := range commShare {
		if len(keep) == 0 || keep[c] {
			total += share
		}
	}
	// Several comms can carry the same symbol: sum per symbol.
	children := map[string]float64{}
	self := map[string]float64{}
	kernel := map[string]bool{}
	var order []string
	for _, e := range sel {
		if _, seen := children[e.sym]; !seen {
			order = append(order, e.sym)
		}
		children[e.sym] += e.children
		self[e.sym] += e.self
		kernel[e.sym] = e.kernel
	}
	fmtMS := func(v float64) string {
		if v < 10 {
			return fmt.Sprintf("%.2f ms", v)
		}
		return fmt.Sprintf("%.0f ms", v)
	}
	var marks []string
	for _, l := range landmarks {
		if v, ok := children[l.sym]; ok && msOf(v) > 0 {
			marks = append(marks, fmt.Sprintf("%s %s", l.label, fmtMS(msOf(v))))
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return children[order[i]] > children[order[j]] })
	var own []string
	last := ""
	for _, sym := range order {
		if !strings.HasPrefix(sym, fflPrefix) || len(own) >= 7 {
			continue
		}
		cur := fmtMS(msOf(children[sym]))
		item := cur + " " + strings.TrimPrefix(sym, fflPrefix)
		if cur == last && len(own) > 0 {
			own[len(own)-1] = item
			continue
		}
		last = cur
		own = append(own, item)
	}
	bySelf := append([]string(nil), order...)
	sort.SliceStable(bySelf, func(i, j int) bool { return self[bySelf[i]] > self[bySelf[j]] })
	var hot []string
	for _, sym := range bySelf {
		if len(hot) >= 5 || self[sym] < 2 {
			break
		}
		tag := ""
		if kernel[sym] {
			tag = " [k]"
		}
		hot = append(hot, fmt.Sprintf("%s %s%s", fmtMS(msOf(self[sym])), sym, tag))
	}
	who := "the profiled processes"
	if len(comms) > 0 {
		who = strings.Join(comms, ", ")
	}
	per := ""
	if runs > 1 {
		per = fmt.Sprintf(" per run (%d runs)", runs)
	}
	return fmt.Sprintf("perf record -g -F %d, CPU of %s%s: %s in all; %s; ffl functions, inclusive: %s; hottest, self: %s",
		perfFreq, who, per, fmtMS(msOf(total)), strings.Join(marks, ", "), strings.Join(own, ", "), strings.Join(hot, ", "))
}

// summarize runs `perf report` on data (restricted to the time window "start,end" when given)
// and describes the processes named comms (all when empty), per run when runs > 1.
func summarize(data, window string, runs int, comms ...string) string {
	args := []string{"report", "-i", data, "--stdio", "--children", "--sort", "comm,symbol", "-g", "none", "--percent-limit", "0.3"}
	if window != "" {
		args = append(args, "--time", window)
	}
	out, err := exec.Command("perf", args...).Output()
	if err != nil {
		return fmt.Sprintf("perf report failed: %v", err)
	}
	eventNS, ents := parsePerfReport(out)
	cargs := []string{"report", "-i", data, "--stdio", "--no-children", "--sort", "comm", "-g", "none"}
	if window != "" {
		cargs = append(cargs, "--time", window)
	}
	cout, err := exec.Command("perf", cargs...).Output()
	if err != nil {
		return fmt.Sprintf("perf report failed: %v", err)
	}
	return describeProfile(eventNS, ents, parseCommShares(cout), runs, comms...)
}

// perfCommLine matches `perf report --no-children --sort comm` lines: overhead%, command.
var perfCommLine = regexp.MustCompile(`^\s+([0-9.]+)%\s+(.+?)\s*$`)

// parseCommShares reads each command's share of all samples (percent).
func parseCommShares(out []byte) map[string]float64 {
	shares := map[string]float64{}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if m := perfCommLine.FindStringSubmatch(l); m != nil {
			if v, err := strconv.ParseFloat(m[1], 64); err == nil && v <= 100 {
				shares[m[2]] += v
			}
		}
	}
	return shares
}

// perfAvailable says whether perf can record here (it is only used for evidence after a miss).
func perfAvailable() bool {
	if _, err := exec.LookPath("perf"); err != nil {
		return false
	}
	_, err := os.Stat("/proc/sys/kernel/perf_event_paranoid")
	return err == nil
}

// perfAttach starts `perf record -g` on the running process pid; wait returns once the process
// has exited and perf has written its data.
func (b *bench) perfAttach(name string, pid int) (data string, wait func() error, err error) {
	data = filepath.Join(b.logs, name+".perf.data")
	cmd := exec.Command("perf", "record", "-q", "-B", "-F", strconv.Itoa(perfFreq), "-g", "-p", strconv.Itoa(pid), "-o", data)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	// perf attaches within milliseconds; the data file's header appears once it has.
	if !testutilEventually(5*time.Second, func() bool { st, err := os.Stat(data); return err == nil && st.Size() > 0 }) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, fmt.Errorf("perf record did not start")
	}
	time.Sleep(100 * time.Millisecond)
	wait = func() error {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Signal(unix.SIGINT)
			return <-done
		}
	}
	return data, wait, nil
}

// monotonic is CLOCK_MONOTONIC as perf's -k CLOCK_MONOTONIC timestamps it, for --time windows.
func monotonic() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

var durationRE = regexp.MustCompile(`\bduration_ms=(\d+)`)

// durationField is the duration_ms field of the last log line in s (the summary line of
// ffl-epilog and of its sweep), or "?".
func durationField(s string) string {
	m := durationRE.FindAllStringSubmatch(s, -1)
	if len(m) == 0 {
		return "?"
	}
	return m[len(m)-1][1] + " ms"
}
