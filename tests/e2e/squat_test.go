package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// fakeSupervisor is the squatter's control socket: it accepts every connection, records every
// byte a client sends, and answers each with a fake session whose URL carries a terminal
// escape sequence.
const fakeSupervisor = `
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(64)
open(log, "wb").close()
while True:
    c, _ = s.accept()
    c.settimeout(2)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            b = c.recv(65536)
            if not b:
                break
            data += b
    except Exception:
        pass
    with open(log, "ab") as f:
        f.write(data)
    body = b'{"port":1,"node":"x","job":"x","url":"http://evil.example/\x1b]2;pwned\x07"}'
    try:
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except Exception:
        pass
    c.close()
`

// squat is another user's squat of the victim's <temp>/ffl-<uid>: a job dir of the victim's
// job with a planted session dir, and a fake supervisor on control.sock there.
type squat struct {
	sock, log string
}

func newSquat(t *testing.T, e *env) squat {
	t.Helper()
	attacker := testutil.TestUser(t, "ffltest2")
	tmp := filepath.Join(e.dir, "tmp")
	testutil.Must(t, os.Chmod(e.dir, 0o755)) // the squatter reaches temp_dir, as it reaches /tmp
	testutil.Must(t, os.Chown(tmp, 0, 0))
	testutil.Must(t, os.Chmod(tmp, 0o777|os.ModeSticky)) // a node's /tmp
	parent := filepath.Join(tmp, layout.UserTempName(e.user.UID))
	job := filepath.Join(parent, layout.JobDirName(e.job))
	planted := filepath.Join(job, "session-"+strconv.Itoa(e.portLo))
	for _, d := range []string{parent, job, planted} {
		testutil.MkdirAs(t, d, attacker, 0o755)
	}
	testutil.WriteAs(t, filepath.Join(planted, "state.json"), attacker, []byte(`{"port":1}`))
	sq := squat{sock: filepath.Join(job, layout.ControlSocket), log: filepath.Join(testutil.UserDir(t, attacker), "received")}
	cmd := exec.Command("/usr/bin/python3", "-I", "-c", fakeSupervisor, sq.sock, sq.log)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	errf, err := os.Create(filepath.Join(e.dir, "squatter.err"))
	testutil.Must(t, err)
	defer errf.Close()
	cmd.Stderr = errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(attacker.UID), Gid: uint32(attacker.GID)}}
	testutil.Must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !testutil.Eventually(30*time.Second, func() bool { return testutil.Exists(sq.log) }) {
		t.Fatalf("the squatter's fake supervisor did not start: %s", testutil.MustRead(t, errf.Name()))
	}
	return sq
}

// received is every byte the squatter's fake supervisor got.
func (sq squat) received(t *testing.T) []byte {
	t.Helper()
	return testutil.MustRead(t, sq.log)
}

// TestSquattedTempParent: another user created the victim's <temp>/ffl-<uid> first, with the
// victim's job dir, a planted session dir and a fake supervisor on control.sock. The victim's
// `ffl-launch run` still starts (a private parent), and start, list and stop without
// $FFL_CONTROL_SOCKET reach the victim's own supervisor; with $FFL_CONTROL_SOCKET pointing at
// the fake, start is refused with one line naming the uid (exit 4). The fake never receives a
// byte.
func TestSquattedTempParent(t *testing.T) {
	e := fakeEnv(t, "9310", nil)
	sq := newSquat(t, e)
	l := e.run()
	info := l.ready(t)
	if !strings.HasPrefix(info.URL, "http://127.0.0.1:") {
		t.Errorf("session URL %q", info.URL)
	}

	start := e.command("start", "--json")
	out, err := start.Output()
	testutil.Must(t, err, "start: %s", out)
	var second lifecycle.Info
	testutil.Must(t, json.Unmarshal(out, &second), "start json %s", out)
	if second.Port < e.portLo || second.Port > e.portHi || second.Port == info.Port {
		t.Errorf("start answered port %d (range %d-%d, first %d): not the victim's supervisor", second.Port, e.portLo, e.portHi, info.Port)
	}
	list, err := e.command("list", "--json").Output()
	testutil.Must(t, err, "list")
	for _, p := range []int{info.Port, second.Port} {
		if !bytes.Contains(list, []byte(`"port":`+strconv.Itoa(p))) {
			t.Errorf("list does not show port %d: %s", p, list)
		}
	}
	stop := e.command("stop", strconv.Itoa(second.Port))
	if b, err := stop.CombinedOutput(); err != nil {
		t.Errorf("stop %d: %v: %s", second.Port, err, b)
	}

	forced := e.command("start", "--json")
	forced.Env = append(forced.Env, lifecycle.EnvControlSocket+"="+sq.sock)
	var stdout, stderr bytes.Buffer
	forced.Stdout, forced.Stderr = &stdout, &stderr
	err = forced.Run()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	msg := strings.TrimSpace(stderr.String())
	attacker := testutil.TestUser(t, "ffltest2")
	if code != 4 || stdout.Len() != 0 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "uid "+strconv.Itoa(attacker.UID)) {
		t.Errorf("start against the squatter's socket: exit %d, stdout %q, stderr %q; want exit 4, nothing on stdout, one line naming uid %d", code, stdout.String(), msg, attacker.UID)
	}
	if got := sq.received(t); len(got) != 0 {
		t.Errorf("the squatter's fake supervisor received %d bytes: %q", len(got), got)
	}
	if c, _ := l.stop(t, syscall.SIGTERM); c != 143 {
		t.Errorf("launcher exit %d, want 143", c)
	}
}
