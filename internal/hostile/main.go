// Command hostile is the attacker of ffl's hostile-user tests and benchmarks: what an
// unprivileged user can do on a node to hold up, slow down or trick the root hooks. Run it as
// that user; every mode writes "ready" (or its findings) to -ready once armed, and runs until it
// is killed (tests always kill it: they disarm what they arm).
//
//	hostile -mode fuse-environ -dir D -ready F   a process whose /proc/PID/environ read blocks:
//	                                             its environment pages are mapped from a FUSE
//	                                             file (in its own user namespace) that never
//	                                             answers a read
//	hostile -mode many -n N -env-kib K -ready F  N processes sharing one K KiB environment
//	                                             (forked, so the memory is shared)
//	hostile -mode grab -exe PATH -ready F        copy the descriptors 0-15 of every new process
//	                                             of this user running PATH (pidfd_getfd) and
//	                                             hold them; the targets go to -ready, one a line
//	hostile -mode listen -socket P -ready F      listen on the unix socket P (an X server
//	                                             without a lock file, as Xvfb -displayfd leaves)
//	hostile -mode door-squat -ports LO-HI -n N   pre-bind N sockets on each port, then connect
//	        -dir D -ready F                      from the victim's port to its other one, send
//	                                             and reset (doorSquat)
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	mode := flag.String("mode", "", "fuse-environ, many, grab, listen or door-squat")
	dir := flag.String("dir", "", "fuse-environ: a directory of this user for the mount point")
	ready := flag.String("ready", "", "file written once armed")
	n := flag.Int("n", 1000, "many: processes")
	envKiB := flag.Int("env-kib", 1024, "many: environment size per process, KiB")
	exe := flag.String("exe", "", "grab: the program whose processes' descriptors are copied")
	socket := flag.String("socket", "", "listen: the socket path")
	ports := flag.String("ports", "", "door-squat: the port range LO-HI to pre-bind")
	lifeline := flag.Int("lifeline", -1, "a descriptor whose EOF (the test process died) disarms the attack like SIGTERM")
	flag.Parse()
	if *lifeline >= 0 {
		f := os.NewFile(uintptr(*lifeline), "lifeline")
		syscall.CloseOnExec(*lifeline) // not inherited by the inner parts
		go func() {
			_, _ = io.Copy(io.Discard, f)
			// The test process is gone: disarm as on SIGTERM (the FUSE trap answers what it
			// holds), then end the whole attack (its process group: forked helpers too).
			if *mode == "fuse-environ" {
				_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
				time.Sleep(3 * time.Second)
			}
			_ = syscall.Kill(0, syscall.SIGKILL)
		}()
	}
	var err error
	switch *mode {
	case "fuse-environ":
		err = fuseEnviron(*dir, *ready)
	case "fuse-inner": // the part inside the user namespace; see fuseEnviron
		err = fuseInner(*dir, *ready)
	case "many":
		err = many(*n, *envKiB, *ready)
	case "many-inner":
		err = manyInner(*n, *ready)
	case "grab":
		err = grab(*exe, *ready)
	case "listen":
		err = listen(*socket, *ready)
	case "door-squat":
		err = doorSquat(*dir, *ports, *n, *ready)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

// writeReady writes content to path atomically.
func writeReady(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fuseEnviron re-executes this program as fuse-inner in a new user and mount namespace (this
// user mapped to root there, where it may mount FUSE), gets the FUSE device from it and serves
// the file system (never answering a READ). Disarming (SIGTERM) cannot rely on the inner
// process, which is stuck behind its own mmap lock: this process answers the pending READs with
// EIO (until then the reading thread is unkillable), SIGKILLs it, and closes the device when
// it is gone, which ends the connection.
func fuseEnviron(dir, ready string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The device must be opened in the mount's user namespace: the inner process opens it and
	// hands this one a copy over a socket pair.
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	theirs := os.NewFile(uintptr(pair[1]), "socket")
	cmd := exec.Command(self, "-mode", "fuse-inner", "-dir", dir, "-ready", ready+".inner")
	cmd.Env = []string{"HOSTILE=fuse"} // an empty environment would be read without the lock
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("unprivileged user namespace: %w", err)
	}
	theirs.Close()
	devFD, err := receiveFD(pair[0])
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("FUSE device from the trap process: %w", err)
	}
	sv := &server{dev: devFD}
	go sv.serve()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	disarm := func() error {
		sv.disarm()
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		sv.disarm() // what came in meanwhile
		unix.Close(devFD)
		return nil
	}
	// The trap is armed when a thread of the inner process waits for the mmap lock for writing
	// (waitsForWrite; the inner process cannot say so itself: it is stuck behind that lock).
	// The deadline is generous: on a loaded 2-core machine (go test -race of every package at
	// once) the inner process's READ has been seen to take more than 10 s to arrive.
	const armTimeout = 30 * time.Second
	armed, unmapping := false, false
	for deadline := time.Now().Add(armTimeout); ; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-exited:
			sv.disarm()
			unix.Close(devFD)
			return fmt.Errorf("trap process ended: %v", err)
		case <-term:
			return disarm()
		default:
		}
		if !armed {
			if !unmapping && sv.pendingReads() > 0 {
				// The reading thread waits for its READ, holding the mmap lock: now the
				// unmapping may queue behind it.
				unmapping = true
				if _, err := unix.Write(pair[0], []byte{1}); err != nil {
					_ = disarm()
					return fmt.Errorf("tell the trap process to unmap: %w", err)
				}
			}
			if _, err := os.Stat(ready + ".inner"); err == nil && unmapping && waitsForWrite(cmd.Process.Pid) {
				armed = true
				if err := writeReady(ready, fmt.Sprintf("armed %d\n", cmd.Process.Pid)); err != nil {
					_ = disarm()
					return err
				}
			} else if time.Now().After(deadline) {
				_, innerErr := os.Stat(ready + ".inner")
				writer, chans := waitsForWrite(cmd.Process.Pid), threadWaits(cmd.Process.Pid)
				_ = disarm()
				return fmt.Errorf("trap not armed after %s (inner process mapped the file: %t; its READ seen: %t; unmapping thread waiting for the lock: %t; its threads wait in: %s)",
					armTimeout, innerErr == nil, unmapping, writer, chans)
			}
		}
	}
}

// receiveFD receives one descriptor over a unix socket (SCM_RIGHTS).
func receiveFD(sock int) (int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, 0)
	if err != nil {
		return -1, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("no descriptor received (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("no descriptor received (%v)", err)
	}
	return fds[0], nil
}

// waitsForWrite reports whether a thread of pid waits to take its mmap lock for writing: asleep
// (D) in a call that takes it (munmap, or an mmap of the Go runtime growing its heap, which has
// been seen to queue first on a loaded machine: the trap is armed just the same), or in a
// rwsem's write path, whichever name wchan gives on this kernel.
func waitsForWrite(pid int) bool {
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, t := range tasks {
		dir := "/proc/" + strconv.Itoa(pid) + "/task/" + t.Name()
		w, _ := os.ReadFile(dir + "/wchan")
		if strings.Contains(string(w), "down_write") || strings.Contains(string(w), "munmap") {
			return true
		}
		if strings.Contains(string(w), "mmap") && threadState(dir) == "D" {
			return true
		}
	}
	return false
}

// threadState is the state letter of /proc/PID/task/TID/stat ("?" when unreadable).
func threadState(dir string) string {
	st, _ := os.ReadFile(dir + "/stat")
	if i := strings.LastIndexByte(string(st), ')'); i >= 0 && i+2 < len(st) {
		return string(st[i+2])
	}
	return "?"
}

// threadWaits lists where pid's threads wait (their wchan and state), for the error of a trap
// that did not arm.
func threadWaits(pid int) string {
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	var out []string
	for _, t := range tasks {
		dir := "/proc/" + strconv.Itoa(pid) + "/task/" + t.Name()
		w, _ := os.ReadFile(dir + "/wchan")
		out = append(out, t.Name()+":"+threadState(dir)+":"+string(w))
	}
	return strings.Join(out, " ")
}

// many starts manyInner with a k KiB environment.
func many(n, kib int, ready string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-mode", "many-inner", "-n", strconv.Itoa(n), "-ready", ready)
	// Variables of 64 KiB each: one string may not exceed 128 KiB (MAX_ARG_STRLEN).
	for i := 0; i < (kib+63)/64; i++ {
		cmd.Env = append(cmd.Env, fmt.Sprintf("HOSTILE_PAD%d=%s", i, strings.Repeat("m", 64<<10-16)))
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Wait()
}

// manyInner forks n children that only pause. fork without exec shares the environment pages
// (copy on write), so n processes with a 1 MiB environment cost page tables, not n MiB. The
// children run nothing of Go's runtime: raw system calls only.
func manyInner(n int, ready string) error {
	pids := make([]string, 0, n)
	for i := 0; i < n; i++ {
		pid, _, errno := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("fork %d: %v", i, errno)
		}
		if pid == 0 {
			for {
				syscall.RawSyscall(syscall.SYS_PAUSE, 0, 0, 0)
			}
		}
		pids = append(pids, strconv.Itoa(int(pid)))
	}
	if err := writeReady(ready, strings.Join(pids, "\n")+"\n"); err != nil {
		return err
	}
	for {
		time.Sleep(time.Hour)
	}
}
