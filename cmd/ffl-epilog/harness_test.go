package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/faketree/ftest"
	"github.com/ffl-hpc/ffl/internal/reclaimtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// The binaries under test, built once by TestMain (as root) into a directory every user may
// enter: the Epilog re-executes itself as the job's user.
var epilogBin, faketreeBin, hostileBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Geteuid() != 0 {
			return m.Run() // every test skips
		}
		bins, cleanup, err := testutil.BuildMain("github.com/ffl-hpc/ffl/cmd/ffl-epilog",
			"github.com/ffl-hpc/ffl/internal/faketree", "github.com/ffl-hpc/ffl/internal/hostile")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer cleanup()
		epilogBin, faketreeBin, hostileBin = bins[0], bins[1], bins[2]
		return m.Run()
	}())
}

type testUser struct {
	name     string
	uid, gid int
	home     string
}

// IDs makes testUser a testutil.Owner.
func (u testUser) IDs() (int, int) { return u.uid, u.gid }

func (u testUser) cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
}

// ensureUser is reclaimtest.EnsureUserHome as this package's testUser.
func ensureUser(t testing.TB, name, home string) testUser {
	t.Helper()
	u := reclaimtest.EnsureUserHome(t, name, home)
	return testUser{name: u.Name, uid: u.UID, gid: u.GID, home: u.Home}
}

// harness is one test's private world: runtime root, temp dir, X dir, config, log file, and a
// unique node name and state dir name, so tests share the test users' homes without meeting.
type harness struct {
	t                              *testing.T
	root, runtime, temp, xdir      string
	conf, logFile, node, stateName string
	user, other                    testUser
	bootID                         string
}

func newHarness(t *testing.T, extraConfig string) *harness {
	t.Helper()
	return newHarnessFor(t, extraConfig, "ffltest1", "ffltest2")
}

// newHarnessFor is newHarness with the job's user and the other user named.
func newHarnessFor(t *testing.T, extraConfig, userName, otherName string) *harness {
	t.Helper()
	testutil.RequireRoot(t)
	h := &harness{t: t,
		user:  ensureUser(t, userName, "/var/tmp/ffltest-homes/"+userName),
		other: ensureUser(t, otherName, "/var/tmp/ffltest-homes/"+otherName),
	}
	h.root = t.TempDir()
	testutil.Must(t, os.Chmod(filepath.Dir(h.root), 0o755))
	testutil.Must(t, os.Chmod(h.root, 0o755))
	h.runtime = filepath.Join(h.root, "run", "ffl")
	testutil.Must(t, os.MkdirAll(h.runtime, 0o755))
	testutil.Must(t, os.Chmod(filepath.Dir(h.runtime), 0o755))
	h.temp = filepath.Join(h.root, "tmp")
	testutil.Must(t, os.Mkdir(h.temp, 0o755))
	testutil.Must(t, os.Chmod(h.temp, 0o777|os.ModeSticky))
	h.xdir = filepath.Join(h.root, "x")
	testutil.Must(t, os.Mkdir(h.xdir, 0o755))
	testutil.Must(t, os.Chmod(h.xdir, 0o777|os.ModeSticky))
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	h.node = "e" + hex.EncodeToString(rnd[:])
	h.stateName = ".ffl-test-" + h.node
	h.logFile = filepath.Join(t.TempDir(), "epilog.log") // outside the world the tests snapshot
	h.conf = filepath.Join(h.root, "ffl.toml")
	cfg := fmt.Sprintf("state_dir = %q\nruntime_dir = %q\ntemp_dir = %q\ncleanup_timeout = \"300ms\"\n%s\n[epilog]\nsyslog = false\nlog_file = %q\n",
		"~/"+h.stateName, h.runtime, h.temp, "", h.logFile)
	if extraConfig != "" {
		cfg += extraConfig + "\n"
	}
	testutil.Must(t, os.WriteFile(h.conf, []byte(cfg), 0o644))
	id, err := proc.BootID()
	testutil.Must(t, err)
	h.bootID = id
	t.Cleanup(func() {
		for _, u := range []testUser{h.user, h.other} {
			if !strings.HasPrefix(u.home, "/nonexistent") {
				os.RemoveAll(filepath.Join(u.home, h.stateName))
				os.RemoveAll(filepath.Join(u.home, h.stateName+".aside")) // moved aside by symlink cases
			}
		}
	})
	return h
}

// stateDir is u's state dir under this harness's config.
func (h *harness) stateDir(u testUser) string { return filepath.Join(u.home, h.stateName) }

func (h *harness) layout(u testUser, job string) layout.Layout {
	return layout.Layout{StateDir: h.stateDir(u), RuntimeDir: h.runtime, TempDir: h.temp, UID: u.uid, Node: h.node, JobKey: job}
}

// slurmEnv is the Epilog's environment as slurmd gives it: SLURM_* only, no PATH, HOME, USER.
func (h *harness) slurmEnv(job string, u testUser) []string {
	return []string{
		"SLURMD_NODENAME=" + h.node, "SLURM_CLUSTER_NAME=testcluster", "SLURM_CONF=/etc/slurm/slurm.conf",
		"SLURM_JOBID=" + job, "SLURM_JOB_ID=" + job, "SLURM_JOB_UID=" + strconv.Itoa(u.uid),
		"SLURM_JOB_GID=" + strconv.Itoa(u.gid), "SLURM_JOB_USER=" + u.name, "SLURM_JOB_PARTITION=debug",
		"SLURM_JOB_NUM_NODES=1", "SLURM_NODELIST=" + h.node, "SLURM_UID=" + strconv.Itoa(u.uid),
		"SLURM_SCRIPT_CONTEXT=epilog_slurmd", "SLURM_JOB_EXIT_CODE=0", "SLURM_JOB_EXIT_CODE2=0:0", "SLURM_JOB_DERIVED_EC=0",
	}
}

// result is one run of the binary.
type result struct {
	code   int
	stderr string
	log    string // the whole log file after the run
	took   time.Duration
}

// run runs ffl-epilog (with --config and the test X dir) in env, from a directory like slurmd's.
func (h *harness) run(env []string, args ...string) result {
	h.t.Helper()
	return h.runWith(env, nil, args...)
}

// runWith is run with extra descriptors inherited (fd 3 and up), as slurmd or a shell may pass.
func (h *harness) runWith(env []string, extra []*os.File, args ...string) result {
	h.t.Helper()
	return h.runCred(env, extra, nil, args...)
}

// runAs is run with u's credentials, as slurmstepd can start the Epilog (pkg/hook, NotRoot).
func (h *harness) runAs(u testUser, env []string, args ...string) result {
	h.t.Helper()
	return h.runCred(env, nil, u.cred(), args...)
}

// runCred is runWith as cred (nil: as the test, root).
func (h *harness) runCred(env []string, extra []*os.File, cred *syscall.Credential, args ...string) result {
	h.t.Helper()
	full := append([]string{"--config", h.conf, "--x-dir", h.xdir}, args...)
	// A bug that blocks (a FIFO opened for reading, a hung helper) must fail the test, not hang it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, epilogBin, full...)
	cmd.Env = env
	cmd.Dir = h.root
	cmd.ExtraFiles = extra
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatalf("run ffl-epilog: %v", err)
	}
	data, _ := os.ReadFile(h.logFile)
	r := result{code: code, stderr: stderr.String(), log: string(data), took: took}
	h.t.Logf("ffl-epilog %v: exit %d after %s\n%s", args, code, took, r.log)
	return r
}

// epilog runs the Epilog for job of u and requires exit 0 and a summary line.
func (h *harness) epilog(job string, u testUser) result {
	h.t.Helper()
	r := h.run(h.slurmEnv(job, u))
	if r.code != 0 {
		h.t.Errorf("exit status %d, want 0; stderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.log, "epilog done") || !strings.Contains(r.log, "job="+job) {
		h.t.Errorf("no summary line for job %s in the log", job)
	}
	return r
}

// deadID names no process.
var deadID = proc.Identity{PID: 999_999_999, StartTime: 1}

// session lays out one session of job for u (node-local dir with state.json, home dir with a
// password and a profile) and returns (node-local session dir, home session dir).
func (h *harness) session(u testUser, job string, port int, fallback bool, procs []proc.Identity, display string) (string, string) {
	h.t.Helper()
	l := h.layout(u, job)
	jobDir := l.PreferredRuntimeJobDir()
	if fallback {
		jobDir = l.FallbackRuntimeJobDir()
	}
	return h.sessionIn(u, job, port, jobDir, procs, display)
}

// sessionIn is session with the node-local job dir given (a private fallback parent's, say).
func (h *harness) sessionIn(u testUser, job string, port int, jobDir string, procs []proc.Identity, display string) (string, string) {
	t := h.t
	t.Helper()
	l := h.layout(u, job)
	rt := filepath.Join(jobDir, layout.SessionDirName(port))
	for _, d := range []string{"run", "xpra", "tmp", "cache"} {
		testutil.MkdirAs(t, filepath.Join(rt, d), u, 0o700)
	}
	if procs == nil {
		procs = []proc.Identity{}
	}
	st := layout.State{Schema: layout.StateSchema, Job: job, Node: h.node, BootID: h.bootID, UID: u.uid, User: u.name,
		Port: port, Display: display, Created: time.Now().UTC(), Marker: l.Marker(port), SessionDir: l.HomeSessionDir(port),
		RuntimeDir: rt, Supervisor: deadID, Processes: procs}
	data, err := st.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(rt, layout.StateFile), u, data)
	sup := layout.Supervisor{Schema: layout.StateSchema, Job: job, Node: h.node, BootID: h.bootID, Process: deadID, Started: time.Now().UTC()}
	data, err = sup.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(jobDir, layout.SupervisorFile), u, data)
	home := l.HomeSessionDir(port)
	testutil.MkdirAs(t, filepath.Join(home, "profile"), u, 0o700)
	testutil.WriteAs(t, filepath.Join(home, layout.PasswordFile), u, []byte("secret"))
	testutil.WriteAs(t, filepath.Join(home, "profile", "prefs.js"), u, []byte("user_pref(\"a\", 1);\n"))
	return rt, home
}

// tree starts a faketree as u carrying marker, with a TERM-ignoring child and a daemon.
func (h *harness) tree(u testUser, marker string) []proc.Identity {
	h.t.Helper()
	args := []string{"-ignore-term", "-daemon"}
	if marker != "" {
		args = append(args, "-marker", layout.MarkerVar+"="+marker)
	}
	tr := ftest.Start(h.t, faketreeBin, ftest.Options{Args: args, Credential: u.cred(), Env: []string{"PATH=/usr/bin:/bin"}})
	var out []proc.Identity
	for _, pid := range tr.PIDs() {
		id, err := proc.Lookup(pid)
		testutil.Must(h.t, err)
		out = append(out, id)
	}
	return out
}

// canary is a process that must not be signalled: a shell that writes the name of every
// catchable signal it gets to a file (and a SIGKILL shows as its death).
type canary struct {
	id  proc.Identity
	log string
}

// canary starts a canary as u (root when u is nil) with extra environment (a marker, say).
func (h *harness) canary(u *testUser, env ...string) *canary {
	t := h.t
	t.Helper()
	dir, err := os.MkdirTemp(h.root, "canary-")
	testutil.Must(t, err)
	testutil.Must(t, os.Chmod(dir, 0o777))
	log := filepath.Join(dir, "signals")
	script := `for s in TERM HUP INT USR1 USR2 QUIT; do trap "echo $s >> $LOG" $s; done; : > $LOG.ready; while :; do sleep 0.05; done`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "LOG=" + log}, env...)
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred()}
	}
	testutil.Must(t, cmd.Start())
	pidfd, err := pidfdOpen(cmd.Process.Pid)
	testutil.Must(t, err)
	t.Cleanup(func() {
		_ = pidfdKill(pidfd)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !testutil.Exists(log + ".ready") {
		if time.Now().After(deadline) {
			t.Fatal("canary did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	id, err := proc.Lookup(cmd.Process.Pid)
	testutil.Must(t, err)
	return &canary{id: id, log: log}
}

// untouched fails unless the canary is alive and got no signal.
func (c *canary) untouched(t testing.TB, what string) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // a trap runs between two sleeps of the loop
	if !c.id.Alive() {
		t.Errorf("%s (%s) was killed", what, c.id)
	}
	if data, _ := os.ReadFile(c.log); len(data) > 0 {
		t.Errorf("%s (%s) got signals: %q", what, c.id, data)
	}
}

func pidfdOpen(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

func pidfdKill(fd int) error {
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}
