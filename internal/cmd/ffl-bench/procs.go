package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// asUser makes cmd run as the bench user with no supplementary groups, in its home.
func (b *bench) asUser(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(b.user.uid), Gid: uint32(b.user.gid), Groups: []uint32{}}}
	cmd.Dir = b.user.home
}

// marked returns the bench user's processes whose FFL_SESSION starts with prefix.
func (b *bench) marked(prefix string) []proc.Identity {
	ids, _ := proc.FindByMarker(b.user.uid, layout.MarkerVar, prefix)
	return ids
}

// killMarked SIGKILLs the bench user's processes carrying prefix: cleanup after a failed run,
// so one failure does not spoil the next figure.
func (b *bench) killMarked(prefix string) { b.killMarkedUID(b.user.uid, prefix) }

// killMarkedUID is killMarked for the processes of uid.
func (b *bench) killMarkedUID(uid int, prefix string) {
	for round := 0; round < 3; round++ {
		ids, _ := proc.FindByMarker(uid, layout.MarkerVar, prefix)
		if len(ids) == 0 {
			return
		}
		for _, id := range ids {
			_ = proc.Signal(id, unix.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMarked waits until every marker in markers has at least n live processes.
func (b *bench) waitMarked(markers []string, n int, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		ok := true
		for _, m := range markers {
			if len(b.marked(m)) < n {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("session trees not up within %s", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pidfds holds descriptors of processes opened while they were known to be the ones measured:
// waiting on them is exact (a pidfd polls readable when its process exits) and immune to PID
// reuse.
type pidfds []int

func openPidfds(ids []proc.Identity) pidfds {
	var fds pidfds
	for _, id := range ids {
		fd, err := unix.PidfdOpen(id.PID, 0)
		if err != nil {
			continue // already gone
		}
		if now, err := proc.Lookup(id.PID); err != nil || now.StartTime != id.StartTime {
			unix.Close(fd)
			continue
		}
		fds = append(fds, fd)
	}
	return fds
}

func (p pidfds) close() {
	for _, fd := range p {
		unix.Close(fd)
	}
}

// signal sends sig to every process; errors (already gone) do not matter.
func (p pidfds) signal(sig unix.Signal) {
	for _, fd := range p {
		_ = unix.PidfdSendSignal(fd, sig, nil, 0)
	}
}

// exited reports whether every process has exited, without waiting.
func (p pidfds) exited() bool {
	if len(p) == 0 {
		return true
	}
	fds := make([]unix.PollFd, len(p))
	for i, fd := range p {
		fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == len(p)
}

// wait blocks until every process has exited (or limit passes) and returns when the last one did.
func (p pidfds) wait(limit time.Duration) (time.Time, error) {
	end := time.Now().Add(limit)
	left := append([]int(nil), p...)
	for len(left) > 0 {
		fds := make([]unix.PollFd, len(left))
		for i, fd := range left {
			fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		}
		timeout := int(time.Until(end) / time.Millisecond)
		if timeout <= 0 {
			return time.Time{}, fmt.Errorf("%d processes still alive after %s", len(left), limit)
		}
		n, err := unix.Poll(fds, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("poll pidfds: %w", err)
		}
		if n == 0 {
			continue
		}
		var still []int
		for i, f := range fds {
			if f.Revents == 0 {
				still = append(still, left[i])
			}
		}
		left = still
	}
	return time.Now(), nil
}

// memInfo is what /proc/PID/status says about a process's memory, in KiB.
type memInfo struct {
	rss, hwm, anon, file int64 // VmRSS, VmHWM, RssAnon, RssFile
	bin                  int64 // Rss of the mappings of the process's own executable (smaps)
}

// memStatus reads pid's memInfo.
func memStatus(pid int) (memInfo, error) {
	var m memInfo
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, err
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.hwm, "RssAnon": &m.anon, "RssFile": &m.file}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("%s: %q", k, v)
		}
		*dst = n
	}
	if m.rss == 0 || m.hwm == 0 {
		return m, fmt.Errorf("pid %d: no VmRSS/VmHWM", pid)
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	m.bin = exeRss(pid)
	return m, nil
}

// exeRss sums the Rss of pid's mappings of its own executable, from /proc/PID/smaps.
func exeRss(pid int) int64 {
	dir := "/proc/" + strconv.Itoa(pid)
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open(dir + "/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var total int64
	inExe := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			inExe = len(fields) >= 6 && fields[5] == exe
			continue
		}
		if inExe && len(fields) == 3 && fields[0] == "Rss:" {
			n, _ := strconv.ParseInt(fields[1], 10, 64)
			total += n
		}
	}
	return total
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// othersSharing lists the Firefox, xpra and Xvfb processes on the node that are not the bench
// user's (pid, name, uid). They map the libraries an idle session's PSS is split with, so while
// any runs L5 comes out lower than on an otherwise idle node (by 120-160 MiB with one to three
// idle sessions of other users on the node, docs/DESIGN.md).
func (b *bench) othersSharing() []string {
	var out []string
	_, _ = proc.Scan(func(st proc.Stat, uid int) bool {
		if uid != b.user.uid && sharesWithSession(st.Comm) {
			out = append(out, fmt.Sprintf("%d %s (uid %d)", st.PID, st.Comm, uid))
		}
		return false
	})
	return out
}

// sharesWithSession says whether a process name is one of a session's own programs.
func sharesWithSession(comm string) bool {
	for _, p := range []string{"firefox", "xpra", "Xvfb"} {
		if strings.HasPrefix(comm, p) {
			return true
		}
	}
	return false
}
