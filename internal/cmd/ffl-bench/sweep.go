package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// Sweep methods, timed on identical trees.
const (
	methodSweep = "ffl-epilog sweep"
	methodFind  = "find -mtime +7 -exec rm -rf"
	methodFloor = "2 x parallel rm -rf"
)

// sessionsPerJob is the number of sessions per stale job in the sweep trees (max_sessions 8).
const sessionsPerJob = 8

// sweepTarget is where the stale trees are built and which config the sweep reads.
type sweepTarget struct {
	stateDir string // the bench user's state dir (0700, its own)
	cfg      string // FFL_CONFIG of the sweep: state_dir = stateDir
}

// remove deletes the state dir the bench made, and its parent if that is left empty.
func (t sweepTarget) remove() {
	_ = os.RemoveAll(t.stateDir)
	_ = os.Remove(filepath.Dir(t.stateDir))
}

func (t sweepTarget) nodeDir(node string) string {
	return filepath.Join(t.stateDir, layout.SessionsDir, node)
}

// sweepTrial builds a fresh tree of sessions stale session dirs (mtimes 10 days old), flushes
// it to disk, then times one method removing it and checks that nothing is left.
func (b *bench) sweepTrial(tg sweepTarget, method string, sessions int, build *samples) (time.Duration, string, error) {
	node := tg.nodeDir(b.o.node)
	if err := os.RemoveAll(node); err != nil {
		return 0, "", err
	}
	pl := planter{uid: b.user.uid, gid: b.user.gid, mtime: time.Now().Add(-10 * 24 * time.Hour)}
	tb := time.Now()
	if err := pl.sweepTree(tg.stateDir, b.o.node, 3_000_000, sessions/sessionsPerJob, sessionsPerJob); err != nil {
		return 0, "", fmt.Errorf("build tree: %w", err)
	}
	unix.Sync()
	*build = append(*build, time.Since(tb))
	var cmds []*exec.Cmd
	var stderr bytes.Buffer
	switch method {
	case methodSweep:
		c := exec.Command(b.o.epilog, "sweep", "--node", b.o.node)
		c.Env, c.Stderr = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FFL_CONFIG=" + tg.cfg}, &stderr
		cmds = append(cmds, c)
	case methodFind:
		cmds = append(cmds, exec.Command("find", node, "-mindepth", "1", "-maxdepth", "1", "-mtime", "+7", "-exec", "rm", "-rf", "{}", "+"))
	case methodFloor:
		entries, err := os.ReadDir(node)
		if err != nil {
			return 0, "", err
		}
		var paths []string
		for _, e := range entries {
			paths = append(paths, filepath.Join(node, e.Name()))
		}
		h := len(paths) / 2
		cmds = append(cmds, exec.Command("rm", append([]string{"-rf", "--"}, paths[:h]...)...),
			exec.Command("rm", append([]string{"-rf", "--"}, paths[h:]...)...))
	}
	t0 := time.Now()
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			return 0, "", fmt.Errorf("%s: %w", method, err)
		}
	}
	var firstErr error
	for _, c := range cmds {
		if err := c.Wait(); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %v: %s", method, err, stderr.String())
		}
	}
	d := time.Since(t0)
	if firstErr != nil {
		return d, "", firstErr
	}
	left, err := os.ReadDir(node)
	if err != nil {
		return d, "", err
	}
	if len(left) > 0 {
		return d, lastLine(stderr.String()), fmt.Errorf("%s left %d of %d job dirs", method, len(left), sessions/sessionsPerJob)
	}
	return d, lastLine(stderr.String()), nil
}

// newSweepTarget prepares a state dir below parent (root 0755) and its sweep config.
func (b *bench) newSweepTarget(parent, name string) (sweepTarget, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return sweepTarget{}, err
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		return sweepTarget{}, err
	}
	tg := sweepTarget{stateDir: filepath.Join(parent, "state-"+b.user.name), cfg: filepath.Join(b.o.scratch, "sweep-"+name+".toml")}
	if err := os.RemoveAll(tg.stateDir); err != nil {
		return tg, err
	}
	if err := os.Mkdir(tg.stateDir, 0o700); err != nil {
		return tg, err
	}
	if err := os.Chown(tg.stateDir, b.user.uid, b.user.gid); err != nil {
		return tg, err
	}
	cfg := fmt.Sprintf("state_dir = %q\nruntime_dir = %q\ntemp_dir = %q\ncleanup_timeout = \"1s\"\n", tg.stateDir, b.runtime, b.temp)
	return tg, os.WriteFile(tg.cfg, []byte(cfg), 0o644)
}

// sweepFigures: the sweep of 2,000 and 20,000 stale session dirs vs find and vs the floor, on
// a memory file system (the sweep's own cost, not the disk's), then 2,000 on the scratch disk
// for information.
func (b *bench) sweepFigures() {
	// The sweep finds users through their node-local dirs: <temp>/ffl-<uid> as a launcher makes it.
	ut := filepath.Join(b.temp, layout.UserTempName(b.user.uid))
	if err := os.MkdirAll(ut, 0o700); err == nil {
		_ = os.Chown(ut, b.user.uid, b.user.gid)
	}
	mem, err := b.newSweepTarget(b.o.sweepDir, "mem")
	if err != nil {
		b.rep.add(row{"S", "Sweep", "failed: " + err.Error(), "", resError})
		return
	}
	defer mem.remove()
	var memBuild, diskBuild samples
	for _, size := range []int{2000, 20000} {
		reps := b.reps(7, 3)
		if size > 2000 {
			reps = b.reps(3, 1)
		}
		bt := b.sweepSize(mem, size, reps, fmt.Sprintf("S-%d", size), true)
		if size == 2000 {
			memBuild = bt
		}
	}
	disk, err := b.newSweepTarget(filepath.Join(b.o.scratch, "sweep-disk"), "disk")
	if err == nil {
		diskBuild = b.sweepSize(disk, 2000, b.reps(1, 1), "S-disk-2000", false)
		disk.remove()
	}
	slower := "much"
	if len(memBuild) > 0 && len(diskBuild) > 0 {
		slower = fmt.Sprintf("%.0fx", ratio(diskBuild.median(), memBuild.median()))
	}
	b.rep.note("S: each stale session dir is a home session tree as the launcher makes it (10 entries: password, Xauthority, profile/user.js, home/, config/, data/, xpraconf/xpra.conf), %d per job dir (jobs whose node-local record is gone, e.g. after a reboot), every entry's mtime 10 days old; every method gets a freshly built identical tree, flushed with sync(2) before the clock starts, methods in rotating order; the sweep runs as root with the default sweep_older_than (168h) and state_dir pointing at the tree, and removes it in its helper as the user; find and rm run as root. S-2000/S-20000 build the trees in %s (%s): on this VM's disk building a 2,000-session tree is %s slower (build times above) and removal is slower too (S-disk-2000c vs S-2000c), so the in-memory trees are what isolates the sweep's own cost and keep the run within minutes; S-disk-2000 is the same on the scratch disk (%s) for information.",
		sessionsPerJob, b.o.sweepDir, fsType(b.o.sweepDir), slower, fsType(b.o.scratch))
}

// sweepSize times the three methods on size sessions; withTarget adds the sweep/floor verdict.
func (b *bench) sweepSize(tg sweepTarget, size, reps int, id string, withTarget bool) (build samples) {
	methods := []string{methodSweep, methodFind, methodFloor}
	b.progress("sweep of %d stale session dirs in %s: %d runs of each method", size, filepath.Dir(tg.stateDir), reps)
	t := map[string]samples{}
	var summary string
	start := time.Now()
	for i := 0; i < reps; i++ {
		for k := range methods {
			m := methods[(i+k)%len(methods)]
			d, s, err := b.sweepTrial(tg, m, size, &build)
			if err != nil {
				b.rep.note("%s %s run %d failed: %v", id, m, i, err)
				continue
			}
			t[m] = append(t[m], d)
			if m == methodSweep {
				summary = s
			}
		}
	}
	_ = os.RemoveAll(tg.nodeDir(b.o.node))
	where := fsType(tg.stateDir)
	if withTarget {
		b.rep.add(row{id + "a", fmt.Sprintf("Sweep (`ffl-epilog sweep`) of %d stale session dirs (%s)", size, where), t[methodSweep].summary(), "reference for " + id + "x", resInfo})
	} else {
		b.rep.add(row{id + "a", fmt.Sprintf("Sweep (`ffl-epilog sweep`) of %d stale session dirs (%s)", size, where), t[methodSweep].summary(), "information", resInfo})
	}
	b.rep.add(row{id + "b", fmt.Sprintf("`find <node dir> -mindepth 1 -maxdepth 1 -mtime +7 -exec rm -rf {} +`, same tree, %d sessions", size), t[methodFind].summary(), "reference", resInfo})
	b.rep.add(row{id + "c", fmt.Sprintf("Floor: the job dirs split in two halves, two `rm -rf` in parallel, %d sessions", size), t[methodFloor].summary(), "reference", resInfo})
	sw, fl := t[methodSweep], t[methodFloor]
	switch {
	case len(sw) == 0 || len(fl) == 0:
		b.rep.add(row{id + "x", fmt.Sprintf("Sweep / floor, %d sessions", size), "no successful run", "<= 1.2x", resError})
	case withTarget:
		r := ratio(sw.median(), fl.median())
		b.rep.add(row{id + "x", fmt.Sprintf("Sweep / floor, %d sessions (medians)", size), fmt.Sprintf("%.2fx", r), "<= 1.2x", verdict(r <= 1.2)})
		if r > 1.2 && !b.sweepProfiled {
			b.sweepProfiled = true
			b.sweepEvidence(tg, size, sw, fl)
		}
	default:
		r := ratio(sw.median(), fl.median())
		b.rep.add(row{id + "x", fmt.Sprintf("Sweep / floor, %d sessions, on disk (medians)", size), fmt.Sprintf("%.2fx", r), "information", resInfo})
	}
	if len(sw) > 0 && len(t[methodFind]) > 0 {
		b.rep.note("%s: find/sweep = %.2fx; the sweep's log: %s; building and flushing one tree took %s (%s), all %d trials %s.", id,
			ratio(t[methodFind].median(), sw.median()), summary, ms(build.median()), where, len(build), time.Since(start).Round(time.Second))
	}
	return build
}

// sweepEvidence explains a sweep miss with a profile of one more (untimed) sweep of the same
// size, taken with the symbol-carrying build (its per-user helper included), and the CPU the
// floor's two rm processes use on the same tree.
func (b *bench) sweepEvidence(tg sweepTarget, size int, sw, fl samples) {
	if !b.canProfile() {
		return
	}
	node := tg.nodeDir(b.o.node)
	pl := planter{uid: b.user.uid, gid: b.user.gid, mtime: time.Now().Add(-10 * 24 * time.Hour)}
	if err := pl.sweepTree(tg.stateDir, b.o.node, 3_000_000, size/sessionsPerJob, sessionsPerJob); err != nil {
		b.rep.note("sweep profile: build tree: %v", err)
		return
	}
	unix.Sync()
	cmd, data := b.profiled("sweep", false, b.epilogProf, "sweep", "--node", b.o.node)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FFL_CONFIG=" + tg.cfg}
	prof := ""
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		prof = "profiled run failed: " + err.Error()
	} else {
		prof = fmt.Sprintf("its own duration_ms %s under perf; %s", durationField(stderr.String()), summarize(data, "", 1))
	}
	_ = os.RemoveAll(node)
	procs, _ := proc.Scan(func(proc.Stat, int) bool { return true })
	b.rep.note("S-%dx miss: the sweep takes %s per session against %s for the floor (two rm processes, one per CPU); %d processes on the node. Profile of one more %d-session sweep (root process and its helper): %s",
		size, ms(sw.median()/time.Duration(size)), ms(fl.median()/time.Duration(size)), len(procs), size, prof)
}
