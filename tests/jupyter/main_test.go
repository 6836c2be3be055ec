// Package jupyter checks the Jupyter journey end to end with the real parts: JupyterHub (with
// configurable-http-proxy), batchspawner's SlurmSpawner with contrib/sbatch/* as shipped,
// JupyterLab with jupyter-server-proxy + simpervisor, the local Slurm of tests/slurm with
// ffl-prolog and ffl-epilog as Prolog and Epilog, and headless chromium as the user's browser.
//
// Root and the Debian packages of scripts/deps.sh are needed. The Python stack is installed by
// the suite itself, as its first step, from PyPI into a venv made from Debian's python3, every
// distribution pinned with its sha256 by a lock file of tests/jupyter/stacks/
// (FFL_JUPYTER_STACK names it, default "current"; stack_test.go). Without a prerequisite the
// tests skip and say how to get it, unless FFL_E2E=1 (`make jupyter-test`, CI): then it fails
// the run. The cluster and the hub are started on first use and stopped by TestMain; the
// machine-wide suite lock /run/ffl-slurm-suite.lock is held from the start of the cluster to
// its stop.
package jupyter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// Settings of the suite.
const (
	// killWait is Slurm's KillWait; the launcher's cleanup timeout (3 s) stays inside it.
	killWait = 10 * time.Second
	// partition may share cores (OverSubscribe=FORCE): two notebook servers with Firefox
	// sessions run at once on a 2-core machine.
	partition = "ffljupyter"
	// runtimeRoot is the Prolog's runtime root for this suite (a real install keeps /run/ffl).
	runtimeRoot = "/run/ffl-jupytertest"
	// etcConfig is where the Prolog and Epilog read their configuration (slurmd gives them no
	// FFL_CONFIG).
	etcConfig = "/etc/ffl/ffl.toml"
	// configTag marks an /etc/ffl/ffl.toml installed by a suite, so an interrupted run is
	// undone by the next one (tests/slurm's tag starts the same way).
	configTag = "# installed by ffl tests/jupyter for the duration of a test run"
	// otherTagPrefix is the start of every ffl test suite's tag.
	otherTagPrefix = "# installed by ffl tests/"
	// suiteLock is the machine-wide lock of everything that runs the local Slurm.
	suiteLock = "/run/ffl-slurm-suite.lock"
	// pageColor is the background of the page each session's Firefox opens, per user: a
	// painted canvas of that colour proves Firefox drew that user's page.
	pageColorUser1 = "#17a15e"
	pageColorUser2 = "#8a2be2"
)

// User is a test account (made by tests/slurm/users.sh); the same type as tests/slurm's, so
// that internal/slurmtest serves both suites.
type User = testutil.User

// Env is what the suite's tests share: the cluster, the hub, the users.
type Env struct {
	root      string           // module root
	dir       string           // root-owned 0755 work dir: bin/, configs, pages, hub files
	bin       string           // ffl binaries, batchspawner-singleuser wrapper
	confDir   string           // Slurm CONFDIR
	ctl       slurmtest.Client // Slurm's clients against confDir
	node      string
	portMin   int
	portMax   int
	stack     Stack // the Python stack: JupyterHub, JupyterLab, batchspawner, ... in a venv
	epilogLog string
	users     map[string]User
	jobs      map[string]User // every job of the run: its log in the user's home goes at the end
	hub       *Hub
	lock      *os.File
	restore   func() error
	started   bool
}

var (
	envOnce    sync.Once
	theEnv     *Env
	envErr     error
	skipReason string
)

// TestMain stops the hub and the cluster (if a test started them) and undoes the changes.
func TestMain(m *testing.M) {
	os.Exit(slurmtest.RunMain(m, "tests/jupyter", func(keep bool) error {
		if theEnv == nil {
			return nil
		}
		return theEnv.teardown(keep)
	}))
}

// env returns the shared environment, starting the cluster and the hub on first use; it skips
// (or, with FFL_E2E=1, fails) the test when a prerequisite is missing.
func env(t *testing.T) *Env {
	t.Helper()
	stack(t) // the first step: the venv (skips or fails the test when it cannot be made)
	envOnce.Do(func() {
		if skipReason = missingPrerequisites(); skipReason != "" {
			return
		}
		theEnv, envErr = setup(theStack)
	})
	slurmtest.RequireNothingMissing(t, skipReason, "") // missingPrerequisites names the fix
	if envErr != nil {
		t.Fatalf("setting up the local Slurm and JupyterHub: %v", envErr)
	}
	return theEnv
}

// missingPrerequisites names what is missing of the machine's own programs and how to get them.
func missingPrerequisites() string {
	var missing []string
	if os.Getuid() != 0 {
		missing = append(missing, "root (Slurm daemons, sudo to the test users, Prolog/Epilog)")
	}
	var debs []string
	for b, pkg := range map[string]string{
		"sbatch": "slurm-wlm", "slurmctld": "slurm-wlm", "slurmd": "slurm-wlm", "munged": "munge",
		"xpra": "xpra", "firefox-esr": "firefox-esr", "chromium": "chromium", "sudo": "sudo",
		"configurable-http-proxy": "node-configurable-http-proxy", "node": "nodejs", "runuser": "util-linux",
		"go": "golang (Go 1.26)",
	} {
		if _, err := exec.LookPath(b); err != nil {
			debs = append(debs, pkg)
		}
	}
	if len(debs) > 0 {
		missing = append(missing, strings.Join(dedup(debs), " ")+" (run 'make deps' as root)")
	}
	return strings.Join(missing, "; ")
}

func setup(st Stack) (e *Env, err error) {
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
	// Root-owned and 0755: slurmd runs the Prolog/Epilog from here as root; the users only
	// read and execute.
	dir, err := slurmtest.WorkDir("ffl-jupytertest-")
	if err != nil {
		return nil, err
	}
	e = &Env{
		root: root, dir: dir, bin: filepath.Join(dir, "bin"), confDir: confDir, ctl: slurmtest.Client{ConfDir: confDir}, node: node,
		stack: st, epilogLog: filepath.Join(dir, "epilog.log"), users: map[string]User{}, jobs: map[string]User{},
	}
	half := e // `return nil, err` clears e before this runs
	defer func() {
		if err != nil {
			if terr := half.teardown(true); terr != nil {
				logf("teardown after a failed setup: %v", terr)
			}
		}
	}()

	// The lock first: nothing below may race another suite's cluster or /etc/ffl/ffl.toml.
	tl := time.Now()
	if e.lock, err = os.OpenFile(suiteLock, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600); err != nil {
		return nil, err
	}
	if holder := lockHolderAncestor(e.lock); holder != 0 {
		// `flock /run/ffl-slurm-suite.lock make jupyter-test`: our caller holds it for us.
		logf("%s is held by our ancestor pid %d", suiteLock, holder)
	} else if err := unix.Flock(int(e.lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("flock %s: %w", suiteLock, err)
	} else {
		logf("holding %s (waited %v)", suiteLock, time.Since(tl).Round(time.Millisecond))
	}

	tb := time.Now()
	if err := slurmtest.BuildFFL(root, e.bin); err != nil {
		return nil, err
	}
	logf("built ffl-launch, ffl-epilog, ffl-prolog into %s in %v", e.bin, time.Since(tb).Round(time.Millisecond))
	if err := e.writeSupportFiles(); err != nil {
		return nil, err
	}

	// One ffl.toml for the Prolog/Epilog (in /etc) and the jobs; per-user configs (a page of
	// the user's colour, a tiny port range) are written beside it by the tests.
	if e.portMin, err = slurmtest.FreePortRange(100); err != nil {
		return nil, err
	}
	e.portMax = e.portMin + 99
	cfg := e.fflConfig(e.portMin, e.portMax, "")
	if err := os.WriteFile(filepath.Join(dir, "ffl.toml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	// A copy that an interrupted run of any ffl suite left (tagged) is undone first.
	backups := []string{etcConfig + ".ffl-jupytertest-backup", etcConfig + ".ffl-slurmtest-backup"}
	if e.restore, err = slurmtest.InstallConfig(etcConfig, []byte(cfg), otherTagPrefix, backups...); err != nil {
		return nil, err
	}

	if e.users, err = slurmtest.Users(context.Background(), root, "ffluser1", "ffluser2"); err != nil {
		return nil, err
	}
	for _, u := range e.users {
		if err := e.writeUserConfig(u, e.portMin, e.portMax); err != nil {
			return nil, err
		}
		// Every run starts with users who never opened Firefox from JupyterLab (no record for
		// jupyter_prestart = "recent" from an earlier run or stack): the tests' first visits
		// wait for the start they measure, and TestPrestartRecent makes its own record.
		if err := os.Remove(filepath.Join(u.Home, ".firefox-launcher", lifecycle.VisitFile)); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}

	// The suite's lock is held by this process; the harness's own host lock nests in it.
	knobs := slurmtest.LocalKnobs(filepath.Join(e.bin, "ffl-prolog"), filepath.Join(e.bin, "ffl-epilog"), killWait, partition, node)
	e.started = true
	if err := e.harness("start-local-slurm.sh", knobs...); err != nil {
		return nil, err
	}
	logf("cluster up (ports %d-%d) in %v", e.portMin, e.portMax, time.Since(t0).Round(time.Millisecond))

	if e.hub, err = newHub(e); err != nil {
		return nil, err
	}
	if err := e.hub.Start(); err != nil {
		return nil, err
	}
	logf("environment ready in %v", time.Since(t0).Round(time.Millisecond))
	return e, nil
}

// writeSupportFiles writes the pages Firefox opens and puts the venv's batchspawner-singleuser
// on the jobs' PATH (bin/).
func (e *Env) writeSupportFiles() error {
	for name, color := range map[string]string{"ffluser1": pageColorUser1, "ffluser2": pageColorUser2} {
		page := fmt.Sprintf("<!doctype html><title>ffl test page of %s</title><style>html,body{margin:0;height:100%%;background:%s}</style><body></body>\n", name, color)
		if err := os.WriteFile(filepath.Join(e.dir, "page-"+name+".html"), []byte(page), 0o644); err != nil {
			return err
		}
	}
	// The template runs `batchspawner-singleuser {cmd}` off PATH; {cmd} is the venv's absolute
	// jupyterhub-singleuser, whose directory is not on the job's PATH: the batch script must
	// not depend on finding it there.
	return os.Symlink(e.stack.Bin("batchspawner-singleuser"), filepath.Join(e.bin, "batchspawner-singleuser"))
}

// fflConfig is an ffl.toml for this suite (startURL "" = about:blank).
func (e *Env) fflConfig(portMin, portMax int, startURL string) string {
	var extra string
	if startURL != "" {
		extra += fmt.Sprintf("start_url = %q\n", startURL)
	}
	if n := portMax - portMin + 1; n < 4 {
		extra += fmt.Sprintf("max_sessions = %d\n", n) // at most the range (default 4)
	}
	return slurmtest.FFLConfig(configTag, runtimeRoot, portMin, portMax, extra, e.epilogLog)
}

// userConfig is the FFL_CONFIG of u's jobs.
func (e *Env) userConfig(u User) string { return filepath.Join(e.dir, "ffl-"+u.Name+".toml") }

// writeUserConfig (re)writes u's FFL_CONFIG: u's page, the given port range.
func (e *Env) writeUserConfig(u User, portMin, portMax int) error {
	page := "file://" + filepath.Join(e.dir, "page-"+u.Name+".html")
	return os.WriteFile(e.userConfig(u), []byte(e.fflConfig(portMin, portMax, page)), 0o644)
}

// lockHolderAncestor returns the pid of an ancestor of this process that holds a flock on f's
// file (per /proc/locks), or 0. Taking the lock again would then wait for ever.
func lockHolderAncestor(f *os.File) int {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	// "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF": pid, then maj:min:inode.
	holders := map[int]bool{}
	inode := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && strings.HasSuffix(f[5], inode) {
			if pid, err := strconv.Atoi(f[4]); err == nil {
				holders[pid] = true
			}
		}
	}
	for pid := os.Getppid(); pid > 1; {
		if holders[pid] {
			return pid
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return 0
		}
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			return 0
		}
		if pid, err = strconv.Atoi(fields[1]); err != nil {
			return 0
		}
	}
	return 0
}

// harness runs one of tests/slurm's scripts on e.confDir with extra environment.
func (e *Env) harness(script string, env ...string) error {
	return slurmtest.Script{
		Path: filepath.Join(e.root, "tests", "slurm", script), Args: []string{e.confDir}, Env: env,
		// A child that keeps the output pipe open (a daemon started without redirecting it)
		// must not make Wait hang past the deadline.
		WaitDelay: 10 * time.Second, Logf: logf,
	}.Run()
}

// teardown stops the hub (and with it every server it still runs) and the cluster, undoes the
// configuration change and releases the lock; keep leaves the work dir for a look.
func (e *Env) teardown(keep bool) error {
	var errs []error
	if e.hub != nil {
		if err := e.hub.StopAll(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.started {
		if err := e.harness("stop-local-slurm.sh"); err != nil {
			errs = append(errs, err)
		}
	}
	if e.restore != nil {
		if err := e.restore(); err != nil {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(runtimeRoot) // only when empty: anything left is a finding
	if !keep {
		for id, u := range e.jobs { // as the user: never root in a user's directory
			_, _ = e.asUser(context.Background(), u, nil, "rm", "-f", filepath.Join(u.Home, "jupyterhub_slurmspawner_"+id+".log"))
		}
	}
	if keep {
		logf("kept %s (hub log, configs, epilog.log) and the job logs in the users' homes", e.dir)
	} else if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, err)
	}
	if e.lock != nil {
		_ = e.lock.Close() // releases the flock
	}
	return errors.Join(errs...)
}

// slurm runs a Slurm client command as root against the cluster.
func (e *Env) slurm(ctx context.Context, name string, args ...string) (string, error) {
	return e.ctl.Run(ctx, name, args...)
}

// asUser runs a command as u with a minimal environment plus env.
func (e *Env) asUser(ctx context.Context, u User, env []string, name string, args ...string) (string, error) {
	full := append(slurmtest.UserEnv(u), "SLURM_CONF="+e.ctl.Conf())
	return slurmtest.RunAs(ctx, u, append(full, env...), name, args...)
}

func dedup(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// logf prints progress of the suite's setup and teardown (outside any test).
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tests/jupyter: "+format+"\n", args...)
}
