package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux
// architecture ffl runs on (the kernel's ABI, whatever its internal HZ).
const clockTicks = 100

// statCPU reads a process's CPU time from /proc/PID/stat: its own user and system time
// (utime, stime: all its threads) and that of its children it has waited for (cutime, cstime),
// with its name (proc.ParseStat, from the same read). The root code's parser leaves the times
// out: only the bench needs them, and the Epilog parses every process's line.
func statCPU(pid int) (time.Duration, string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	st, err := proc.ParseStat(data)
	if err != nil {
		return 0, "", err
	}
	d, err := parseStatCPU(string(data))
	return d, st.Comm, err
}

// parseStatCPU is statCPU's parse of one stat line: fields 14-17 (utime, stime, cutime,
// cstime), in clock ticks.
func parseStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat line without ')'")
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 15 {
		return 0, fmt.Errorf("stat line with %d fields after the name", len(f))
	}
	var ticks int64
	for n := 14; n <= 17; n++ {
		v, err := strconv.ParseInt(f[n-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat field %d: %w", n, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// startCPU is the CPU time a launcher's session start has used so far: the launcher's own and
// that of every living process carrying the job's marker (xpra, Xvfb, Firefox and its content
// processes), each with the children it has reaped (xpra's short-lived helpers). A dead process
// is counted once, in its parent's cutime/cstime; a living one never is. byComm is the same
// split by process name ("ffl-launch", "xpra", "Xvfb", "firefox-esr", "Web Content", ...).
func (b *bench) startCPU(l *launcher) (total time.Duration, byComm map[string]time.Duration) {
	byComm = map[string]time.Duration{}
	if d, _, err := statCPU(l.cmd.Process.Pid); err == nil {
		total += d
		byComm["ffl-launch"] += d
	}
	lay := b.layoutFor(l.acct, l.job)
	ids, _ := proc.FindByMarker(l.acct.uid, layout.MarkerVar, lay.JobMarkerPrefix())
	marked, split := sumCPU(ids)
	for comm, d := range split {
		byComm[comm] += d
	}
	return total + marked, byComm
}

// sumCPU is the CPU time (statCPU) of the living processes ids, in all and by process name.
func sumCPU(ids []proc.Identity) (total time.Duration, byComm map[string]time.Duration) {
	byComm = map[string]time.Duration{}
	for _, id := range ids {
		if d, comm, err := statCPU(id.PID); err == nil {
			total += d
			byComm[comm] += d
		}
	}
	return total, byComm
}

// cpuSplit says byComm largest first: "firefox-esr 1500 ms, xpra 900 ms, ...".
func cpuSplit(byComm map[string]time.Duration) string { return largestFirst(byComm, ms) }

// browserCPU is the CPU time the bench user's chromium processes (the client's browser, which
// on a real node runs on the user's own machine, not beside the session) have used so far,
// with the children they have reaped.
func (b *bench) browserCPU() time.Duration {
	ids, _ := proc.Scan(func(st proc.Stat, uid int) bool {
		return uid == b.user.uid && (strings.HasPrefix(st.Comm, "chrom") || strings.HasPrefix(st.Comm, "headless"))
	})
	total, _ := sumCPU(ids)
	return total
}

// nodeCPU is the CPU time every CPU of the node has been busy so far, to set the browser's share
// against: /proc/stat's "cpu" line, user + nice + system + irq + softirq. Not idle or iowait,
// not steal (time the hypervisor gave to others), and not guest and guest_nice, which the kernel
// already counts in user and nice.
func nodeCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		if i < len(f) {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
