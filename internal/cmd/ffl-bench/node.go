package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// nodeUsers makes (or finds) the n users of the node-full figures: <bench user>1 .. n, each with
// its own home in the scratch dir.
func (b *bench) nodeUsers(n int) ([]account, error) {
	var out []account
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%d", b.o.userName, i)
		a, err := ensureUser(name, filepath.Join(b.o.scratch, "home", name))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// freshState removes the users' ffl state (their persistent profiles): the next start of each is
// a new user's first, as every start of N-1, N-4 and N-8 is.
func freshState(users []account) error {
	for _, a := range users {
		if err := os.RemoveAll(filepath.Join(a.home, ".firefox-launcher")); err != nil {
			return fmt.Errorf("fresh state of %s: %w", a.name, err)
		}
	}
	return nil
}

// nodeResult is one node-full run: each session's exec -> ready, the CPU time its start had
// used when it was ready (startCPU, read the moment its JSON line came), and (when asked) the
// node's total PSS of every session process 20 s after the last was ready.
type nodeResult struct {
	ready, cpu samples
	pss        int64
	split      string // the CPU of the first session by process name
}

// nodeRun starts one session for each of users at the same moment (one `ffl-launch run
// --sessions 1` per user, all exec'd together) and returns each one's exec -> ready (Firefox
// painted on its X display: the JSON line) with the CPU time its start used until then, and the
// total PSS of every session process on the node 20 s after the last was ready if withPSS (PSS:
// a shared library's pages are split among the processes that map them, so the sum counts them
// once).
func (b *bench) nodeRun(users []account, cfg string, withPSS bool) (nodeResult, error) {
	var r nodeResult
	var wg sync.WaitGroup
	ls := make([]*launcher, len(users))
	errs := make([]error, len(users))
	start := make(chan struct{})
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ls[i], errs[i] = b.startLauncherAs(u, b.launchBin, cfg, 1)
		}()
	}
	close(start)
	wg.Wait()
	defer func() {
		for _, l := range ls {
			if l != nil {
				wg.Add(1)
				go func() { defer wg.Done(); b.stopLauncher(l) }()
			}
		}
		wg.Wait()
	}()
	for _, err := range errs {
		if err != nil {
			return r, err
		}
	}
	// Each session's CPU is read the moment it is ready, while the others may still start.
	ready := make([]time.Duration, len(ls))
	cpu := make([]time.Duration, len(ls))
	split := make([]string, len(ls))
	at := make([]time.Time, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := l.await(1, 5*time.Minute)
			if err != nil {
				errs[i] = err
				return
			}
			var by map[string]time.Duration
			cpu[i], by = b.startCPU(l)
			split[i] = cpuSplit(by)
			ready[i], at[i] = got[0].at.Sub(l.started), got[0].at
		}()
	}
	wg.Wait()
	r.split = split[0]
	var last time.Time
	for i := range ls {
		if errs[i] != nil {
			return r, errs[i]
		}
		r.ready, r.cpu = append(r.ready, ready[i]), append(r.cpu, cpu[i])
		if at[i].After(last) {
			last = at[i]
		}
	}
	if !withPSS {
		return r, nil
	}
	time.Sleep(time.Until(last.Add(20 * time.Second)))
	for _, l := range ls {
		lay := b.layoutFor(l.acct, l.job)
		ids, _ := proc.FindByMarker(l.acct.uid, layout.MarkerVar, lay.JobMarkerPrefix())
		for _, id := range ids {
			if kb, err := smapsKB(id.PID, "Pss"); err == nil {
				r.pss += kb
			}
		}
	}
	return r, nil
}

// nodeSingleRuns is how many single starts N-1 takes the median of.
const nodeSingleRuns = 3

// nodeFigures: 1, 4 and 8 users' sessions started at the same moment on this node (real xpra
// + firefox-esr, one user per session as on a shared node, each on its own fresh profile):
// each session's exec -> ready (Firefox visible), and the node's total PSS.
func (b *bench) nodeFigures() {
	users, err := b.nodeUsers(8)
	if err != nil {
		b.rep.add(row{"N", "Node full of sessions", "users: " + err.Error(), "", resError})
		return
	}
	got := map[int]nodeResult{}
	for _, n := range []int{1, 4, 8} {
		b.progress("node full: %d users' sessions started at the same moment", n)
		runs := 1
		if n == 1 {
			// The reference of N-8's ratio: the median of three starts one after another, so that
			// one start on a cold page cache (the bench's first) does not set it.
			runs = nodeSingleRuns
		}
		var r nodeResult
		var err error
		for k := 0; k < runs && err == nil; k++ {
			var one nodeResult
			if err = freshState(users[:n]); err == nil {
				one, err = b.nodeRun(users[:n], b.cfgReal, k == runs-1)
			}
			r.ready, r.cpu = append(r.ready, one.ready...), append(r.cpu, one.cpu...)
			r.pss, r.split = one.pss, one.split
		}
		if err != nil {
			b.rep.note("N-%d failed: %v", n, err)
			continue
		}
		got[n] = r
		if n == 1 {
			// The same user again: its persistent profile now exists, as for a returning user.
			b.progress("node full: 1 user's session again, on the profile the first made")
			if w, err := b.nodeRun(users[:1], b.cfgReal, false); err != nil {
				b.rep.note("N-1w failed: %v", err)
			} else {
				b.rep.add(row{"N-1w", "1 user's session again, its persistent profile made by N-1 (a returning user): exec -> ready; CPU until then", fmt.Sprintf("%s (CPU %s: %s)", ms(w.ready[0]), ms(w.cpu[0]), w.split), "reference", resInfo})
			}
		}
	}
	cores := runtime.NumCPU()
	one, ok1 := got[1]
	for _, n := range []int{1, 4, 8} {
		r, ok := got[n]
		id := fmt.Sprintf("N-%d", n)
		fig := fmt.Sprintf("%d users' sessions started at the same moment: each exec -> ready (Firefox painted), CPU used by each start until then; node's total PSS 20 s after the last", n)
		if n == 1 {
			fig = fmt.Sprintf("1 user's session alone, %d starts one after another: each exec -> ready (Firefox painted), CPU used by each start until then; node's total PSS 20 s after the last start", nodeSingleRuns)
		}
		if !ok {
			b.rep.add(row{id, fig, "no successful run", "", resError})
			continue
		}
		var parts []string
		for i, d := range r.ready {
			parts = append(parts, fmt.Sprintf("%s (CPU %s)", ms(d), ms(r.cpu[i])))
		}
		lead, split := "slowest "+ms(maxOf(r.ready)), "the first start's CPU by process"
		if n == 1 {
			lead, split = "median "+ms(r.ready.median()), "CPU by process"
		}
		measured := fmt.Sprintf("%s (each: %s); CPU per start median %s; total PSS %s (%s: %s)", lead, strings.Join(parts, ", "), ms(r.cpu.median()), mib(r.pss), split, r.split)
		target, result := "reference", resInfo
		if n == 8 && ok1 && len(one.ready) > 0 {
			x := ratio(maxOf(r.ready), one.ready.median())
			target = "all visible <= 2x a single start (N-1's median)"
			measured += fmt.Sprintf("; %.2fx the single start", x)
			result = verdict(x <= 2)
		}
		b.rep.add(row{id, fig, measured, target, result})
	}
	if r8, ok8 := got[8]; ok8 && ok1 && len(one.ready) > 0 {
		// The least time 8 starts can take on this node: the CPU work of 8 starts (each as much as
		// the single start, or as much as each used in the 8-start run) spread on every core, and
		// never less than one start's own time.
		var sum8 time.Duration
		for _, c := range r8.cpu {
			sum8 += c
		}
		oneReady, oneCPU := one.ready.median(), one.cpu.median()
		bound1 := max(time.Duration(8)*oneCPU/time.Duration(cores), oneReady)
		bound8 := max(sum8/time.Duration(cores), oneReady)
		b.rep.add(row{"N-cpu", fmt.Sprintf("CPU bound of 8 starts at once on this node's %d cores: (CPU of the starts) / cores, against one start's time", cores),
			fmt.Sprintf("single start: %s CPU in %s wall (%.2f cores busy); 8 x that / %d cores = %s = %.2fx the single start; the 8 starts used %s CPU in all (%s each, median) = %.2fx at least; measured %.2fx (N-8)",
				ms(oneCPU), ms(oneReady), oneCPU.Seconds()/oneReady.Seconds(), cores, ms(bound1), ratio(bound1, oneReady),
				ms(sum8), ms(r8.cpu.median()), ratio(bound8, oneReady), ratio(maxOf(r8.ready), oneReady)),
			"information (N-8's 2x is out of reach when this bound is above 2x)", resInfo})
	}
	if r4, ok4 := got[4]; ok4 {
		if r8, ok8 := got[8]; ok8 {
			b.rep.add(row{"N-m", "Marginal memory of one more session: (total PSS with 8 - with 4) / 4", mib((r8.pss - r4.pss) / 4), "information (against L5, one session alone)", resInfo})
		}
	}
	b.rep.note("N: users %s1..8 (created with useradd when missing), one `ffl-launch run --sessions 1 --json` each, exec'd together by the bench; every start of N-1, N-4 and N-8 on a fresh persistent profile (the users' ffl state is removed before each run); N-1 is the median of %d starts one after another; a start's CPU is the user and system time (/proc/PID/stat utime+stime+cutime+cstime) of its launcher and of every living process with its job's marker, read when its JSON line came; load average at the end %s.", b.o.userName, nodeSingleRuns, loadavg())
}
