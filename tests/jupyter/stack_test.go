package jupyter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
)

// The Python stack the suite runs with: JupyterHub, JupyterLab, jupyter_server,
// jupyter-server-proxy, batchspawner, simpervisor and jupyterhub-idle-culler, installed from
// PyPI the way sites install them (pip into a venv), every distribution pinned by version and
// sha256 in a lock file of tests/jupyter/stacks/.
const (
	// debianPython is Debian's own interpreter: the venv is made from it, never from a python3
	// that happens to come first on PATH (a pyenv shim, a conda env).
	debianPython = "/usr/bin/python3"
	// stackEnv names the stack of a run: a lock file's base name in tests/jupyter/stacks/
	// ("current", "jh41") or a path to a lock file.
	stackEnv     = "FFL_JUPYTER_STACK"
	defaultStack = "current"
	// venvRoot holds the venvs, root-owned and 0755: the single-user servers run from them as
	// the test users, inside Slurm jobs. Outside the repository, so a checkout's owner and
	// permissions do not matter, and kept across runs (keyed by the lock's hash).
	venvRoot = "/var/lib/ffl-jupytertest"
	// venvDone is written into a venv once pip and `pip check` succeeded: a venv without it
	// (an interrupted install) is made again.
	venvDone = ".ffl-lock-sha256"
)

// Stack is one installed Python stack.
type Stack struct {
	Name string // the lock's base name without .txt
	Lock string // absolute path of the lock file
	Hash string // sha256 of the lock file, hex
	Venv string // the venv made from it
	// Versions of the installed distributions by name (jupyterhub, jupyterlab, ...).
	Versions map[string]string
}

// Major is the major version of an installed distribution (0 when unknown).
func (s Stack) Major(dist string) int {
	major, _, _ := strings.Cut(s.Versions[dist], ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

// Python is the venv's interpreter.
func (s Stack) Python() string { return filepath.Join(s.Venv, "bin", "python") }

// Bin is a console script of the venv.
func (s Stack) Bin(name string) string { return filepath.Join(s.Venv, "bin", name) }

// stackFromEnv resolves FFL_JUPYTER_STACK (default "current") against root's
// tests/jupyter/stacks/.
func stackFromEnv(root string) (Stack, error) {
	name := os.Getenv(stackEnv)
	if name == "" {
		name = defaultStack
	}
	lock := name
	if !strings.Contains(name, "/") {
		lock = filepath.Join(root, "tests", "jupyter", "stacks", name+".txt")
	}
	lock, err := filepath.Abs(lock)
	if err != nil {
		return Stack{}, err
	}
	data, err := os.ReadFile(lock)
	if err != nil {
		return Stack{}, fmt.Errorf("%s=%s: %w (name a lock file of tests/jupyter/stacks, e.g. current or jh41)", stackEnv, name, err)
	}
	sum := sha256.Sum256(data)
	base := strings.TrimSuffix(filepath.Base(lock), ".txt")
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(base) {
		return Stack{}, fmt.Errorf("%s=%s: the lock file's name %q is not [A-Za-z0-9._-]+", stackEnv, name, base)
	}
	h := hex.EncodeToString(sum[:])
	return Stack{Name: base, Lock: lock, Hash: h, Venv: filepath.Join(venvRoot, "venv-"+base+"-"+h[:16])}, nil
}

// isolatedEnv is the whole environment of every Python the suite runs outside a job: nothing of
// the caller's (no PYTHONPATH, no PIP_*, no HOME of the caller).
func isolatedEnv(extra ...string) []string {
	return append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/nonexistent", "PYTHONNOUSERSITE=1"}, extra...)
}

// ensureVenv makes s.Venv from the lock unless a complete venv of the same lock is there:
// `/usr/bin/python3 -m venv`, then `pip install --require-hashes --no-deps --only-binary :all:`
// (every distribution is checked against the lock's sha256, nothing is built from source, no
// dependency is resolved at install time) and `pip check`. Venvs of an older lock of the same
// stack are removed. A lock file in venvRoot serializes runs that install at once.
func ensureVenv(ctx context.Context, s Stack) (reused bool, err error) {
	if err := os.MkdirAll(venvRoot, 0o755); err != nil {
		return false, err
	}
	if err := os.Chmod(venvRoot, 0o755); err != nil {
		return false, err
	}
	lf, err := os.OpenFile(filepath.Join(venvRoot, ".lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false, err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("flock %s: %w", lf.Name(), err)
	}
	if done, err := os.ReadFile(filepath.Join(s.Venv, venvDone)); err == nil && strings.TrimSpace(string(done)) == s.Hash {
		return true, nil
	}
	// venv-NAME-HASH16 exactly: not the venv of a stack whose name starts with NAME-.
	old, _ := filepath.Glob(filepath.Join(venvRoot, "venv-"+s.Name+"-"+strings.Repeat("[0-9a-f]", 16)))
	for _, dir := range old { // older locks of this stack, and an interrupted install of this one
		if err := os.RemoveAll(dir); err != nil {
			return false, err
		}
	}
	// umask 022: the test users read and run everything in the venv.
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `umask 022 && exec "$@"`, "sh", name}, args...)...)
		cmd.Dir = "/"
		cmd.Env = isolatedEnv("PIP_CONFIG_FILE=/dev/null", "PIP_NO_CACHE_DIR=1", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1")
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(string(out), 30))
		}
		return nil
	}
	if err := run(debianPython, "-I", "-m", "venv", s.Venv); err != nil {
		return false, fmt.Errorf("%w (Debian's python3-venv is needed: run 'make deps')", err)
	}
	if err := run(s.Python(), "-I", "-m", "pip", "install", "--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", s.Lock); err != nil {
		return false, fmt.Errorf("installing %s from PyPI: %w", s.Lock, err)
	}
	if err := run(s.Python(), "-I", "-m", "pip", "check"); err != nil {
		return false, fmt.Errorf("the lock %s is not consistent: %w", s.Lock, err)
	}
	if err := os.WriteFile(filepath.Join(s.Venv, venvDone), []byte(s.Hash+"\n"), 0o644); err != nil {
		return false, err
	}
	return false, nil
}

// versionScript prints "name version" for every distribution the suite runs.
const versionScript = `
import importlib.metadata as m
for d in ("jupyterhub", "jupyterlab", "jupyter_server", "jupyter-server-proxy", "batchspawner",
          "simpervisor", "jupyterhub-idle-culler", "tornado"):
    try:
        print(d, m.version(d))
    except m.PackageNotFoundError:
        print(d, "not installed")
`

// componentVersions names the version of every component of the run: the Python stack (from
// the venv's metadata) and the programs (their own --version).
func componentVersions(ctx context.Context, s Stack) ([]string, error) {
	cmd := exec.CommandContext(ctx, s.Python(), "-I", "-c", versionScript)
	cmd.Dir, cmd.Env = "/", isolatedEnv()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the stack's versions: %w", s.Python(), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	lines = append(lines, "python "+firstLine(run1(ctx, s.Python(), "-I", "-c", "import sys; print(sys.version.split()[0])")))
	for _, p := range []struct{ name, bin, arg string }{
		{"configurable-http-proxy", "configurable-http-proxy", "--version"}, // with NODE_PATH, as the hub runs it
		{"node", "node", "--version"},
		{"xpra", "xpra", "--version"},
		{"firefox-esr", "firefox-esr", "--version"},
		// Debian's /usr/bin/chromium is a shell wrapper around this binary.
		{"chromium", "/usr/lib/chromium/chromium", "--version"},
		{"slurm", "/usr/sbin/slurmd", "-V"},
	} {
		lines = append(lines, p.name+" "+firstLine(run1(ctx, p.bin, p.arg)))
	}
	return lines, nil
}

// run1 runs a version command with the suite's environment; its output, or the error.
func run1(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = "/", isolatedEnv("HOME=/tmp", "NODE_PATH=/usr/share/nodejs")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || len(out) == 0 {
			return "unknown (" + err.Error() + ")"
		}
	}
	return string(out)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	stackOnce sync.Once
	theStack  Stack
	stackErr  error
)

// stack returns the run's Python stack, installing it on first use (the suite's first step);
// it skips (or, with FFL_E2E=1, fails) the test when it cannot be installed.
func stack(t *testing.T) Stack {
	t.Helper()
	stackOnce.Do(func() { theStack, stackErr = installStack() })
	if stackErr != nil {
		if os.Getenv("FFL_E2E") == "1" {
			t.Fatalf("FFL_E2E=1 but the Python stack is missing: %v", stackErr)
		}
		t.Skipf("the Python stack is missing (FFL_E2E=1 turns this skip into a failure): %v", stackErr)
	}
	return theStack
}

// installStack finds the run's stack, makes its venv (or reuses it) and logs what it runs with.
func installStack() (Stack, error) {
	if os.Getuid() != 0 {
		return Stack{}, errors.New("root (the venv goes to " + venvRoot + ")")
	}
	root, err := slurmtest.ModuleRoot()
	if err != nil {
		return Stack{}, err
	}
	s, err := stackFromEnv(root)
	if err != nil {
		return Stack{}, err
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	reused, err := ensureVenv(ctx, s)
	if err != nil {
		return Stack{}, err
	}
	how := "installed from PyPI"
	if reused {
		how = "reused"
	}
	logf("stack %s (%s): venv %s %s in %v", s.Name, s.Lock, s.Venv, how, time.Since(t0).Round(time.Millisecond))
	versions, err := componentVersions(ctx, s)
	if err != nil {
		return Stack{}, err
	}
	s.Versions = map[string]string{}
	for _, v := range versions {
		logf("version: %s", v)
		if name, ver, ok := strings.Cut(v, " "); ok {
			s.Versions[name] = ver
		}
	}
	return s, nil
}
