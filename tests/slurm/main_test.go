// Package slurm checks ffl's promise against a real single-node Slurm cluster (the harness
// beside this file): jobs of two users submitted with contrib/sbatch/firefox.sbatch run real xpra
// + firefox-esr sessions, with ffl-prolog and ffl-epilog as the cluster's Prolog and Epilog, and
// end every way a job ends (the user closes Firefox, scancel, the time limit, SIGKILL, a launcher
// killed at each named step, a hostile home). Once a job has left the queue and the Epilog has
// run, each scenario asserts: no process carrying the job's marker, no directory of the job, its
// port free, the node not drained, and every other session, job and user untouched.
//
// Root, slurm-wlm, munge, xpra and firefox-esr are needed. Without them the tests skip with the
// reason, unless FFL_E2E=1 (`make slurm-test`, CI): then a missing prerequisite fails the run.
// The cluster is started on first use and stopped by TestMain, so the parser tests here need
// none of it.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cluster-wide settings of the suite.
const (
	// killWait is Slurm's KillWait: seconds between the SIGTERM of a cancelled job and the
	// SIGKILL. The launcher's cleanup_timeout (3 s) stays inside it.
	killWait = 5 * time.Second
	// partition is an extra partition whose cores may be shared (OverSubscribe=FORCE): the
	// script asks for 2 CPUs per job and the test machine may have only 2, yet scenarios need
	// several jobs running at once.
	partition = "ffltest"
	// runtimeRoot is the Prolog's runtime root for this suite (not /run/ffl: a real install on
	// the same machine keeps its own).
	runtimeRoot = "/run/ffl-slurmtest"
	// etcConfig is where the Prolog and Epilog read their configuration: slurmd gives them no
	// environment but SLURM_*, so no FFL_CONFIG.
	etcConfig = "/etc/ffl/ffl.toml"
	// configTag marks an /etc/ffl/ffl.toml this suite installed, so an interrupted run is undone
	// by the next one.
	configTag = "# installed by ffl tests/slurm for the duration of a test run"
	// envInstalled=1 runs the scenarios against the installed Debian package (/usr/bin,
	// /usr/sbin, /usr/share/ffl) instead of binaries built from this tree.
	envInstalled = "FFL_INSTALLED"
	// testPath is the PATH of everything run as a test user.
	testPath = "/usr/local/bin:/usr/bin:/bin"
)

// User is a test account (made by users.sh).
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// Cluster is the running local Slurm of this test binary and what the scenarios share.
type Cluster struct {
	root      string // module root
	dir       string // root-owned 0755: bin/, ffl.toml, epilog.log
	confDir   string
	launch    string // ffl-launch
	prolog    string // ffl-prolog
	epilog    string // ffl-epilog
	config    string // FFL_CONFIG of the jobs (same content as /etc/ffl/ffl.toml)
	epilogLog string
	script    string // contrib/sbatch/firefox.sbatch
	node      string
	portMin   int
	portMax   int
	proctrack string // as the cluster started ("cgroup" or "linuxproc")
	knobs     []string
	users     map[string]User
	work      map[string]string // user -> job working dir in the home
	restore   func() error      // puts /etc/ffl/ffl.toml back
	started   bool
}

var (
	clusterOnce sync.Once
	theCluster  *Cluster
	clusterErr  error
	skipReason  string
)

// TestMain stops the cluster (if a test started it) and undoes the configuration change.
func TestMain(m *testing.M) {
	code := m.Run()
	if theCluster != nil {
		if err := theCluster.teardown(code != 0); err != nil {
			fmt.Fprintf(os.Stderr, "tests/slurm: teardown: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// cluster returns the shared cluster, starting it on first use; it skips (or, with FFL_E2E=1,
// fails) the test when a prerequisite is missing.
func cluster(t *testing.T) *Cluster {
	t.Helper()
	clusterOnce.Do(func() {
		if skipReason = missingPrerequisites(); skipReason != "" {
			return
		}
		theCluster, clusterErr = setupCluster()
	})
	if skipReason != "" {
		if os.Getenv("FFL_E2E") == "1" {
			t.Fatalf("FFL_E2E=1 but missing: %s (run 'make deps' as root)", skipReason)
		}
		t.Skipf("missing %s: run as root after 'make deps' (FFL_E2E=1 turns this skip into a failure)", skipReason)
	}
	if clusterErr != nil {
		t.Fatalf("local Slurm cluster: %v", clusterErr)
	}
	return theCluster
}

func missingPrerequisites() string {
	var missing []string
	if os.Getuid() != 0 {
		missing = append(missing, "root (slurmd, users, Prolog/Epilog)")
	}
	for _, b := range []string{"sbatch", "squeue", "scancel", "scontrol", "sinfo", "slurmctld", "slurmd", "munged", "xpra", "firefox-esr", "runuser", "go"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	return strings.Join(missing, ", ")
}

func setupCluster() (c *Cluster, err error) {
	t0 := time.Now()
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("module root %s: %w", root, err)
	}
	confDir := os.Getenv("SLURM_CONFDIR")
	if confDir == "" {
		confDir = "/var/tmp/ffl-slurm"
	}
	node, err := output(context.Background(), nil, "hostname", "-s")
	if err != nil {
		return nil, err
	}
	// Root-owned and 0755 in a sticky /var/tmp: slurmd runs the Prolog/Epilog from here as root,
	// so no user may replace them; the job users only read and execute.
	dir, err := os.MkdirTemp("/var/tmp", "ffl-slurmtest-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	c = &Cluster{
		root: root, dir: dir, confDir: confDir, node: node,
		launch: filepath.Join(dir, "bin", "ffl-launch"), config: filepath.Join(dir, "ffl.toml"),
		epilogLog: filepath.Join(dir, "epilog.log"), script: filepath.Join(root, "contrib", "sbatch", "firefox.sbatch"),
		users: map[string]User{}, work: map[string]string{},
	}
	defer func() { // a half-started cluster is undone here; TestMain tears down a whole one
		if err != nil {
			_ = c.teardown(true)
		}
	}()

	c.prolog, c.epilog = filepath.Join(dir, "bin", "ffl-prolog"), filepath.Join(dir, "bin", "ffl-epilog")
	if os.Getenv(envInstalled) == "1" {
		// The Debian package's files (tests/deb/deb-test.sh): nothing is built.
		c.launch, c.prolog, c.epilog = "/usr/bin/ffl-launch", "/usr/sbin/ffl-prolog", "/usr/sbin/ffl-epilog"
		c.script = "/usr/share/ffl/firefox.sbatch"
		for _, f := range []string{c.launch, c.prolog, c.epilog, c.script} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("%s=1 but %w (install the package: make deb-test)", envInstalled, err)
			}
		}
		logf("%s=1: the installed %s, %s, %s and %s", envInstalled, c.launch, c.prolog, c.epilog, c.script)
	} else {
		tb := time.Now()
		build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "bin")+"/",
			"./cmd/ffl-launch", "./cmd/ffl-epilog", "./cmd/ffl-prolog")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
		if err := os.Chmod(filepath.Join(dir, "bin"), 0o755); err != nil {
			return nil, err
		}
		logf("built ffl-launch, ffl-epilog, ffl-prolog into %s/bin in %v", dir, time.Since(tb).Round(time.Millisecond))
	}

	// Config: a random free port range, the Epilog's log in a file we read.
	if c.portMin, err = freePortRange(100); err != nil {
		return nil, err
	}
	c.portMax = c.portMin + 99
	cfg := fmt.Sprintf(`%s
runtime_dir = %q
port_min = %d
port_max = %d
cleanup_timeout = "3s"
start_timeout = "90s"

[epilog]
log_file = %q
syslog = false
timeout = "20s"
`, configTag, runtimeRoot, c.portMin, c.portMax, c.epilogLog)
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	if c.restore, err = installEtcConfig([]byte(cfg)); err != nil {
		return nil, err
	}

	// Users and their working dirs (job output files land there).
	out, err := output(context.Background(), nil, filepath.Join(root, "tests", "slurm", "users.sh"), "ffluser1", "ffluser2")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		uid, err1 := strconv.Atoi(f[1])
		gid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("users.sh printed %q", line)
		}
		u := User{Name: f[0], UID: uid, GID: gid, Home: f[3]}
		c.users[u.Name] = u
		w := filepath.Join(u.Home, filepath.Base(dir))
		if _, err := c.asUser(context.Background(), u, "mkdir", "-m", "0755", w); err != nil {
			return nil, err
		}
		c.work[u.Name] = w
	}
	if len(c.users) != 2 {
		return nil, fmt.Errorf("users.sh: want ffluser1 and ffluser2, got %q", out)
	}

	// The cluster. A random first job id keeps this run's directory names apart from whatever
	// an earlier, interrupted run left in the test users' homes.
	c.knobs = []string{
		"SLURM_PROLOG=" + c.prolog,
		"SLURM_EPILOG=" + c.epilog,
		"SLURM_KILLWAIT=" + strconv.Itoa(int(killWait/time.Second)),
		"SLURM_PROCTRACK=auto",
		"SLURM_FIRST_JOB_ID=" + strconv.Itoa(10000+rand.IntN(800000)),
		"SLURM_CONF_EXTRA=PartitionName=" + partition + " Nodes=" + node + " OverSubscribe=FORCE:16 MaxTime=INFINITE State=UP",
		"SLURM_FORCE_RESTART=1",
	}
	c.started = true
	if err := c.harness("start-local-slurm.sh", c.knobs...); err != nil {
		return nil, err
	}
	if c.proctrack, err = c.currentProctrack(); err != nil {
		return nil, err
	}
	logf("cluster up (proctrack/%s, KillWait %v, ports %d-%d) in %v", c.proctrack, killWait, c.portMin, c.portMax, time.Since(t0).Round(time.Millisecond))
	return c, nil
}

// harness runs one of the shell scripts beside this file on c.confDir with extra environment.
func (c *Cluster) harness(script string, env ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "tests", "slurm", script), c.confDir)
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	t0 := time.Now()
	err := cmd.Run()
	logf("%s: %v (%v)", script, errOrOK(err), time.Since(t0).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", script, c.confDir, err, buf.String())
	}
	return nil
}

func (c *Cluster) currentProctrack() (string, error) {
	data, err := os.ReadFile(filepath.Join(c.confDir, "run", "pids.env"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PROCTRACK="); ok {
			return v, nil
		}
	}
	return "", errors.New("pids.env names no PROCTRACK")
}

// teardown stops the cluster and removes what setup made; keep leaves the work dir (binaries,
// configuration, Epilog log) for a look after a failure.
func (c *Cluster) teardown(keep bool) error {
	var errs []error
	if c.started {
		if err := c.harness("stop-local-slurm.sh"); err != nil {
			errs = append(errs, err)
		}
	}
	if c.restore != nil {
		if err := c.restore(); err != nil {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(runtimeRoot) // only when empty: anything left is a finding, not ours to hide
	for name, w := range c.work {
		if _, err := c.asUser(context.Background(), c.users[name], "rm", "-rf", w); err != nil {
			errs = append(errs, err)
		}
	}
	if keep {
		logf("kept %s (binaries, ffl.toml, epilog.log)", c.dir)
	} else if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// installEtcConfig puts data at /etc/ffl/ffl.toml and returns how to undo it. A copy installed
// by an interrupted earlier run (tagged, with or without a backup) is undone first.
func installEtcConfig(data []byte) (func() error, error) {
	backup := etcConfig + ".ffl-slurmtest-backup"
	_, statErr := os.Stat(filepath.Dir(etcConfig))
	madeDir := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(filepath.Dir(etcConfig), 0o755); err != nil {
		return nil, err
	}
	if old, err := os.ReadFile(etcConfig); err == nil && bytes.HasPrefix(old, []byte(configTag)) {
		if _, err := os.Stat(backup); err == nil {
			if err := os.Rename(backup, etcConfig); err != nil {
				return nil, err
			}
		} else if err := os.Remove(etcConfig); err != nil {
			return nil, err
		}
	}
	hadOriginal := false
	if _, err := os.Lstat(etcConfig); err == nil {
		hadOriginal = true
		if err := os.Rename(etcConfig, backup); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(etcConfig, data, 0o644); err != nil {
		return nil, err
	}
	return func() error {
		if hadOriginal {
			return os.Rename(backup, etcConfig)
		}
		if err := os.Remove(etcConfig); err != nil {
			return err
		}
		if madeDir {
			_ = os.Remove(filepath.Dir(etcConfig)) // only if empty
		}
		return nil
	}, nil
}

// freePortRange picks a random range of n TCP ports none of which is in use right now.
func freePortRange(n int) (int, error) {
	for try := 0; try < 50; try++ {
		lo := 20000 + rand.IntN(40000)
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			ok = portFree(p)
		}
		if ok {
			return lo, nil
		}
	}
	return 0, errors.New("no free range of ports found")
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// asUser runs a command as u with a minimal environment and returns its combined output.
func (c *Cluster) asUser(ctx context.Context, u User, name string, args ...string) (string, error) {
	env := []string{"PATH=" + testPath, "HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "LANG=C.UTF-8"}
	return c.asUserEnv(ctx, u, env, name, args...)
}

func (c *Cluster) asUserEnv(ctx context.Context, u User, env []string, name string, args ...string) (string, error) {
	full := append([]string{"-u", u.Name, "--", "env", "-i"}, env...)
	full = append(full, name)
	full = append(full, args...)
	return output(ctx, nil, "runuser", full...)
}

// slurm runs a Slurm client command as root against this cluster.
func (c *Cluster) slurm(ctx context.Context, name string, args ...string) (string, error) {
	return output(ctx, []string{"SLURM_CONF=" + filepath.Join(c.confDir, "slurm.conf")}, name, args...)
}

// output runs a command (bounded by ctx, else 2 minutes) and returns its trimmed output.
func output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, s)
	}
	return s, nil
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// logf prints progress of the suite's setup and teardown (outside any test).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tests/slurm: "+format+"\n", args...)
}
