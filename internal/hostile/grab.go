package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// grab copies the descriptors 0-15 of every new process of this user whose executable is one
// of exes (comma-separated),
// as soon as it can: it predicts the next PIDs and tries pidfd_open + pidfd_getfd on them in a
// tight loop (a /proc walk per try would be too slow to catch a process in its first
// milliseconds), and holds what it got open forever (so a pipe it copied never reaches EOF).
// Every copied descriptor's target is appended to ready, one a line ("pid fd target").
func grab(exes, ready string) error {
	want := map[string]bool{}
	for _, e := range strings.Split(exes, ",") {
		want[e] = true
	}
	if err := writeReady(ready, ""); err != nil {
		return err
	}
	var mu sync.Mutex
	var held []int
	seen := map[int]bool{}
	report := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(ready, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			fmt.Fprintln(f, line)
			f.Close()
		}
	}
	base := newestPID()
	for {
		if base == 0 || time.Now().UnixNano()%64 == 0 {
			if p := newestPID(); p > base {
				base = p
			}
		}
		for pid := base - 4; pid < base+64; pid++ {
			if pid <= 1 || seen[pid] {
				continue
			}
			pfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			target, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
			if !want[target] {
				if target != "" {
					seen[pid] = true
				}
				unix.Close(pfd)
				continue
			}
			got := 0
			for fd := 0; fd < 16; fd++ {
				c, err := unix.PidfdGetfd(pfd, fd, 0)
				if err != nil {
					continue
				}
				got++
				held = append(held, c)
				t, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(c))
				report(fmt.Sprintf("%d %d %s", pid, fd, t))
			}
			unix.Close(pfd)
			seen[pid] = true
			if pid >= base {
				base = pid + 1
			}
		}
	}
}

// newestPID is the highest PID now in /proc (the next ones come after it).
func newestPID() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	best := 0
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil && p > best {
			best = p
		}
	}
	return best
}

// listen listens on the unix socket path (made 0777 so any client may connect, like an X
// server's) and accepts and drops connections until killed.
func listen(path, ready string) error {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	_ = os.Chmod(path, 0o777)
	if err := writeReady(ready, filepath.Base(path)+"\n"); err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if strings.Contains(err.Error(), "closed") {
				return nil
			}
			continue
		}
		c.Close()
	}
}
