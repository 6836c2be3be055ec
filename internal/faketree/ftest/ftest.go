// Package ftest builds and starts faketree process trees for tests (see internal/faketree for
// the tree and its flags). It imports nothing of ffl, so any package's tests can use it,
// including pkg/proc's own.
package ftest

import (
	"bytes"
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

	"github.com/ffl-hpc/ffl/internal/gobuild"
)

// ReadyTimeout bounds how long Start waits for a tree to come up. Generous: test machines are
// shared and noisy.
const ReadyTimeout = 60 * time.Second

// Build compiles faketree into a fresh directory that every user can enter and execute from
// (trees often run under another uid) and returns the binary's path. The directory is removed
// when tb ends. Call it once per test binary (TestMain) or per test; a build takes a second or two.
func Build(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "faketree-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := BuildIn(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// BuildIn compiles faketree into dir (made world-searchable) and returns the binary's path; for
// TestMain, which has no testing.TB.
func BuildIn(dir string) (string, error) {
	return gobuild.In(dir, "github.com/ffl-hpc/ffl/internal/faketree")
}

// RunAsRoot is a TestMain body: as root it builds faketree into a temporary directory (removed
// afterwards) and stores its path in *bin, then runs the tests; as another user it just runs
// them (the root-only tests skip). It returns the exit code for os.Exit.
func RunAsRoot(m *testing.M, prefix string, bin *string) int {
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", prefix)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if *bin, err = BuildIn(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// Options says how to start a tree.
type Options struct {
	// Args are faketree flags, without -ready (Start adds it).
	Args []string
	// Credential, if set, runs the tree under another uid/gid (the caller must be root).
	Credential *syscall.Credential
	// Env, if set, replaces the tree's environment (the -marker flag adds to it).
	Env []string
	// Start starts the command; nil means cmd.Start. A test of a Reaper passes its Start.
	Start func(*exec.Cmd) error
}

// Tree is a running faketree.
type Tree struct {
	Cmd *exec.Cmd
	// Root, Child, Daemon are the PIDs; Daemon is 0 without -daemon.
	Root, Child, Daemon int
	pidfds              []int
	stderr              *bytes.Buffer
}

// PIDs returns the tree's PIDs in the order root, child, daemon (if any).
func (t *Tree) PIDs() []int {
	pids := []int{t.Root, t.Child}
	if t.Daemon != 0 {
		pids = append(pids, t.Daemon)
	}
	return pids
}

// Start starts faketree bin with opts, waits until the tree is up and returns it. When tb ends,
// every process of the tree is SIGKILLed through pidfds opened while the tree was known to be up
// (so a PID reused later is never hit) and the root is waited for.
func Start(tb testing.TB, bin string, opts Options) *Tree {
	tb.Helper()
	dir, err := os.MkdirTemp("", "faketree-ready-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if opts.Credential != nil {
		if err := os.Chown(dir, int(opts.Credential.Uid), int(opts.Credential.Gid)); err != nil {
			tb.Fatal(err)
		}
	}
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(bin, append(append([]string{}, opts.Args...), "-ready", ready)...)
	cmd.Env = opts.Env
	t := &Tree{Cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = t.stderr
	if opts.Credential != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: opts.Credential}
	}
	start := opts.Start
	if start == nil {
		start = (*exec.Cmd).Start
	}
	if err := start(cmd); err != nil {
		tb.Fatalf("start faketree: %v", err)
	}
	rootfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		_ = cmd.Process.Kill()
		tb.Fatalf("pidfd_open faketree: %v", err)
	}
	t.pidfds = append(t.pidfds, rootfd)
	tb.Cleanup(t.kill)

	deadline := time.Now().Add(ReadyTimeout)
	for {
		data, err := os.ReadFile(ready)
		if err == nil {
			if err := t.parse(data); err != nil {
				tb.Fatal(err)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			tb.Fatal(err)
		}
		if exited(rootfd) {
			_ = cmd.Wait()
			tb.Fatalf("faketree exited before it was ready: %s", t.stderr)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("faketree not ready after %v: %s", ReadyTimeout, t.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range t.PIDs()[1:] {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			tb.Fatalf("pidfd_open faketree pid %d: %v", pid, err)
		}
		t.pidfds = append(t.pidfds, fd)
	}
	return t
}

// ParseReady parses a faketree ready file into root, child and daemon PIDs (daemon 0 if absent).
func ParseReady(data []byte) (root, child, daemon int, err error) {
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		role, num, ok := strings.Cut(line, " ")
		pid, perr := strconv.Atoi(num)
		if !ok || perr != nil || pid <= 0 {
			return 0, 0, 0, fmt.Errorf("faketree ready file: bad line %q", line)
		}
		switch role {
		case "root":
			root = pid
		case "child":
			child = pid
		case "daemon":
			daemon = pid
		default:
			return 0, 0, 0, fmt.Errorf("faketree ready file: unknown role %q", role)
		}
	}
	if root == 0 || child == 0 {
		return 0, 0, 0, fmt.Errorf("faketree ready file: incomplete: %q", data)
	}
	return root, child, daemon, nil
}

func (t *Tree) parse(data []byte) error {
	root, child, daemon, err := ParseReady(data)
	if err != nil {
		return err
	}
	if root != t.Cmd.Process.Pid {
		return fmt.Errorf("faketree ready file names root %d, started %d", root, t.Cmd.Process.Pid)
	}
	t.Root, t.Child, t.Daemon = root, child, daemon
	return nil
}

// kill SIGKILLs every process of the tree that is still the one started, and waits for the root.
func (t *Tree) kill() {
	for _, fd := range t.pidfds {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		_ = unix.Close(fd)
	}
	t.pidfds = nil
	_ = t.Cmd.Wait() // may already have been waited for by the test: that error is fine
}

// exited reports whether the process behind pidfd has exited (the pidfd polls readable).
func exited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}
