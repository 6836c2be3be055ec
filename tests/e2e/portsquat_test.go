package e2e

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// portSquatter listens on one loopback address for every port of a range, as another user, and
// records every byte any client sends to any of them.
const portSquatter = `
import os, selectors, socket, sys
host, lo, hi, log, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
sel = selectors.DefaultSelector()
held, failed = 0, []
for p in range(lo, hi + 1):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, p))
    except OSError as e:
        failed.append("%d: %s" % (p, e.strerror))
        s.close()
        continue
    s.listen(16)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, "listen")
    held += 1
open(log, "wb").close()
with open(ready + ".tmp", "w") as f:
    f.write("\n".join([str(held)] + failed))
os.rename(ready + ".tmp", ready)
while True:
    for key, _ in sel.select():
        if key.data == "listen":
            try:
                c, _ = key.fileobj.accept()
            except OSError:
                continue
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, "conn")
        else:
            try:
                b = key.fileobj.recv(65536)
            except OSError:
                b = b""
            if b:
                with open(log, "ab") as f:
                    f.write(b)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
`

// squatPorts makes another user hold host:port for every port of e's range, listening, and
// returns the file of every byte it receives.
func squatPorts(t *testing.T, e *env, host string) string {
	t.Helper()
	attacker := testutil.TestUser(t, "ffltest2")
	dir := testutil.UserDir(t, attacker)
	log, ready := filepath.Join(dir, "received"), filepath.Join(dir, "ready")
	cmd := exec.Command("/usr/bin/python3", "-I", "-c", portSquatter, host, strconv.Itoa(e.portLo), strconv.Itoa(e.portHi), log, ready)
	cmd.Dir, cmd.Env = "/", []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(attacker.UID), Gid: uint32(attacker.GID)}}
	testutil.Must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !testutil.Eventually(30*time.Second, func() bool { return testutil.Exists(ready) }) {
		t.Fatal("the port squatter did not start")
	}
	held, failed, _ := strings.Cut(string(testutil.MustRead(t, ready)), "\n")
	if held != strconv.Itoa(e.portHi-e.portLo+1) {
		t.Fatalf("the squatter holds %s of the %d ports on %s (not bound: %s)", held, e.portHi-e.portLo+1, host, strings.ReplaceAll(failed, "\n", "; "))
	}
	return log
}

// fetchAs GETs url as user u: the status code, 0 without an HTTP answer.
func fetchAs(u testutil.User, url string) int {
	cmd := exec.Command("curl", "-g", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	out, _ := cmd.Output()
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return code
}

// TestPortRangeSquat: another user listens on one loopback family ([::1], then 127.0.0.1) on
// every port of the range. The victim still gets sessions (run, then start): each listens on
// the other family alone and its URL and ssh line name that address literally; the owner's
// request by that URL is answered; the squatter receives no byte.
func TestPortRangeSquat(t *testing.T) {
	if _, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback on this machine")
	}
	for _, c := range []struct{ held, want string }{{"::1", "127.0.0.1"}, {"127.0.0.1", "::1"}} {
		t.Run("held "+c.held, func(t *testing.T) {
			job := "9320"
			if c.held == "127.0.0.1" {
				job = "9321"
			}
			e := fakeEnv(t, job, nil)
			log := squatPorts(t, e, c.held)
			l := e.run()
			info := l.ready(t)
			second := lifecycle.Info{}
			out, err := e.command("start", "--json").Output()
			testutil.Must(t, err, "start: %s", out)
			testutil.Must(t, json.Unmarshal(out, &second), "start json %s", out)
			for _, in := range []lifecycle.Info{info, second} {
				addr := net.JoinHostPort(c.want, strconv.Itoa(in.Port))
				if in.URL != "http://"+addr+"/" || !strings.Contains(in.SSH, ":"+addr+" ") {
					t.Errorf("session %d: URL %q, ssh %q: want %s named literally", in.Port, in.URL, in.SSH, addr)
				}
				if code := fetchAs(e.user, in.URL); code != 200 {
					t.Errorf("the owner got HTTP %d from %s, want 200", code, in.URL)
				}
			}
			if got := testutil.MustRead(t, log); len(got) != 0 {
				t.Errorf("the squatter received %d bytes: %q", len(got), got)
			}
			if code, _ := l.stop(t, syscall.SIGTERM); code != 143 {
				t.Errorf("launcher exit %d, want 143", code)
			}
			_ = os.Remove(log)
		})
	}
}
