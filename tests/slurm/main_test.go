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
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
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
	// envPrebuilt names a directory with ffl-launch, ffl-prolog and ffl-epilog built already:
	// `make slurm-versions-test` builds them on the host and runs this suite inside a node image
	// that has no Go (tests/slurm/image-run.sh).
	envPrebuilt = "FFL_PREBUILT_BIN"
	// envXpra is the xpra the sessions run (the config key xpra) when it is not Debian's in
	// PATH: the trixie image's xpra 6.5, built from source.
	envXpra = "FFL_SLURM_XPRA"
	// envNoHTML5 says why the HTML5 client cannot be looked at in a browser on this node (xpra
	// 6 without xpra-html5); the scenarios then check everything else and log that reason.
	envNoHTML5 = "FFL_SLURM_NO_HTML5"
)

// User is a test account (made by users.sh); the same type as the other suites' accounts, so
// that internal/slurmtest serves them all.
type User = testutil.User

// Cluster is the running local Slurm of this test binary and what the scenarios share.
type Cluster struct {
	root      string // module root
	dir       string // root-owned 0755: bin/, ffl.toml, epilog.log
	confDir   string
	ctl       slurmtest.Client // Slurm's clients against confDir
	launch    string           // ffl-launch
	prolog    string           // ffl-prolog
	epilog    string           // ffl-epilog
	config    string           // FFL_CONFIG of the jobs (same content as /etc/ffl/ffl.toml)
	epilogLog string
	script    string // contrib/sbatch/firefox.sbatch
	node      string
	portMin   int
	portMax   int
	proctrack string // as the cluster started ("cgroup" or "linuxproc")
	version   string // of Slurm, as scontrol --version names it ("slurm 24.11.5")
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
	os.Exit(slurmtest.RunMain(m, "tests/slurm", func(keep bool) error {
		if theCluster == nil {
			return nil
		}
		return theCluster.teardown(keep)
	}))
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
	requireNothingMissing(t, skipReason)
	if clusterErr != nil {
		t.Fatalf("local Slurm cluster: %v", clusterErr)
	}
	return theCluster
}

// requireNothingMissing stops t when a prerequisite of the suite is missing (missing names them).
func requireNothingMissing(t *testing.T, missing string) {
	t.Helper()
	slurmtest.RequireNothingMissing(t, missing, "run as root after 'make deps'")
}

func missingPrerequisites() string {
	var missing []string
	if os.Getuid() != 0 {
		missing = append(missing, "root (slurmd, users, Prolog/Epilog)")
	}
	need := []string{"sbatch", "squeue", "scancel", "scontrol", "sinfo", "slurmctld", "slurmd", "munged", "firefox-esr", "runuser"}
	if os.Getenv(envPrebuilt) == "" && os.Getenv(envInstalled) != "1" {
		need = append(need, "go")
	}
	need = append(need, slurmtest.EnvOr(envXpra, "xpra"))
	for _, b := range need {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	return strings.Join(missing, ", ")
}

func setupCluster() (c *Cluster, err error) {
	t0 := time.Now()
	root, err := slurmtest.ModuleRoot()
	if err != nil {
		return nil, err
	}
	confDir := slurmtest.EnvOr("SLURM_CONFDIR", "/var/tmp/ffl-slurm")
	node, err := slurmtest.Output(context.Background(), nil, "hostname", "-s")
	if err != nil {
		return nil, err
	}
	// Root-owned and 0755 in a sticky /var/tmp: slurmd runs the Prolog/Epilog from here as root,
	// so no user may replace them; the job users only read and execute.
	dir, err := slurmtest.WorkDir("ffl-slurmtest-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{
		root: root, dir: dir, confDir: confDir, ctl: slurmtest.Client{ConfDir: confDir}, node: node,
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
	} else if pre := os.Getenv(envPrebuilt); pre != "" {
		c.launch, c.prolog, c.epilog = filepath.Join(pre, "ffl-launch"), filepath.Join(pre, "ffl-prolog"), filepath.Join(pre, "ffl-epilog")
		for _, f := range []string{c.launch, c.prolog, c.epilog} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("%s=%s: %w", envPrebuilt, pre, err)
			}
		}
		logf("%s: ffl-launch, ffl-prolog, ffl-epilog from %s", envPrebuilt, pre)
	} else {
		tb := time.Now()
		if err := slurmtest.BuildFFL(root, filepath.Join(dir, "bin")); err != nil {
			return nil, err
		}
		logf("built ffl-launch, ffl-epilog, ffl-prolog into %s/bin in %v", dir, time.Since(tb).Round(time.Millisecond))
	}

	// Config: a random free port range, the Epilog's log in a file we read.
	if c.portMin, err = slurmtest.FreePortRange(100); err != nil {
		return nil, err
	}
	c.portMax = c.portMin + 99
	extra := ""
	if xp := os.Getenv(envXpra); xp != "" {
		extra = fmt.Sprintf("xpra = %q\n", xp)
	}
	cfg := slurmtest.FFLConfig(configTag, runtimeRoot, c.portMin, c.portMax, extra, c.epilogLog)
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// An interrupted run of this suite (its own tag) is undone first.
	if c.restore, err = slurmtest.InstallConfig(etcConfig, []byte(cfg), configTag, etcConfig+".ffl-slurmtest-backup"); err != nil {
		return nil, err
	}

	// Users and their working dirs (job output files land there).
	if c.users, err = slurmtest.Users(context.Background(), root, "ffluser1", "ffluser2"); err != nil {
		return nil, err
	}
	if c.work, err = slurmtest.WorkDirs(context.Background(), c.users, filepath.Base(dir)); err != nil {
		return nil, err
	}

	// The cluster.
	c.knobs = slurmtest.LocalKnobs(c.prolog, c.epilog, killWait, partition, node)
	c.started = true
	if err := c.harness("start-local-slurm.sh", c.knobs...); err != nil {
		return nil, err
	}
	if c.proctrack, err = c.currentProctrack(); err != nil {
		return nil, err
	}
	if c.version, err = c.slurm(context.Background(), "scontrol", "--version"); err != nil {
		return nil, err
	}
	logf("cluster up (%s, proctrack/%s, KillWait %v, ports %d-%d) in %v", c.version, c.proctrack, killWait, c.portMin, c.portMax, time.Since(t0).Round(time.Millisecond))
	return c, nil
}

// harness runs one of the shell scripts beside this file on c.confDir with extra environment.
func (c *Cluster) harness(script string, env ...string) error {
	return slurmtest.Script{Path: filepath.Join(c.root, "tests", "slurm", script), Args: []string{c.confDir}, Env: env, Logf: logf}.Run()
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

// asUser runs a command as u with a minimal environment and returns its combined output.
func (c *Cluster) asUser(ctx context.Context, u User, name string, args ...string) (string, error) {
	return slurmtest.RunAs(ctx, u, slurmtest.UserEnv(u), name, args...)
}

// slurm runs a Slurm client command as root against this cluster.
func (c *Cluster) slurm(ctx context.Context, name string, args ...string) (string, error) {
	return c.ctl.Run(ctx, name, args...)
}

// logf prints progress of the suite's setup and teardown (outside any test).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tests/slurm: "+format+"\n", args...)
}
