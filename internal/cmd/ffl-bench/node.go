package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// nodeUsers makes (or finds) the n users of the node-full figures: <bench user>1 .. n, each with
// its own home in the scratch dir and no ffl state left from an earlier run.
func (b *bench) nodeUsers(n int) ([]account, error) {
	var out []account
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%s%d", b.o.userName, i)
		a, err := ensureUser(name, filepath.Join(b.o.scratch, "home", name))
		if err != nil {
			return nil, err
		}
		if err := os.RemoveAll(filepath.Join(a.home, ".firefox-launcher")); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// nodeRun starts one session for each of users at the same moment (one `ffl-launch run
// --sessions 1` per user, all exec'd together) and returns each one's exec -> ready (Firefox
// painted on its X display: the JSON line) and the total PSS of every session process on the
// node 20 s after the last was ready (PSS: a shared library's pages are split among the
// processes that map them, so the sum counts them once).
func (b *bench) nodeRun(users []account, cfg string) (samples, int64, error) {
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
			return nil, 0, err
		}
	}
	var ready samples
	var last time.Time
	for _, l := range ls {
		got, err := l.await(1, 5*time.Minute)
		if err != nil {
			return nil, 0, err
		}
		ready = append(ready, got[0].at.Sub(l.started))
		if got[0].at.After(last) {
			last = got[0].at
		}
	}
	time.Sleep(time.Until(last.Add(20 * time.Second)))
	var total int64
	for _, l := range ls {
		lay := b.layoutFor(l.acct, l.job)
		ids, _ := proc.FindByMarker(l.acct.uid, layout.MarkerVar, lay.JobMarkerPrefix())
		for _, id := range ids {
			if kb, err := smapsKB(id.PID, "Pss"); err == nil {
				total += kb
			}
		}
	}
	return ready, total, nil
}

// nodeFigures: 1, 4 and 8 users' sessions started at the same moment on this node (real xpra
// + firefox-esr, one user per session as on a shared node, each on its own fresh profile):
// each session's exec -> ready (Firefox visible), and the node's total PSS.
func (b *bench) nodeFigures() {
	users, err := b.nodeUsers(8)
	if err != nil {
		b.rep.add(row{"N", "Node full of sessions", "users: " + err.Error(), "", resError})
		return
	}
	type res struct {
		ready samples
		pss   int64
	}
	got := map[int]res{}
	for _, n := range []int{1, 4, 8} {
		b.progress("node full: %d users' sessions started at the same moment", n)
		ready, pss, err := b.nodeRun(users[:n], b.cfgReal)
		if err != nil {
			b.rep.note("N-%d failed: %v", n, err)
			continue
		}
		got[n] = res{ready, pss}
	}
	one, ok1 := got[1]
	for _, n := range []int{1, 4, 8} {
		r, ok := got[n]
		id := fmt.Sprintf("N-%d", n)
		fig := fmt.Sprintf("%d users' sessions started at the same moment: each exec -> ready (Firefox painted); node's total PSS 20 s after the last", n)
		if !ok {
			b.rep.add(row{id, fig, "no successful run", "", resError})
			continue
		}
		var parts []string
		for _, d := range r.ready {
			parts = append(parts, ms(d))
		}
		measured := fmt.Sprintf("slowest %s (each: %s); total PSS %s", ms(maxOf(r.ready)), strings.Join(parts, ", "), mib(r.pss))
		target, result := "reference", resInfo
		if n == 8 && ok1 && len(one.ready) > 0 {
			x := ratio(maxOf(r.ready), one.ready[0])
			target = "all visible <= 2x a single start"
			measured += fmt.Sprintf("; %.2fx the single start", x)
			result = verdict(x <= 2)
		}
		b.rep.add(row{id, fig, measured, target, result})
	}
	if r4, ok4 := got[4]; ok4 {
		if r8, ok8 := got[8]; ok8 {
			b.rep.add(row{"N-m", "Marginal memory of one more session: (total PSS with 8 - with 4) / 4", mib((r8.pss - r4.pss) / 4), "information (against L5, one session alone)", resInfo})
		}
	}
	b.rep.note("N: users %s1..8 (created with useradd when missing), one `ffl-launch run --sessions 1 --json` each, exec'd together by the bench; fresh persistent profiles; load average at the end %s.", b.o.userName, loadavg())
}
