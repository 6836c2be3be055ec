package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/hostile/htest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

var prologBin, hostileBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Geteuid() != 0 {
			return m.Run()
		}
		bins, cleanup, err := testutil.BuildMain("github.com/ffl-hpc/ffl/cmd/ffl-prolog", "github.com/ffl-hpc/ffl/internal/hostile")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
		prologBin, hostileBin = bins[0], bins[1]
		return m.Run()
	}())
}

type env struct {
	t                               *testing.T
	root, runtime, temp, xdir, conf string
	logFile, node, stateName, seen  string
	uid, gid                        int
	name, home                      string
}

func setupEnv(t *testing.T) *env {
	t.Helper()
	return setupEnvFor(t, "ffltest1", "")
}

// setupEnvFor is setupEnv for the user name, with extra lines for the [epilog] table.
func setupEnvFor(t *testing.T, name, extraConfig string) *env {
	t.Helper()
	testutil.RequireRoot(t, "runs ffl-prolog as root for a test user")
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "-M", "-d", "/var/tmp/ffltest-homes/"+name, "-s", "/usr/sbin/nologin", name).CombinedOutput()
		if _, lerr := user.Lookup(name); lerr != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
	}
	u, err := user.Lookup(name)
	testutil.Must(t, err)
	e := &env{t: t, name: name, home: u.HomeDir}
	e.uid, _ = strconv.Atoi(u.Uid)
	e.gid, _ = strconv.Atoi(u.Gid)
	testutil.Must(t, os.MkdirAll(e.home, 0o700))
	testutil.Must(t, os.Chown(e.home, e.uid, e.gid))
	_ = os.Chmod(filepath.Dir(e.home), 0o755)
	e.root = t.TempDir()
	testutil.Must(t, os.Chmod(filepath.Dir(e.root), 0o755))
	testutil.Must(t, os.Chmod(e.root, 0o755))
	testutil.Must(t, os.Mkdir(filepath.Join(e.root, "run"), 0o755))
	e.runtime = filepath.Join(e.root, "run", "ffl") // missing: the Prolog makes it
	e.temp = filepath.Join(e.root, "tmp")
	e.xdir = filepath.Join(e.root, "x")
	for _, d := range []string{e.temp, e.xdir} {
		testutil.Must(t, os.Mkdir(d, 0o755))
		testutil.Must(t, os.Chmod(d, 0o777|os.ModeSticky))
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	e.node = "p" + hex.EncodeToString(rnd[:])
	e.stateName = ".ffl-test-" + e.node
	t.Cleanup(func() { os.RemoveAll(filepath.Join(e.home, e.stateName)) })
	e.logFile = filepath.Join(t.TempDir(), "prolog.log")
	e.conf = filepath.Join(e.root, "ffl.toml")
	e.seen = filepath.Join(e.root, "seen")
	testutil.Must(t, os.WriteFile(e.conf, []byte(fmt.Sprintf("state_dir = %q\nruntime_dir = %q\ntemp_dir = %q\n[epilog]\nsyslog = false\nlog_file = %q\nseen_dir = %q\n%s\n",
		"~/"+e.stateName, e.runtime, e.temp, e.logFile, e.seen, extraConfig)), 0o644))
	return e
}

func (e *env) slurmEnv(job string) []string {
	return []string{"SLURMD_NODENAME=" + e.node, "SLURM_JOB_ID=" + job, "SLURM_JOBID=" + job,
		"SLURM_JOB_UID=" + strconv.Itoa(e.uid), "SLURM_JOB_GID=" + strconv.Itoa(e.gid), "SLURM_JOB_USER=" + e.name,
		"SLURM_SCRIPT_CONTEXT=prolog_slurmd", "SLURM_CLUSTER_NAME=test"}
}

func (e *env) run(environ []string, args ...string) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prologBin, append([]string{"--config", e.conf, "--x-dir", e.xdir}, args...)...)
	cmd.Env = environ
	cmd.Dir = e.root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	log, _ := os.ReadFile(e.logFile)
	e.t.Logf("ffl-prolog: exit %d\n%s", code, log)
	return code, string(log)
}

func statOf(t *testing.T, p string) (os.FileInfo, *syscall.Stat_t) {
	t.Helper()
	fi, err := os.Lstat(p)
	testutil.Must(t, err)
	return fi, fi.Sys().(*syscall.Stat_t)
}

func TestPrologPreparesTheNode(t *testing.T) {
	e := setupEnv(t)
	code, log := e.run(e.slurmEnv("77"))
	if code != 0 || !strings.Contains(log, "prolog done") {
		t.Fatalf("exit %d", code)
	}
	fi, st := statOf(t, e.runtime)
	if st.Uid != 0 || fi.Mode().Perm() != 0o755 || !fi.IsDir() {
		t.Errorf("runtime root: %v uid %d", fi.Mode(), st.Uid)
	}
	fi, st = statOf(t, filepath.Join(e.runtime, "job-77"))
	if int(st.Uid) != e.uid || int(st.Gid) != e.gid || fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Errorf("job dir: %v uid %d gid %d", fi.Mode(), st.Uid, st.Gid)
	}
	fi, st = statOf(t, filepath.Join(e.xdir, ".X11-unix"))
	if st.Uid != 0 || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf(".X11-unix: %v uid %d", fi.Mode(), st.Uid)
	}
	// Again for the same job (requeued): fine, unchanged.
	if code, _ := e.run(e.slurmEnv("77")); code != 0 {
		t.Errorf("second run: exit %d", code)
	}
}

// TestPrologRefusesForeignThings: a symlink as the runtime root and a user's .X11-unix are left
// alone and reported; exit 0. A bad environment: nothing done, exit 0.
func TestPrologRefusesForeignThings(t *testing.T) {
	e := setupEnv(t)
	target := filepath.Join(e.root, "elsewhere")
	testutil.Must(t, os.Mkdir(target, 0o755))
	testutil.Must(t, os.Symlink(target, e.runtime))
	testutil.Must(t, os.Mkdir(filepath.Join(e.xdir, ".X11-unix"), 0o700))
	testutil.Must(t, os.Chown(filepath.Join(e.xdir, ".X11-unix"), e.uid, e.gid))
	code, log := e.run(e.slurmEnv("78"))
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("created %v through the symlink", ents)
	}
	if fi, st := statOf(t, filepath.Join(e.xdir, ".X11-unix")); int(st.Uid) != e.uid || fi.Mode().Perm() != 0o700 {
		t.Error("the user's .X11-unix was changed")
	}
	for _, want := range []string{"runtime dir", "symlink", ".X11-unix exists but is not root's"} {
		if !strings.Contains(log, want) {
			t.Errorf("no log line says %q", want)
		}
	}
	bad := append(e.slurmEnv("79"), "SLURM_JOB_UID=-5")
	if code, log := e.run(bad); code != 0 || !strings.Contains(log, "SLURM_JOB_UID") {
		t.Errorf("bad environment: exit %d, log names SLURM_JOB_UID: %v", code, strings.Contains(log, "SLURM_JOB_UID"))
	}
}

// TestPrologSweepsStaleSessions: the user's dead job on this node goes (as the user, through the
// re-executed helper), the new job's dir is made.
func TestPrologSweepsStaleSessions(t *testing.T) {
	e := setupEnv(t)
	old, home := e.staleJob(t, "70")
	code, log := e.run(e.slurmEnv("80"))
	if code != 0 || !strings.Contains(log, "swept=true") {
		t.Fatalf("exit %d", code)
	}
	for _, p := range []string{old, filepath.Dir(home)} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s not removed", p)
		}
	}
	if _, err := os.Lstat(filepath.Join(e.runtime, "job-80")); err != nil {
		t.Error("new job dir missing")
	}
}

// TestPrologAfterReboot: a reboot wiped /run and /tmp, so nothing node-local says the user had
// sessions here, but the home still holds this node's tree of a job the crash ended. The
// user's first Prolog in the new boot (its seen record names the old boot) sweeps it; a later
// Prolog in the same boot does not sweep again; another node's tree in the same home stays.
func TestPrologAfterReboot(t *testing.T) {
	e := setupEnv(t)
	home := filepath.Join(e.home, e.stateName, "sessions", e.node, "job-71", "session-8001")
	other := filepath.Join(e.home, e.stateName, "sessions", "othernode", "job-71", "session-8001")
	for _, d := range []string{home, other} {
		testutil.Must(t, os.MkdirAll(d, 0o700))
	}
	testutil.Must(t, filepath.Walk(filepath.Join(e.home, e.stateName), func(q string, _ os.FileInfo, err error) error {
		testutil.Must(t, err)
		return os.Lchown(q, e.uid, e.gid)
	}))
	// Last active before the reboot (the Prolog's sweep leaves trees younger than 2 minutes).
	past := time.Now().Add(-time.Hour)
	for _, d := range []string{home, filepath.Dir(home), other, filepath.Dir(other)} {
		testutil.Must(t, os.Chtimes(d, past, past))
	}
	// The user's record from the boot before.
	rec := filepath.Join(e.seen, e.node)
	testutil.Must(t, os.MkdirAll(rec, 0o700))
	testutil.Must(t, os.WriteFile(filepath.Join(rec, strconv.Itoa(e.uid)), []byte("00000000-0000-0000-0000-000000000000\n"), 0o600))

	code, log := e.run(e.slurmEnv("81"))
	if code != 0 || !strings.Contains(log, "swept=true") {
		t.Fatalf("first Prolog after the reboot: exit %d, not swept", code)
	}
	if _, err := os.Lstat(filepath.Dir(home)); err == nil {
		t.Errorf("the stale home tree of this node survived: %s", filepath.Dir(home))
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("another node's tree was touched: %v", err)
	}
	boot, err := proc.BootID()
	testutil.Must(t, err)
	if b, err := os.ReadFile(filepath.Join(rec, strconv.Itoa(e.uid))); err != nil || strings.TrimSpace(string(b)) != boot {
		t.Errorf("seen record %q, %v; want this boot %s", b, err, boot)
	}
	testutil.Must(t, os.RemoveAll(filepath.Join(e.runtime, "job-81")))
	if _, log := e.run(e.slurmEnv("82")); !strings.Contains(log, "job=82") || strings.Contains(lineOf(log, "job=82"), "swept=true") {
		t.Errorf("a second Prolog in the same boot swept again: %s", lineOf(log, "job=82"))
	}
}

// lineOf returns the last log line containing s.
func lineOf(log, s string) string {
	out := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			out = l
		}
	}
	return out
}

// staleJob lays out a dead job of the user (runtime dir with a supervisor record naming a dead
// process, a home session dir) and returns its runtime dir and home session dir.
func (e *env) staleJob(t *testing.T, job string) (string, string) {
	t.Helper()
	_ = os.Mkdir(e.runtime, 0o755)
	boot, err := proc.BootID()
	testutil.Must(t, err)
	old := filepath.Join(e.runtime, "job-"+job)
	sess := filepath.Join(old, "session-8001")
	home := filepath.Join(e.home, e.stateName, "sessions", e.node, "job-"+job, "session-8001")
	for _, d := range []string{sess, home} {
		testutil.Must(t, os.MkdirAll(d, 0o700))
	}
	sup, _ := json.Marshal(map[string]any{"schema": 1, "job": job, "node": e.node, "boot_id": boot,
		"process": map[string]any{"pid": 999999999, "start_time": 1, "uid": e.uid}, "socket": "", "started": time.Now()})
	testutil.Must(t, os.WriteFile(filepath.Join(old, layout.SupervisorFile), sup, 0o600))
	testutil.Must(t, os.WriteFile(filepath.Join(home, "password"), []byte("x"), 0o600))
	for _, p := range []string{old, filepath.Join(e.home, e.stateName)} {
		testutil.Must(t, filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
			testutil.Must(t, err)
			return os.Lchown(q, e.uid, e.gid)
		}))
	}
	return old, home
}

// TestPrologUnderAttack: while the Prolog sweeps the user's stale job in its helper, a process
// of the user makes every read of its environment block (the marker scan's) and another copies
// the helper's descriptors. The Prolog still returns within its timeout plus 1 s, exits 0,
// writes its summary line, and the new job's dir is made.
func TestPrologUnderAttack(t *testing.T) {
	e := setupEnvFor(t, "fflhostile", "")
	old, _ := e.staleJob(t, "90")
	_, err := htest.Start(t, hostileBin, e.uid, e.gid, e.root, "-mode", "fuse-environ")
	if errors.Is(err, htest.ErrUnsupported) {
		t.Skipf("this attack needs unprivileged user namespaces and /dev/fuse: %v", err)
	}
	testutil.Must(t, err, "arm the trap")
	_, err = htest.Start(t, hostileBin, e.uid, e.gid, e.root, "-mode", "grab", "-exe", prologBin)
	testutil.Must(t, err, "start the grabber")
	const timeout = 3 * time.Second
	t0 := time.Now()
	code, log := e.run(e.slurmEnv("91"), "--timeout", timeout.String())
	took := time.Since(t0)
	if took > timeout+time.Second || code != 0 || !strings.Contains(log, "prolog done") || !strings.Contains(log, "unfinished=") {
		t.Errorf("exit %d after %s (bound %s), summary line: %v", code, took, timeout+time.Second, strings.Contains(log, "prolog done"))
	}
	if _, err := os.Lstat(filepath.Join(e.runtime, "job-91")); err != nil {
		t.Error("new job dir missing")
	}
	if _, err := os.Lstat(old); err == nil {
		t.Errorf("the stale %s was not removed (the scan's cut does not cost the directories)", old)
	}
}

// TestPrologNotRoot: a Prolog started with the job user's credentials (pkg/hook, NotRoot) makes
// nothing (no runtime root, no .X11-unix of the user's), exits 0 and says why on stderr.
func TestPrologNotRoot(t *testing.T) {
	e := setupEnv(t)
	cmd := exec.Command(prologBin, "--config", e.conf, "--x-dir", e.xdir)
	cmd.Env = e.slurmEnv("78")
	cmd.Dir = e.root
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(e.uid), Gid: uint32(e.gid)}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ffl-prolog as uid %d: %v (want exit 0); stderr: %s", e.uid, err, stderr.String())
	}
	want := fmt.Sprintf("the Prolog not running as root but as uid %d", e.uid)
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), `msg="prolog done, with problems`) {
		t.Errorf("stderr lacks %q and the summary line:\n%s", want, stderr.String())
	}
	for _, p := range []string{e.runtime, filepath.Join(e.xdir, ".X11-unix")} {
		if testutil.Exists(p) {
			t.Errorf("%s was made by a Prolog not running as root", p)
		}
	}
}
