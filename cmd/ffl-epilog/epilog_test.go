package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// TestFastPath: a job that never ran ffl leaves only the Prolog's empty dir; the Epilog removes
// it without looking at the user or the home.
func TestFastPath(t *testing.T) {
	h := newHarness(t, "")
	dir := h.layout(h.user, jobA).PreferredRuntimeJobDir()
	testutil.MkdirAs(t, dir, h.user, 0o700)
	before := testutil.Snapshot(t, h.world()...)
	r := h.epilog(jobA, h.user)
	if testutil.Exists(dir) {
		t.Error("the Prolog's dir was not removed")
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), dir)
	if !strings.Contains(r.log, "fast=true") || !strings.Contains(r.log, "errors=0") {
		t.Error("summary line does not say fast=true, errors=0")
	}
	// Nothing at all (no Prolog configured, no ffl): still exit 0, fast.
	r = h.epilog("501", h.user)
	if !strings.Contains(r.log, "job=501") {
		t.Error("no summary for a job without anything")
	}
}

// TestManualRun: an admin cleans up after a job whose Epilog did not run.
func TestManualRun(t *testing.T) {
	h := newHarness(t, "")
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, true, procs, "")
	env := []string{"SLURMD_NODENAME=" + h.node, "PATH=/usr/bin:/bin"}
	r := h.run(env, "--job", jobA, "--user", h.user.name)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	testutil.WaitGone(t, procs)
	for _, p := range h.jobPaths(h.user, jobA) {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	for name, args := range map[string][]string{
		"job without user": {"--job", jobA},
		"user without job": {"--user", h.user.name},
		"bad job":          {"--job", "../x", "--user", h.user.name},
		"unknown user":     {"--job", jobA, "--user", "no-such-user-ffl"},
		"unknown flag":     {"--bogus"},
		"stray argument":   {"now"},
	} {
		if r := h.run(env, args...); r.code != exitUsage {
			t.Errorf("%s: exit %d, want %d (a human gave bad flags)", name, r.code, exitUsage)
		}
	}
}

// TestLogFileRefused: a log file that is a symlink (someone planted it) is not opened; the
// Epilog still runs and exits 0, and says so on stderr.
func TestLogFileRefused(t *testing.T) {
	h := newHarness(t, "")
	victim := filepath.Join(h.root, "victim")
	testutil.Must(t, os.WriteFile(victim, []byte("keep"), 0o644))
	testutil.Must(t, os.Symlink(victim, h.logFile))
	r := h.run(h.slurmEnv(jobA, h.user))
	if r.code != 0 {
		t.Errorf("exit %d", r.code)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep" {
		t.Errorf("wrote through the symlink: %q", data)
	}
	if !strings.Contains(r.stderr, "log file") || !strings.Contains(r.stderr, "epilog done") {
		t.Errorf("stderr does not report the log file problem and the summary: %s", r.stderr)
	}
}

// TestBrokenConfig: an unusable configuration is reported and the defaults are used; exit 0.
func TestBrokenConfig(t *testing.T) {
	h := newHarness(t, "")
	testutil.Must(t, os.WriteFile(h.conf, []byte("runtime_dir = 42\nbogus = true\n"), 0o644))
	r := h.run(h.slurmEnv("4294967290", h.user))
	if r.code != 0 || !strings.Contains(r.stderr, "configuration unusable") {
		t.Errorf("exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestFailOnUnkillable: epilog.fail_on_unkillable is accepted (existing configs keep loading)
// and ignored, with a warning: a user can make a process survive SIGKILL at will, so it must not
// decide the exit status that drains the node.
func TestFailOnUnkillable(t *testing.T) {
	h := newHarness(t, "fail_on_unkillable = true")
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, "")
	r := h.epilog(jobA, h.user)
	testutil.WaitGone(t, procs)
	if !strings.Contains(r.log, "left=0") || !strings.Contains(r.log, "fail_on_unkillable is ignored") {
		t.Error("summary does not say left=0, or no line says fail_on_unkillable is ignored")
	}
}

// TestSweepCommand: `ffl-epilog sweep` removes an old stale session of a user (as that user) and
// leaves a live one; --dry-run changes nothing.
func TestSweepCommand(t *testing.T) {
	h := newHarness(t, "")
	stale := h.tree(h.user, h.layout(h.user, "700").Marker(8001))
	h.session(h.user, "700", 8001, false, stale, "")
	live := h.tree(h.other, h.layout(h.other, "701").Marker(8001))
	h.session(h.other, "701", 8001, false, live, "")
	// Job 701's supervisor is alive: a live process of its user.
	sup := live[0]
	rec := layout.Supervisor{Schema: 1, Job: "701", Node: h.node, BootID: h.bootID, Process: sup, Started: time.Now()}
	data, _ := rec.Marshal()
	testutil.WriteAs(t, filepath.Join(h.layout(h.other, "701").PreferredRuntimeJobDir(), layout.SupervisorFile), h.other, data)
	for _, p := range h.jobPaths(h.user, "700") {
		old := time.Now().Add(-48 * time.Hour)
		_ = filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
			if err == nil {
				_ = os.Chtimes(q, old, old)
			}
			return nil
		})
	}
	env := []string{"PATH=/usr/bin:/bin"}
	before := testutil.Snapshot(t, h.world()...)
	r := h.run(env, "sweep", "--node", h.node, "--older-than", "24h", "--dry-run")
	if r.code != 0 {
		t.Fatalf("dry run: exit %d: %s", r.code, r.stderr)
	}
	testutil.AssertAlive(t, "dry run", stale)
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...))
	if strings.Count(r.log, "would remove") != 1 || !strings.Contains(r.log, "would remove job 700") {
		t.Error("dry run does not say, once, what it would remove")
	}
	r = h.run(env, "sweep", "--node", h.node, "--older-than", "24h")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	testutil.WaitGone(t, stale)
	testutil.AssertAlive(t, "live job of another user", live)
	for _, p := range h.jobPaths(h.user, "700") {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
	if !testutil.Exists(filepath.Join(h.layout(h.other, "701").PreferredRuntimeJobDir(), "session-8001")) {
		t.Error("live session removed")
	}
	if !strings.Contains(r.log, "sweep done") {
		t.Error("no sweep summary line")
	}
}

// TestMetricsRecorded: each run adds its counts to epilog.metrics_file.
func TestMetricsRecorded(t *testing.T) {
	dir := t.TempDir()
	prom := filepath.Join(dir, "ffl.prom")
	h := newHarness(t, "metrics_file = \""+prom+"\"")
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, "")
	h.epilog(jobA, h.user)
	h.epilog("501", h.user)
	data, err := os.ReadFile(prom)
	testutil.Must(t, err, "metrics file")
	for _, want := range []string{`ffl_runs_total{hook="epilog"} 2`, `ffl_jobs_with_leftovers_total{hook="epilog"} 1`, `ffl_sessions_cleaned_total{hook="epilog"} 1`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("metrics file lacks %q:\n%s", want, data)
		}
	}
}

// TestNotRoot: before Slurm 26.05, with PrologFlags=RunInJob, slurmstepd can start the Epilog
// with the job user's credentials (pkg/hook, NotRoot). The Epilog then changes nothing, signals
// nothing, exits 0 and says why and what removes the job's leftovers on stderr (slurmd logs it
// at SlurmdDebug=debug2), where the root-owned log file is out of its reach; the remedy it names,
// `--job --user` as root, removes everything. A manual run or a sweep not as root is refused as
// a usage error.
func TestNotRoot(t *testing.T) {
	h := newHarness(t, "")
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, "")
	before := testutil.Snapshot(t, h.world()...)
	logBefore, _ := os.ReadFile(h.logFile)
	r := h.runAs(h.user, h.slurmEnv(jobA, h.user))
	if r.code != 0 {
		t.Errorf("exit %d, want 0 (never drain the node)", r.code)
	}
	want := fmt.Sprintf("the Epilog not running as root but as uid %d", h.user.uid)
	for _, s := range []string{want, "ffl-epilog --job ID --user NAME", `msg="epilog done, with problems`, "job=" + jobA, `unfinished="processes,x-files,home,dirs"`} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	if r.log != string(logBefore) {
		t.Errorf("the root-owned log file changed:\n%s", r.log)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...))
	testutil.AssertAlive(t, "the session's processes after the Epilog as the user", procs)

	env := []string{"SLURMD_NODENAME=" + h.node, "PATH=/usr/bin:/bin"}
	for name, args := range map[string][]string{
		"manual run": {"--job", jobA, "--user", h.user.name},
		"sweep":      {"sweep"},
	} {
		if r := h.runAs(h.user, env, args...); r.code != exitUsage || !strings.Contains(r.stderr, "runs as root") {
			t.Errorf("%s as uid %d: exit %d, want %d and a line saying it runs as root; stderr: %s", name, h.user.uid, r.code, exitUsage, r.stderr)
		}
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...))

	if r := h.run(env, "--job", jobA, "--user", h.user.name); r.code != 0 {
		t.Fatalf("the remedy, as root: exit %d: %s", r.code, r.stderr)
	}
	testutil.WaitGone(t, procs)
	for _, p := range h.jobPaths(h.user, jobA) {
		if testutil.Exists(p) {
			t.Errorf("%s not removed by the remedy", p)
		}
	}
}
