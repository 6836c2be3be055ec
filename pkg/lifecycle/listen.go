package lifecycle

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// tcpListenState is the kernel's TCP_LISTEN in /proc/net/tcp's "st" column.
const tcpListenState = "0A"

// listeningInodes returns the socket inodes in LISTEN state on port (any local address, IPv4 or
// IPv6), from /proc/net/tcp{,6}.
//
// Why: xpra 3.1 binds with SO_REUSEADDR and listens only ~1.4 s later, so two xpras started at
// the same moment on the same port both bind; the second one's listen fails, it logs it and
// keeps running without a TCP socket, and an HTTP 200 on the port then comes from the OTHER
// user's session. Readiness therefore also requires that the listening socket is our xpra's.
func listeningInodes(procRoot string, port int) (map[uint64]bool, error) {
	out := map[uint64]bool{}
	hexPort := fmt.Sprintf("%04X", port)
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(filepath.Join(procRoot, f))
		if err != nil {
			if os.IsNotExist(err) && f == "net/tcp6" {
				continue
			}
			return nil, err
		}
		parseListeners(data, hexPort, out)
	}
	return out, nil
}

// parseListeners adds to out the inodes of the LISTEN sockets on hexPort in one /proc/net/tcp
// table.
func parseListeners(data []byte, hexPort string, out map[uint64]bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListenState {
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		if i < 0 || !strings.EqualFold(fields[1][i+1:], hexPort) {
			continue
		}
		if ino, err := strconv.ParseUint(fields[9], 10, 64); err == nil && ino != 0 {
			out[ino] = true
		}
	}
}

// holdsSocket reports whether process pid has one of the socket inodes open.
func holdsSocket(procRoot string, pid int, inodes map[uint64]bool) bool {
	if len(inodes) == 0 {
		return false
	}
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		s, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil && inodes[ino] {
			return true
		}
	}
	return false
}

// ownsListener reports whether pid is the process listening on port: the kernel's sock_diag
// answer, or /proc/net/tcp where netlink is not allowed.
func ownsListener(pid, port int) bool {
	inodes, err := listeningInodesDiag(port)
	if err != nil {
		if inodes, err = listeningInodes("/proc", port); err != nil {
			return false
		}
	}
	return holdsSocket("/proc", pid, inodes)
}
