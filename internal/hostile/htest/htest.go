// Package htest builds and runs the hostile attacker (internal/hostile) for tests and
// benchmarks, as an unprivileged user, and always disarms it: SIGTERM (the FUSE trap answers its
// pending reads and ends), then SIGKILL of its whole process group, then, as a last resort, an
// abort of the FUSE connection of its own mount (never another one: tests of other packages run
// their traps at the same time, and aborting theirs disarms them).
package htest

import (
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

	"github.com/ffl-hpc/ffl/internal/gobuild"
)

// ReadyTimeout bounds the wait for an attack to be armed.
const ReadyTimeout = 60 * time.Second

// ErrUnsupported means this machine cannot run the attack (no unprivileged user namespaces, no
// /dev/fuse, ...): tests skip with the message.
var ErrUnsupported = errors.New("attack not possible on this machine")

// BuildIn compiles the attacker into dir (made world-searchable) and returns its path.
func BuildIn(dir string) (string, error) {
	return gobuild.In(dir, "github.com/ffl-hpc/ffl/internal/hostile")
}

// Attack is one running attacker.
type Attack struct {
	cmd    *exec.Cmd
	done   chan struct{}
	dir    string
	Ready  string   // the file the attacker writes once armed (and, for grab, its findings)
	conns  []string // the FUSE connections (fusectl names) of the attack's own mounts
	stderr *strings.Builder
	// lifeline is the write end of a pipe whose read end the attacker watches: when this
	// process dies in any way (a test binary's timeout panic runs no Cleanup; SIGKILL), the
	// attacker sees EOF and disarms itself, so no trap outlives its test.
	lifeline *os.File
}

// Start runs bin as uid:gid with args and -ready (and -dir, a fresh directory of the user
// below base) added, waits until the attack is armed and returns it. The attack is stopped at
// the end of tb. An attacker that fails to arm because the machine cannot do it yields an
// error wrapping ErrUnsupported.
func Start(tb testing.TB, bin string, uid, gid int, base string, args ...string) (*Attack, error) {
	tb.Helper()
	a, err := StartNoCleanup(bin, uid, gid, base, args...)
	if a != nil {
		tb.Cleanup(a.Stop)
	}
	return a, err
}

// StartNoCleanup is Start for callers without a testing.TB (the benchmarks): they must Stop it.
func StartNoCleanup(bin string, uid, gid int, base string, args ...string) (*Attack, error) {
	dir, err := os.MkdirTemp(base, "hostile-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	a := &Attack{dir: dir, Ready: filepath.Join(dir, "ready"), done: make(chan struct{}), stderr: &strings.Builder{}}
	lr, lw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	a.lifeline = lw
	a.cmd = exec.Command(bin, append(append([]string{}, args...), "-dir", dir, "-ready", a.Ready, "-lifeline", "3")...)
	a.cmd.ExtraFiles = []*os.File{lr}
	a.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	a.cmd.Dir = dir
	a.cmd.Stderr = a.stderr
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setpgid: true}
	err = a.cmd.Start()
	lr.Close()
	if err != nil {
		lw.Close()
		return nil, err
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	deadline := time.Now().Add(ReadyTimeout)
	for {
		if _, err := os.Stat(a.Ready); err == nil {
			mountFusectl()
			a.conns = fuseConnsOf(a.Findings(), filepath.Join(dir, "mnt"))
			if strings.HasPrefix(a.Findings(), "armed") && !a.connsListed() {
				a.Stop()
				return nil, fmt.Errorf("attacker %v armed, but its FUSE connection %v is not in %s: Stop could not abort it", args, a.conns, fuseCtl)
			}
			return a, nil
		}
		select {
		case <-a.done:
			msg := strings.TrimSpace(a.stderr.String())
			a.Stop()
			if strings.Contains(msg, "user namespace") || strings.Contains(msg, "/dev/fuse") || strings.Contains(msg, "mount fuse") {
				return nil, fmt.Errorf("%w: %s", ErrUnsupported, msg)
			}
			return nil, fmt.Errorf("attacker %v ended before it was armed: %s", args, msg)
		default:
		}
		if time.Now().After(deadline) {
			a.Stop()
			return nil, fmt.Errorf("attacker %v not armed after %s: %s", args, ReadyTimeout, a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Findings returns what the attacker wrote to its ready file.
func (a *Attack) Findings() string {
	data, _ := os.ReadFile(a.Ready)
	return string(data)
}

// StopOutput stops the attack and returns what it wrote to stderr (read only once it has
// ended: the builder is written by exec's copying goroutine until then).
func (a *Attack) StopOutput() string {
	a.Stop()
	return a.stderr.String()
}

// PID is the attacker's process.
func (a *Attack) PID() int { return a.cmd.Process.Pid }

// Stop disarms the attack; it is idempotent.
func (a *Attack) Stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	pgid := a.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
	}
	// Last resort: a FUSE connection of the attack still alive would keep a process in D state.
	for _, c := range a.conns {
		_ = os.WriteFile(filepath.Join(fuseCtl, c, "abort"), []byte("1"), 0o200)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = os.RemoveAll(a.dir)
	if a.lifeline != nil {
		a.lifeline.Close()
	}
	a.cmd = nil
}

// fuseCtl is where the fusectl file system lists FUSE connections.
const fuseCtl = "/sys/fs/fuse/connections"

// fuseConnsOf returns the fusectl names of the FUSE mounts on mnt of the process the FUSE
// trap names in its findings ("armed PID"), read from that process's mountinfo (the mount lives
// in its own mount namespace); none for other attacks.
func fuseConnsOf(findings, mnt string) []string {
	var pid int
	if _, err := fmt.Sscanf(findings, "armed %d", &pid); err != nil || pid <= 0 {
		return nil
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return nil
	}
	return parseFuseConns(string(data), mnt)
}

// parseFuseConns picks the fuse mounts on mnt out of a mountinfo text ("ID PARENT MAJ:MIN ROOT
// MOUNTPOINT ... - FSTYPE SOURCE OPTS") and names each as fusectl does: the superblock's device
// number, (major << 20) | minor in decimal.
func parseFuseConns(mountinfo, mnt string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 1 || f[4] != mnt || (g[0] != "fuse" && !strings.HasPrefix(g[0], "fuse.")) {
			continue
		}
		var major, minor uint64
		if _, err := fmt.Sscanf(f[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		out = append(out, strconv.FormatUint(major<<20|minor, 10))
	}
	return out
}

// connsListed reports whether the attack has FUSE connections and fusectl lists them all.
func (a *Attack) connsListed() bool {
	for _, c := range a.conns {
		if _, err := os.Stat(filepath.Join(fuseCtl, c)); err != nil {
			return false
		}
	}
	return len(a.conns) > 0
}

// mountFusectl mounts the fusectl file system where it is not (as root), so that Stop can abort
// the attack's connection.
func mountFusectl() {
	if ents, err := os.ReadDir(fuseCtl); err == nil && len(ents) == 0 && os.Geteuid() == 0 {
		_ = syscall.Mount("fusectl", fuseCtl, "fusectl", 0, "")
	}
}
