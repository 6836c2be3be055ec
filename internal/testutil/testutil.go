// Package testutil holds what ffl's tests share: a non-root test user (session processes of
// root are refused by design, so lifecycle tests run as a user), binaries built for a test,
// re-running a test as that user, and waiting for conditions without timed assertions.
package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/gobuild"
)

// User is a non-root account for tests.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

var userMu sync.Mutex

// TestUser returns the account name, creating it (useradd -M) when the caller is root and it is
// missing. It skips the test when the account cannot exist.
func TestUser(t testing.TB, name string) User {
	t.Helper()
	userMu.Lock()
	defer userMu.Unlock()
	u, err := user.Lookup(name)
	if err != nil {
		if os.Getuid() != 0 {
			t.Skipf("test user %s missing and not root to create it", name)
		}
		home := filepath.Join("/var/tmp/ffl-test-homes", name)
		if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("useradd", "-m", "-d", home, "-s", "/bin/bash", name).CombinedOutput()
		if err != nil {
			if u2, err2 := user.Lookup(name); err2 == nil {
				u = u2
			} else {
				t.Skipf("useradd %s: %v: %s", name, err, out)
			}
		} else if u, err = user.Lookup(name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if u.HomeDir != "" {
		if err := os.MkdirAll(u.HomeDir, 0o700); err == nil {
			_ = os.Chown(u.HomeDir, uid, gid)
		}
	}
	return User{Name: name, UID: uid, GID: gid, Home: u.HomeDir}
}

// SharedDir returns a fresh directory every user can traverse (t.TempDir's parents are 0700
// for root), removed at the end of the test.
func SharedDir(t testing.TB) string {
	t.Helper()
	base := "/var/tmp/ffl-test"
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(base, 0o755)
	d, err := os.MkdirTemp(base, "t")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(d, 0o755)
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// UserDir returns a fresh directory owned by u (mode 0700) inside a SharedDir.
func UserDir(t testing.TB, u User) string {
	t.Helper()
	d := filepath.Join(SharedDir(t), "u")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Build compiles a main package of this module once per test binary into a world-readable
// directory and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if buildDir == "" {
		if err := os.MkdirAll("/var/tmp/ffl-test", 0o755); err != nil {
			t.Fatal(err)
		}
		d, err := os.MkdirTemp("/var/tmp/ffl-test", "bin")
		if err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(d, 0o755)
		buildDir = d
	}
	out, err := gobuild.In(buildDir, pkg)
	if err != nil {
		t.Fatal(err)
	}
	built[pkg] = out
	return out
}

// BuildMain is Build for a TestMain (no testing.TB): it builds pkg into a fresh world-readable
// directory and returns the binary and a function removing that directory.
func BuildMain(pkgs ...string) (bins []string, cleanup func(), err error) {
	if err := os.MkdirAll("/var/tmp/ffl-test", 0o755); err != nil {
		return nil, func() {}, err
	}
	d, err := os.MkdirTemp("/var/tmp/ffl-test", "bin")
	if err != nil {
		return nil, func() {}, err
	}
	cleanup = func() { _ = os.RemoveAll(d) }
	for _, pkg := range pkgs {
		bin, err := gobuild.In(d, pkg)
		if err != nil {
			cleanup()
			return nil, func() {}, err
		}
		bins = append(bins, bin)
	}
	return bins, cleanup, nil
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ChildEnv marks a test process re-executed by RunTestAs.
const ChildEnv = "FFL_TEST_AS_USER"

// IsChild reports whether this test process is the re-executed one.
func IsChild() bool { return os.Getenv(ChildEnv) == "1" }

// RunTestAs re-runs the named test of the current test binary as u (when the caller is root)
// and fails t if it fails. The test body then checks IsChild() or os.Getuid() != 0.
func RunTestAs(t *testing.T, u User, name string, env ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := SharedDir(t)
	bin := filepath.Join(dir, "test.bin")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append([]string{ChildEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + u.Home, "USER=" + u.Name, "LANG=C.UTF-8"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	out, err := cmd.CombinedOutput()
	t.Logf("%s as %s:\n%s", name, u.Name, out)
	if err != nil {
		t.Fatalf("%s as %s: %v", name, u.Name, err)
	}
}

// Eventually polls cond every 20 ms until it holds or the (generous) limit passes; it returns
// whether it held. Tests assert the outcome, never the time it took.
func Eventually(limit time.Duration, cond func() bool) bool {
	return Poll(limit, 20*time.Millisecond, cond)
}

// Poll checks cond every interval until it holds or limit passes and reports whether it held:
// Eventually for conditions that are cheap to check, a longer interval for ones that run
// commands (the Slurm suites poll squeue and /proc every 100 ms).
func Poll(limit, interval time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(interval)
	}
}

// PortFree reports whether port can be bound on 127.0.0.1 right now: once a session or a job
// has ended, its port must be free again for the next one.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// FreePort returns a port that nothing listens on at addr right now (tests only: ffl itself
// never probes a port and binds it later).
func FreePort(t testing.TB, addr string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// MustRead returns the content of the file at path and fails the test when it cannot be read.
func MustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RequireRoot skips the test unless it runs as root: the root-only cases act on files and
// processes of test users, as the hooks do. why, if given, says what needs root.
func RequireRoot(t testing.TB, why ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		reason := "acts on files and processes of test users, as ffl's root hooks do"
		if len(why) > 0 {
			reason = strings.Join(why, " ")
		}
		t.Skip("needs root: " + reason)
	}
}

// Must fails the test on error; context, if given, is a format and its arguments naming what
// was being done.
func Must(t testing.TB, err error, context ...any) {
	t.Helper()
	if err == nil {
		return
	}
	if len(context) > 0 {
		if format, ok := context[0].(string); ok {
			t.Fatalf("%s: %v", fmt.Sprintf(format, context[1:]...), err)
		}
	}
	t.Fatal(err)
}
