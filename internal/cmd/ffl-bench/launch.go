package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// announced is what the bench reads of `ffl-launch run --json`'s lines.
type announced struct {
	Port int `json:"port"`
	PID  int `json:"pid"`
	at   time.Time
}

// launcher is one `ffl-launch run` started as the bench user.
type launcher struct {
	acct    account // the user it runs as
	cmd     *exec.Cmd
	job     string
	logPath string
	started time.Time
	lines   chan announced
	exited  chan struct{}
	exitAt  time.Time
	waitErr error
}

// startLauncher starts `ffl-launch run --sessions n --json` as the bench user with cfg, as a
// Slurm job's task would (SLURM_JOB_ID set, no Prolog: the runtime dir falls back to temp_dir).
func (b *bench) startLauncher(cfg string, n int, extra ...string) (*launcher, error) {
	return b.startLauncherBin(b.launchBin, cfg, n, extra...)
}

// startLauncherBin is startLauncher with another build of ffl-launch (the profiling one).
func (b *bench) startLauncherBin(bin, cfg string, n int, extra ...string) (*launcher, error) {
	return b.startLauncherAs(b.user, bin, cfg, n, extra...)
}

// startLauncherAs is startLauncherBin as the user acct (the node-full figures' other users).
func (b *bench) startLauncherAs(acct account, bin, cfg string, n int, extra ...string) (*launcher, error) {
	l := &launcher{acct: acct, job: b.nextJob(), lines: make(chan announced, 16), exited: make(chan struct{})}
	l.logPath = filepath.Join(b.logs, "launch-"+l.job+".log")
	logf, err := os.Create(l.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	l.cmd = exec.Command(bin, append([]string{"run", "--sessions", strconv.Itoa(n), "--json"}, extra...)...)
	l.cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + acct.home, "USER=" + acct.name, "LOGNAME=" + acct.name, "LANG=C.UTF-8",
		"FFL_CONFIG=" + cfg, "SLURM_JOB_ID=" + l.job, "SLURMD_NODENAME=" + b.o.node}
	if cfg == b.cfgCompliant || cfg == b.cfgIgnore {
		// fakexpra serves HTTP on its socket but has no X display and is no Python script.
		l.cmd.Env = append(l.cmd.Env, "FFL_FAKE_XPRA=1")
	}
	l.cmd.Stdout, l.cmd.Stderr = w, logf
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.uid), Gid: uint32(acct.gid), Groups: []uint32{}}}
	l.cmd.Dir = acct.home
	l.started = time.Now()
	err = l.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("start ffl-launch: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			a := announced{at: time.Now()}
			if json.Unmarshal(sc.Bytes(), &a) == nil && a.Port > 0 {
				l.lines <- a
			}
		}
		r.Close()
		close(l.lines)
	}()
	go func() {
		l.waitErr = l.cmd.Wait()
		l.exitAt = time.Now()
		close(l.exited)
	}()
	return l, nil
}

// await returns the first n sessions the launcher announces.
func (l *launcher) await(n int, limit time.Duration) ([]announced, error) {
	var got []announced
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for len(got) < n {
		select {
		case a, ok := <-l.lines:
			if !ok {
				<-l.exited
				return got, fmt.Errorf("ffl-launch ended (%v) after %d of %d sessions: %s", l.waitErr, len(got), n, l.logTail())
			}
			got = append(got, a)
		case <-timer.C:
			return got, fmt.Errorf("%d of %d sessions announced within %s: %s", len(got), n, limit, l.logTail())
		}
	}
	return got, nil
}

// logTail is the last lines of the launcher's log, for error messages.
func (l *launcher) logTail() string {
	data, _ := os.ReadFile(l.logPath)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " / ")
}

// logField returns the numeric field key of the first JSON log line whose msg is msg.
func (l *launcher) logField(msg, key string) (float64, bool) {
	data, err := os.ReadFile(l.logPath)
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil || m["msg"] != msg {
			continue
		}
		v, ok := m[key].(float64)
		return v, ok
	}
	return 0, false
}

// stopLauncher ends the launcher (SIGTERM, SIGKILL after 15 s) and checks what it left: when the
// launcher exited on its own or on the SIGTERM, every process with the job's marker and every
// job directory must be gone within 10 s, or the bench records a leftover failure (make bench
// exits non-zero). Whatever is left is then killed and removed, so that one failure does not
// spoil the next figure.
func (b *bench) stopLauncher(l *launcher) {
	killed := false
	select {
	case <-l.exited:
	default:
		_ = l.cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-l.exited:
		case <-time.After(15 * time.Second):
			_ = l.cmd.Process.Kill()
			<-l.exited
			killed = true
		}
	}
	lay := b.layoutFor(l.acct, l.job)
	if killed {
		b.rep.failure("job %s: ffl-launch still running 15 s after SIGTERM (SIGKILLed): %s", l.job, l.logTail())
	} else if !testutilEventually(10*time.Second, func() bool { return b.jobGone(lay) }) {
		if left := b.jobLeft(lay); left != "" {
			b.rep.failure("job %s left %s 10 s after ffl-launch exited (%v); launcher log: %s", l.job, left, l.waitErr, l.logTail())
		}
	}
	b.killMarkedUID(lay.UID, lay.JobMarkerPrefix())
	for _, d := range append(lay.RuntimeJobDirs(), lay.HomeJobDir()) {
		_ = os.RemoveAll(d)
	}
}

// jobGone reports whether nothing of job is left: no process with its marker and none of its
// directories (home job dir, both node-local job dirs).
func (b *bench) jobGone(lay layout.Layout) bool { return b.jobLeft(lay) == "" }

// jobLeft describes what of job is left ("" = nothing): every process with the job's marker (pid,
// parent, command, state, age relative to now) and every job directory still there. It is what a
// leftover failure reports, so that its cause can be told from the line alone.
func (b *bench) jobLeft(lay layout.Layout) string {
	var parts []string
	ids, _ := proc.FindByMarker(lay.UID, layout.MarkerVar, lay.JobMarkerPrefix())
	for _, id := range ids {
		st, err := proc.ReadStat(id.PID)
		if err != nil {
			continue // exited since the scan
		}
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(id.PID) + "/cmdline")
		parts = append(parts, fmt.Sprintf("process %d (ppid %d, %q, state %c: %s)", id.PID, st.PPID, st.Comm, st.State,
			strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))))
	}
	for _, d := range append(lay.RuntimeJobDirs(), lay.HomeJobDir()) {
		if exists(d) {
			parts = append(parts, "dir "+d)
		}
	}
	return strings.Join(parts, "; ")
}

// graceResult is one SIGTERM-to-everything-gone measurement.
type graceResult struct {
	d        time.Duration
	mem      memInfo // sampled with every session up, before the SIGTERM
	exitCode int
}

// graceOpts varies a grace run for the profile taken after a miss.
type graceOpts struct {
	bin string // ffl-launch build ("" = the one measured)
	// beforeTerm, if set, is called with the launcher's pid just before the SIGTERM; the
	// function it returns is called once the run is over.
	beforeTerm func(pid int) func()
}

// graceRun starts a launcher with n sessions, waits for every session's tree, SIGTERMs the
// launcher and measures until the launcher has exited, no process carries the job's marker and
// the job's directories are gone. The launcher's exit is waited for (exact); the processes are
// watched through pidfds opened before the signal (exact); what is still missing after the
// launcher's exit is polled every millisecond.
func (b *bench) graceRun(cfg string, n int, opt graceOpts) (graceResult, error) {
	var res graceResult
	if opt.bin == "" {
		opt.bin = b.launchBin
	}
	l, err := b.startLauncherBin(opt.bin, cfg, n)
	if err != nil {
		return res, err
	}
	defer b.stopLauncher(l)
	got, err := l.await(n, 60*time.Second)
	if err != nil {
		return res, err
	}
	lay := b.layout(l.job)
	var markers []string
	for _, a := range got {
		markers = append(markers, lay.Marker(a.Port))
	}
	// fakexpra, faketree's root, its child and the daemonized grandchild.
	if err := b.waitMarked(markers, 4, 30*time.Second); err != nil {
		return res, err
	}
	if res.mem, err = memStatus(l.cmd.Process.Pid); err != nil {
		return res, err
	}
	fds := openPidfds(b.marked(lay.JobMarkerPrefix()))
	defer fds.close()
	if len(fds) < 4*n {
		return res, fmt.Errorf("%d session processes, want at least %d", len(fds), 4*n)
	}
	if opt.beforeTerm != nil {
		if after := opt.beforeTerm(l.cmd.Process.Pid); after != nil {
			defer after()
		}
	}
	t0 := time.Now()
	if err := l.cmd.Process.Signal(unix.SIGTERM); err != nil {
		return res, err
	}
	select {
	case <-l.exited:
	case <-time.After(60 * time.Second):
		return res, fmt.Errorf("ffl-launch still running 60s after SIGTERM: %s", l.logTail())
	}
	end := l.exitAt
	for first := true; ; first = false {
		at := time.Now()
		if fds.exited() && b.jobGone(lay) {
			if !first {
				end = at
			}
			break
		}
		if at.Sub(t0) > 30*time.Second {
			left := b.jobLeft(lay)
			if !fds.exited() {
				left += " (and a process recorded before the SIGTERM is still alive)"
			}
			b.rep.failure("job %s left %s 30 s after its SIGTERM: %s", l.job, left, l.logTail())
			return res, fmt.Errorf("leftovers 30s after SIGTERM (processes exited: %v): %s", fds.exited(), l.logTail())
		}
		time.Sleep(time.Millisecond)
	}
	res.d = end.Sub(t0)
	res.exitCode = l.cmd.ProcessState.ExitCode()
	return res, nil
}

// startFakexpra starts fakexpra alone as the bench user, as ffl would (same options, the marker
// in its environment), listening on the unix socket sock.
func (b *bench) startFakexpra(marker, sock string, mode string) (*exec.Cmd, chan struct{}, error) {
	_ = os.Remove(sock)
	cmd := exec.Command(b.fakexpraBin, "start", "--bind="+sock,
		"--fakexpra-faketree="+b.faketreeBin, "--fakexpra-mode="+mode)
	cmd.Env = b.userEnv(layout.MarkerVar + "=" + marker)
	b.asUser(cmd)
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start fakexpra: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return cmd, done, nil
}

// ownExitRun measures the children's own exit time, without ffl: n compliant fakexpra trees,
// SIGTERM to every one of their processes at once (what ffl's grace path sends), until the last
// one has exited.
func (b *bench) ownExitRun(n int) (time.Duration, error) {
	lay := b.layout("own" + b.nextJob())
	prefix := lay.JobMarkerPrefix()
	var markers []string
	var dones []chan struct{}
	defer func() {
		b.killMarked(prefix)
		for _, d := range dones {
			<-d
		}
	}()
	for i := 0; i < n; i++ {
		m := lay.Marker(b.portLo + i)
		_, done, err := b.startFakexpra(m, b.fakeSocket(i), "compliant")
		if err != nil {
			return 0, err
		}
		markers = append(markers, m)
		dones = append(dones, done)
	}
	if err := b.waitMarked(markers, 4, 30*time.Second); err != nil {
		return 0, err
	}
	fds := openPidfds(b.marked(prefix))
	defer fds.close()
	if len(fds) < 4*n {
		return 0, fmt.Errorf("%d processes, want %d", len(fds), 4*n)
	}
	t0 := time.Now()
	fds.signal(unix.SIGTERM)
	end, err := fds.wait(30 * time.Second)
	if err != nil {
		return 0, err
	}
	return end.Sub(t0), nil
}

// fakexpraReadyRun measures fakexpra alone: exec to the first HTTP 200 on its socket, polled
// every millisecond.
func (b *bench) fakexpraReadyRun() (time.Duration, error) {
	lay := b.layout("ready" + b.nextJob())
	port := b.portLo
	defer b.killMarked(lay.JobMarkerPrefix())
	sock := b.fakeSocket(0)
	t0 := time.Now()
	cmd, done, err := b.startFakexpra(lay.Marker(port), sock, "compliant")
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		b.killMarked(lay.JobMarkerPrefix())
		<-done
	}()
	for {
		if ok, _ := xpra.HTTPReady(context.Background(), sock); ok {
			return time.Since(t0), nil
		}
		select {
		case <-done:
			return 0, errors.New("fakexpra exited before it answered")
		default:
		}
		if time.Since(t0) > 30*time.Second {
			return 0, errors.New("fakexpra did not answer within 30s")
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeSocket is the unix socket of the i-th fakexpra started alone.
func (b *bench) fakeSocket(i int) string {
	return filepath.Join(b.o.scratch, "sock", "fake-"+strconv.Itoa(i)+".sock")
}

// fflReadyRun measures `ffl-launch run --sessions 1 --json` from exec to its JSON line, and
// returns the session's window_ms log field (xpra started -> ready); the launcher is then stopped
// and its cleanup checked.
func (b *bench) fflReadyRun(cfg string, limit time.Duration) (total time.Duration, readyMS float64, err error) {
	l, err := b.startLauncher(cfg, 1)
	if err != nil {
		return 0, 0, err
	}
	defer b.stopLauncher(l)
	got, err := l.await(1, limit)
	if err != nil {
		return 0, 0, err
	}
	total = got[0].at.Sub(l.started)
	_ = l.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-l.exited:
	case <-time.After(60 * time.Second):
		return total, 0, fmt.Errorf("ffl-launch still running 60s after SIGTERM")
	}
	readyMS, ok := l.logField("session ready", "window_ms")
	if !ok {
		return total, 0, fmt.Errorf("no window_ms in the log: %s", l.logTail())
	}
	// What the job left is checked by stopLauncher (deferred): a leftover fails the bench.
	return total, readyMS, nil
}

// testutilEventually polls cond every 5 ms until it holds or limit passes.
func testutilEventually(limit time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// graceKey is one grace-path configuration: the tree's mode and the number of sessions.
type graceKey struct {
	mode string
	n    int
}

// launcherFigures measures issue 2's figures: grace path, time-to-ready overhead, RSS.
func (b *bench) launcherFigures() {
	// Children's own exit time, the reference of the compliant grace target.
	own := map[int]samples{}
	for _, n := range []int{1, 8} {
		b.progress("children's own exit time, %d session(s)", n)
		for i := 0; i < b.reps(11, 3); i++ {
			d, err := b.ownExitRun(n)
			if err != nil {
				b.rep.note("L0-%d run %d failed: %v", n, i, err)
				continue
			}
			own[n] = append(own[n], d)
		}
	}
	type key = graceKey
	mem := map[key][]memInfo{}
	grace := map[key]samples{}
	codes := map[int]int{}
	cfgs := map[string]string{"compliant": b.cfgCompliant, "ignore-term": b.cfgIgnore}
	for _, mode := range []string{"compliant", "ignore-term"} {
		reps := b.reps(11, 3)
		if mode == "ignore-term" {
			reps = b.reps(7, 3)
		}
		for _, n := range []int{1, 8} {
			b.progress("grace path, %s tree, %d session(s), %d runs", mode, n, reps)
			k := key{mode, n}
			for i := 0; i < reps; i++ {
				r, err := b.graceRun(cfgs[mode], n, graceOpts{})
				if err != nil {
					b.progress("  run %d: %v", i, err)
					b.rep.note("grace %s n=%d run %d failed: %v", mode, n, i, err)
					continue
				}
				grace[k] = append(grace[k], r.d)
				mem[k] = append(mem[k], r.mem)
				codes[r.exitCode]++
			}
		}
	}
	var missed []key
	for _, n := range []int{1, 8} {
		id := fmt.Sprintf("L1-%d", n)
		fig := fmt.Sprintf("Grace path SIGTERM -> launcher exited, no marked process, dirs gone: compliant tree, %d session(s)", n)
		g, o := grace[key{"compliant", n}], own[n]
		ownFig := fmt.Sprintf("Children's own exit time without ffl (fakexpra compliant tree, TERM to all -> all exited), %d session(s)", n)
		switch {
		case len(o) == 0:
			b.rep.add(row{id, fig, g.summary(), "<= children's own exit + 100 ms", resError})
			b.rep.add(row{fmt.Sprintf("L0-%d", n), ownFig, "no successful run", "", resError})
			continue
		case len(g) == 0:
			b.rep.add(row{id, fig, "no successful run", "", resError})
		default:
			target := o.median() + 100*time.Millisecond
			ok := g.median() <= target
			b.rep.add(row{id, fig, g.summary(), fmt.Sprintf("<= children's own exit %s + 100 ms = %s", ms(o.median()), ms(target)), verdict(ok)})
			if !ok {
				missed = append(missed, key{"compliant", n})
			}
		}
		b.rep.add(row{fmt.Sprintf("L0-%d", n), ownFig, o.summary(), "reference", resInfo})
	}
	for _, n := range []int{1, 8} {
		id := fmt.Sprintf("L2-%d", n)
		fig := fmt.Sprintf("Grace path, TERM-ignoring tree (xpra and a child ignore TERM), cleanup_timeout 1s, %d session(s)", n)
		g := grace[key{"ignore-term", n}]
		if len(g) == 0 {
			b.rep.add(row{id, fig, "no successful run", "", resError})
			continue
		}
		ok := g.median() <= 1100*time.Millisecond
		b.rep.add(row{id, fig, g.summary(), "<= 1 s + 100 ms = 1100 ms", verdict(ok)})
		if !ok {
			missed = append(missed, key{"ignore-term", n})
		}
	}
	var codeList []string
	for c, k := range codes {
		codeList = append(codeList, fmt.Sprintf("%d x%d", c, k))
	}
	b.rep.note("L1/L2: real `ffl-launch run --sessions N --json` as %s with xpra = fakexpra (firefox = /bin/true), max_sessions 8, Slurm-like environment without a Prolog (node-local dirs in temp_dir), everything on the scratch disk; the clock starts at kill(SIGTERM) and stops when the launcher has been reaped, every process found with the job's marker before the signal has exited (pidfds) and a marker scan finds none, and the home and node-local job dirs are gone. Launcher exit codes: %s (143 = 128+SIGTERM).", b.user.name, strings.Join(codeList, ", "))
	for _, k := range missed {
		b.graceEvidence(cfgs[k.mode], k.mode, k.n)
	}

	b.memoryRows(mem)
	b.rep.note("L4: /proc/PID/status of the launcher, sampled in every L1/L2 run once all sessions and their trees were up, before the SIGTERM; the verdict uses the worst VmHWM (peak RSS).")
}

// memoryRows adds the L4 rows: the supervisor's memory with 1 and 8 sessions running, from
// the samples of every grace run.
func (b *bench) memoryRows(mem map[graceKey][]memInfo) {
	for _, n := range []int{1, 8} {
		var all []memInfo
		for _, mode := range []string{"compliant", "ignore-term"} {
			all = append(all, mem[graceKey{mode, n}]...)
		}
		id := fmt.Sprintf("L4-%d", n)
		fig := fmt.Sprintf("Supervisor (ffl-launch run) memory with %d session(s) running: VmRSS / VmHWM", n)
		if len(all) == 0 {
			b.rep.add(row{id, fig, "no successful run", "", resError})
			continue
		}
		var rss, hwm, anon, file, binRss []int64
		for _, m := range all {
			rss, hwm, anon, file, binRss = append(rss, m.rss), append(hwm, m.hwm), append(anon, m.anon), append(file, m.file), append(binRss, m.bin)
		}
		ok := maxInt(hwm) < 15*1024
		b.rep.add(row{id, fig, fmt.Sprintf("VmRSS median %s, max %s; VmHWM max %s (n=%d)", mib(medianInt(rss)), mib(maxInt(rss)), mib(maxInt(hwm)), len(all)),
			"< 15 MiB", verdict(ok)})
		if !ok {
			st, _ := os.Stat(b.launchBin)
			var size int64
			if st != nil {
				size = st.Size()
			}
			b.rep.note("%s miss: of the median VmRSS, RssAnon (Go heap, goroutine stacks, runtime) is %s and RssFile (file-backed pages, shared with the page cache and every other ffl-launch) %s, of which %s are pages of the ffl-launch binary itself (%s on disk; from /proc/PID/smaps); file-backed pages are %.0f%% of the VmRSS.",
				id, mib(medianInt(anon)), mib(medianInt(file)), mib(medianInt(binRss)), mib(size/1024), 100*float64(medianInt(file))/float64(max(medianInt(rss), 1)))
		}
	}
}

// graceEvidence profiles one more (untimed) grace run with the symbol-carrying build of
// ffl-launch: perf attached to the launcher from just before the SIGTERM until it exits.
func (b *bench) graceEvidence(cfg, mode string, n int) {
	id := fmt.Sprintf("L1-%d", n)
	if mode == "ignore-term" {
		id = fmt.Sprintf("L2-%d", n)
	}
	if !b.canProfile() {
		return
	}
	var summary string
	res, err := b.graceRun(cfg, n, graceOpts{bin: b.launchProf, beforeTerm: func(pid int) func() {
		data, wait, err := b.perfAttach("grace-"+mode+"-"+strconv.Itoa(n), pid)
		if err != nil {
			summary = "perf: " + err.Error()
			return nil
		}
		return func() {
			_ = wait()
			summary = summarize(data, "", 1)
		}
	}})
	if err != nil {
		summary = "profiled run failed: " + err.Error()
	} else {
		summary = fmt.Sprintf("SIGTERM -> all gone in %s under perf; %s", ms(res.d), summary)
	}
	b.rep.note("%s miss: the %d sessions are stopped concurrently on %d CPUs; each one's \"session stopped\" duration_ms is in the launcher's log (%s/launch-*.log). Profile of one more run, launcher only, from just before the SIGTERM to its exit (the ffl functions listed are where its CPU went): %s",
		id, n, runtime.NumCPU(), b.logs, summary)
}

// canProfile says whether the evidence profiles can be taken, noting once why not.
func (b *bench) canProfile() bool {
	if perfAvailable() && b.launchProf != "" && b.epilogProf != "" {
		return true
	}
	if !b.noProfileNoted {
		b.noProfileNoted = true
		b.rep.note("No profile taken for the misses: perf or the symbol-carrying builds (ffl-launch-prof, ffl-epilog-prof, made by scripts/bench.sh) are missing.")
	}
	return false
}

// readyFigures measures ffl's overhead on time-to-ready, and one real-xpra run for information.
func (b *bench) readyFigures() {
	var alone, ffl samples
	var readyField []float64
	reps := b.reps(21, 5)
	b.progress("time-to-ready: fakexpra alone vs ffl-launch run, %d runs each, interleaved", reps)
	for i := 0; i < reps+1; i++ {
		runFakexpra := func() {
			d, err := b.fakexpraReadyRun()
			if err != nil {
				b.rep.note("fakexpra ready run %d failed: %v", i, err)
				return
			}
			if i > 0 { // the first round warms caches
				alone = append(alone, d)
			}
		}
		runFFL := func() {
			d, rf, err := b.fflReadyRun(b.cfgCompliant, 60*time.Second)
			if err != nil {
				b.rep.note("ffl ready run %d failed: %v", i, err)
				return
			}
			if i > 0 {
				ffl = append(ffl, d)
				readyField = append(readyField, rf)
			}
		}
		if i%2 == 0 {
			runFakexpra()
			runFFL()
		} else {
			runFFL()
			runFakexpra()
		}
	}
	b.rep.add(row{"L3a", "Time to ready, fakexpra alone (exec -> first HTTP 200, polled every 1 ms)", alone.summary(), "reference", resInfo})
	b.rep.add(row{"L3b", "Time to ready, `ffl-launch run --sessions 1 --json` with fakexpra (exec -> JSON line printed)", ffl.summary(), "reference", resInfo})
	if len(alone) == 0 || len(ffl) == 0 {
		b.rep.add(row{"L3", "ffl's overhead on time-to-ready (L3b - L3a, medians)", "no successful run", "< 20 ms", resError})
	} else {
		over := ffl.median() - alone.median()
		b.rep.add(row{"L3", "ffl's overhead on time-to-ready beyond xpra's readiness (median L3b - median L3a)", ms(over), "< 20 ms", verdict(over < 20*time.Millisecond)})
		var rf samples
		for _, v := range readyField {
			rf = append(rf, time.Duration(v*float64(time.Millisecond)))
		}
		if over >= 20*time.Millisecond {
			b.readyEvidence(over, rf.median(), alone.median())
		}
		b.rep.note("L3: runs interleaved (alternating order), first round discarded as warm-up; fakexpra gets the same options and marker as under ffl. ffl's own window_ms log field (xpra started -> session ready; with fakexpra: HTTP 200 on its socket) in the L3b runs: %s.", rf.summary())
	}
}

// realSessionFigures measures the real sessions (xpra + firefox-esr) when both are installed.
func (b *bench) realSessionFigures() {
	if !b.realSessions() {
		b.rep.add(row{"L5", "Real session (xpra + firefox-esr)", "xpra or firefox-esr not installed", "information", resInfo})
		return
	}
	b.sessionFigures()
}

// realSessions says whether xpra and firefox-esr are installed.
func (b *bench) realSessions() bool {
	_, err1 := exec.LookPath("xpra")
	_, err2 := exec.LookPath("firefox-esr")
	return err1 == nil && err2 == nil
}

// readyEvidence profiles one more (untimed) `ffl-launch run --sessions 1` with the
// symbol-carrying build, from exec to its JSON line (perf's CLOCK_MONOTONIC window).
func (b *bench) readyEvidence(over, readyMS, alone time.Duration) {
	if !b.canProfile() {
		return
	}
	job := b.nextJob()
	lay := b.layout(job)
	defer func() {
		b.killMarked(lay.JobMarkerPrefix())
		for _, d := range append(lay.RuntimeJobDirs(), lay.HomeJobDir()) {
			_ = os.RemoveAll(d)
		}
	}()
	cmd, data := b.profiled("ready", true, b.launchProf, "run", "--sessions", "1", "--json")
	cmd.Env = b.userEnv("FFL_CONFIG="+b.cfgCompliant, "SLURM_JOB_ID="+job, "SLURMD_NODENAME="+b.o.node)
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	logf, err := os.Create(filepath.Join(b.logs, "ready-profile.log"))
	if err != nil {
		return
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = w, logf
	start := monotonic()
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		b.rep.note("L3 profile: %v", err)
		return
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, r)
		r.Close()
	}()
	var end string
	select {
	case <-line:
		end = monotonic()
	case <-time.After(60 * time.Second):
	}
	// setpriv exec'd into the launcher: it is perf's child.
	if kids, err := proc.Children(cmd.Process.Pid); err == nil {
		for _, k := range kids {
			_ = proc.Signal(k, unix.SIGTERM)
		}
	}
	_ = cmd.Wait()
	if end == "" {
		b.rep.note("L3 profile: the profiled launcher printed no session within 60s")
		return
	}
	inSession := readyMS - alone
	b.rep.note("L3 miss: ffl's own window_ms (xpra started -> ready, median %s) contains fakexpra's own start (L3a, %s), so %s of the %s overhead is spent inside the session's start (its directories and files, the readiness polling, recording its processes) and %s in the launcher's start-up before it and the output after. Profile of one more run, exec -> JSON line, launcher only (the ffl functions listed are where its CPU went): %s",
		ms(readyMS), ms(alone), ms(inSession), ms(over), ms(over-inSession), summarize(data, start+","+end, 1, "ffl-launch-prof"))
}
