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

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

var prologBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Geteuid() != 0 {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "ffl-prolog-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		_ = os.Chmod(dir, 0o755)
		prologBin = filepath.Join(dir, "ffl-prolog")
		cmd := exec.Command("go", "build", "-o", prologBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build ffl-prolog: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type env struct {
	t                               *testing.T
	root, runtime, temp, xdir, conf string
	logFile, node, stateName        string
	uid, gid                        int
	name, home                      string
}

func setupEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs ffl-prolog as root for a test user")
	}
	const name = "ffltest1"
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "-M", "-d", "/var/tmp/ffltest-homes/"+name, "-s", "/usr/sbin/nologin", name).CombinedOutput()
		if _, lerr := user.Lookup(name); lerr != nil {
			t.Fatalf("useradd: %v: %s", err, out)
		}
	}
	u, err := user.Lookup(name)
	must(t, err)
	e := &env{t: t, name: name, home: u.HomeDir}
	e.uid, _ = strconv.Atoi(u.Uid)
	e.gid, _ = strconv.Atoi(u.Gid)
	must(t, os.MkdirAll(e.home, 0o700))
	must(t, os.Chown(e.home, e.uid, e.gid))
	_ = os.Chmod(filepath.Dir(e.home), 0o755)
	e.root = t.TempDir()
	must(t, os.Chmod(filepath.Dir(e.root), 0o755))
	must(t, os.Chmod(e.root, 0o755))
	must(t, os.Mkdir(filepath.Join(e.root, "run"), 0o755))
	e.runtime = filepath.Join(e.root, "run", "ffl") // missing: the Prolog makes it
	e.temp = filepath.Join(e.root, "tmp")
	e.xdir = filepath.Join(e.root, "x")
	for _, d := range []string{e.temp, e.xdir} {
		must(t, os.Mkdir(d, 0o755))
		must(t, os.Chmod(d, 0o777|os.ModeSticky))
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	e.node = "p" + hex.EncodeToString(rnd[:])
	e.stateName = ".ffl-test-" + e.node
	t.Cleanup(func() { os.RemoveAll(filepath.Join(e.home, e.stateName)) })
	e.logFile = filepath.Join(t.TempDir(), "prolog.log")
	e.conf = filepath.Join(e.root, "ffl.toml")
	must(t, os.WriteFile(e.conf, []byte(fmt.Sprintf("state_dir = %q\nruntime_dir = %q\ntemp_dir = %q\n[epilog]\nsyslog = false\nlog_file = %q\n",
		"~/"+e.stateName, e.runtime, e.temp, e.logFile)), 0o644))
	return e
}

func (e *env) slurmEnv(job string) []string {
	return []string{"SLURMD_NODENAME=" + e.node, "SLURM_JOB_ID=" + job, "SLURM_JOBID=" + job,
		"SLURM_JOB_UID=" + strconv.Itoa(e.uid), "SLURM_JOB_GID=" + strconv.Itoa(e.gid), "SLURM_JOB_USER=" + e.name,
		"SLURM_SCRIPT_CONTEXT=prolog_slurmd", "SLURM_CLUSTER_NAME=test"}
}

func (e *env) run(environ []string) (int, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prologBin, "--config", e.conf, "--x-dir", e.xdir)
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
	must(t, err)
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
	must(t, os.Mkdir(target, 0o755))
	must(t, os.Symlink(target, e.runtime))
	must(t, os.Mkdir(filepath.Join(e.xdir, ".X11-unix"), 0o700))
	must(t, os.Chown(filepath.Join(e.xdir, ".X11-unix"), e.uid, e.gid))
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
	must(t, os.Mkdir(e.runtime, 0o755))
	boot, err := proc.BootID()
	must(t, err)
	old := filepath.Join(e.runtime, "job-70")
	sess := filepath.Join(old, "session-8001")
	home := filepath.Join(e.home, e.stateName, "sessions", e.node, "job-70", "session-8001")
	for _, d := range []string{sess, home} {
		must(t, os.MkdirAll(d, 0o700))
	}
	sup, _ := json.Marshal(map[string]any{"schema": 1, "job": "70", "node": e.node, "boot_id": boot,
		"process": map[string]any{"pid": 999999999, "start_time": 1, "uid": e.uid}, "socket": "", "started": time.Now()})
	must(t, os.WriteFile(filepath.Join(old, layout.SupervisorFile), sup, 0o600))
	must(t, os.WriteFile(filepath.Join(home, "password"), []byte("x"), 0o600))
	for _, p := range []string{old, sess, layout.SupervisorFile, filepath.Join(e.home, e.stateName)} {
		if !filepath.IsAbs(p) {
			p = filepath.Join(old, p)
		}
		must(t, filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
			must(t, err)
			return os.Lchown(q, e.uid, e.gid)
		}))
	}
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
