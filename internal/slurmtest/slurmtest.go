// Package slurmtest holds the harness that ffl's end-to-end suites on a real Slurm share
// (tests/slurm: one node and three nodes; tests/jupyter: JupyterHub with SlurmSpawner): running
// commands as root and as the test users, the test accounts of tests/slurm/users.sh, building
// ffl for the cluster, the machine's /etc/ffl/ffl.toml for the duration of a run, Slurm's client
// commands, and what a scenario asserts about a job's processes. One copy, so that a fix made
// for one suite reaches the others.
package slurmtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// UserPath is the PATH of everything the suites run as a test user: the system's directories
// only, so no root tooling (pyenv, a developer's ~/bin) leaks into a job.
const UserPath = "/usr/local/bin:/usr/bin:/bin"

// commandTimeout bounds every command Output runs, so that a hung client cannot hang a suite.
const commandTimeout = 2 * time.Minute

// Output runs a command as the caller with extra environment, bounded by ctx and at most two
// minutes, and returns its trimmed combined output; the error names the command and carries
// the output, so a failed setup step says what it printed.
func Output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
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

// UserEnv is the minimal login-like environment of u (PATH, HOME, USER, LOGNAME, LANG): what a
// job of u sees from a plain login, without anything of the root process running the suite.
func UserEnv(u testutil.User) []string {
	return []string{"PATH=" + UserPath, "HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "LANG=C.UTF-8"}
}

// RunAs runs a command as u (runuser) with exactly env as its environment (env -i) and returns
// its trimmed combined output, as Output does: the suites act in a user's home only as that
// user, never as root.
func RunAs(ctx context.Context, u testutil.User, env []string, name string, args ...string) (string, error) {
	full := append([]string{"-u", u.Name, "--", "env", "-i"}, env...)
	full = append(full, name)
	full = append(full, args...)
	return Output(ctx, nil, "runuser", full...)
}

// ErrOrOK renders err for a progress line ("ok" when nil).
func ErrOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// WaitUntil polls cond every 100 ms until it holds or limit passes and reports whether it held.
// The suites' conditions run Slurm's clients or scan /proc, so they poll more slowly than
// testutil.Eventually; they assert the outcome, never the time it took.
func WaitUntil(limit time.Duration, cond func() bool) bool {
	return testutil.Poll(limit, 100*time.Millisecond, cond)
}

// FreePortRange picks a random range of n TCP ports from 20000-59999 none of which is in use on
// the loopback right now, so that a suite's sessions do not meet another program's ports.
func FreePortRange(n int) (int, error) {
	return freePortRange(n, rand.IntN, testutil.PortFree)
}

// freePortRange is FreePortRange with its randomness and its probe given, for the unit test.
func freePortRange(n int, intn func(int) int, free func(int) bool) (int, error) {
	const tries = 50
	for try := 0; try < tries; try++ {
		lo := 20000 + intn(40000)
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			ok = free(p)
		}
		if ok {
			return lo, nil
		}
	}
	return 0, fmt.Errorf("no free range of %d ports found in %d tries", n, tries)
}

// ModuleRoot returns the module root seen from a test package two levels below it (go test
// runs a test binary in its package's directory), checked by its go.mod: the suites build ffl
// and find tests/slurm's scripts from there.
func ModuleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root %s: %w", root, err)
	}
	return root, nil
}

// EnvOr returns the environment variable name, or def when it is unset or empty: how the suites
// let CI move a cluster's CONFDIR.
func EnvOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// WorkDir makes a fresh root-owned directory of mode 0755 in the sticky /var/tmp: slurmd runs
// the Prolog and Epilog from it as root, so no user may replace them, and the job users (and
// the slurm user) can still read and execute what is in it.
func WorkDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("/var/tmp", prefix)
	if err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.Remove(dir)
		return "", fmt.Errorf("work dir: %w", err)
	}
	return dir, nil
}

// BuildFFL builds ffl-launch, ffl-epilog and ffl-prolog of the module at root into bin (made
// world-readable: the job users run ffl-launch from there), with cgo as the packages ship.
func BuildFFL(root, bin string) error {
	build := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "./cmd/ffl-launch", "./cmd/ffl-epilog", "./cmd/ffl-prolog")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

// Users makes (or finds) the named test accounts with tests/slurm/users.sh of the module at root
// and returns them by name; it fails unless every one of them was printed, so a suite never
// runs a job as an account it did not expect.
func Users(ctx context.Context, root string, names ...string) (map[string]testutil.User, error) {
	out, err := Output(ctx, nil, filepath.Join(root, "tests", "slurm", "users.sh"), names...)
	if err != nil {
		return nil, err
	}
	users, err := parseUsers(out)
	if err != nil {
		return nil, err
	}
	missing := len(users) != len(names)
	for _, n := range names {
		if _, ok := users[n]; !ok {
			missing = true
		}
	}
	if missing {
		return nil, fmt.Errorf("users.sh: want %s, got %q", strings.Join(names, " and "), out)
	}
	return users, nil
}

// parseUsers reads users.sh's lines "NAME UID GID HOME"; other lines are progress.
func parseUsers(out string) (map[string]testutil.User, error) {
	users := map[string]testutil.User{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		uid, err1 := strconv.Atoi(f[1])
		gid, err2 := strconv.Atoi(f[2])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("users.sh printed %q: %w", line, err)
		}
		users[f[0]] = testutil.User{Name: f[0], UID: uid, GID: gid, Home: f[3]}
	}
	return users, nil
}

// WorkDirs makes, as each user, a directory name (mode 0755) in the user's home, where the
// suite's jobs run and write their output files, and returns them by user name. On an error it
// still returns the ones it made, for the teardown to remove.
func WorkDirs(ctx context.Context, users map[string]testutil.User, name string) (map[string]string, error) {
	work := map[string]string{}
	for _, u := range users {
		w := filepath.Join(u.Home, name)
		if _, err := RunAs(ctx, u, UserEnv(u), "mkdir", "-m", "0755", w); err != nil {
			return work, fmt.Errorf("work dir of %s: %w", u.Name, err)
		}
		work[u.Name] = w
	}
	return work, nil
}

// RequireNothingMissing stops t when the suite's prerequisites named in missing are not there:
// a skip on a developer's machine, a failure with FFL_E2E=1 (CI, where they must be). fix, when
// not "", says how to get them.
func RequireNothingMissing(t testing.TB, missing, fix string) {
	t.Helper()
	if missing == "" {
		return
	}
	if fix != "" {
		missing += " (" + fix + ")"
	}
	if os.Getenv("FFL_E2E") == "1" {
		t.Fatalf("FFL_E2E=1 but missing: %s", missing)
	}
	t.Skipf("missing %s; FFL_E2E=1 turns this skip into a failure", missing)
}

// RunMain runs a suite's tests, then teardown (keep: a test failed, so the work dirs stay for a
// look), and returns the exit code for os.Exit: a failed teardown fails a run whose tests
// passed, since what it left behind would meet the next run.
func RunMain(m *testing.M, suite string, teardown func(keep bool) error) int {
	code := m.Run()
	if err := teardown(code != 0); err != nil {
		fmt.Fprintf(os.Stderr, "%s: teardown: %v\n", suite, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
