package front

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/hostile/htest"
	"github.com/ffl-hpc/ffl/internal/testutil"
)

// attackTries is how many connections the attacker makes in one run (issue 16 saw 19 of 31
// admitted before the fix).
const attackTries = 40

// TestNoProofAttack is issue 16's first attack, done by a second real user: it pre-binds
// sockets (SO_REUSEADDR, not listening) on a port, the victim (this test's uid) then holds that
// port and another one (a session's), and the attacker connects from the victim's first port to
// the second, sends a request the door would relay, and resets. The kernel's lookup of the
// gone client socket answers with the victim's listener. Every connection must be refused and
// counted, xpra (a fake counting bytes) must get none of them, and the victim's own request
// still goes through.
func TestNoProofAttack(t *testing.T) {
	testutil.RequireRoot(t, "runs the attacker as a second real user")
	attacker := testutil.TestUser(t, "ffltest2")
	bin, err := htest.BuildIn(testutil.SharedDir(t))
	if err != nil {
		t.Fatal(err)
	}
	from, to := testutil.FreePort(t, "127.0.0.1"), testutil.FreePort(t, "127.0.0.1")
	for to == from {
		to = testutil.FreePort(t, "127.0.0.1")
	}
	a, err := htest.Start(t, bin, attacker.UID, attacker.GID, testutil.SharedDir(t),
		"-mode", "door-squat", "-ports", fmt.Sprintf("%d-%d", from, from), "-n", strconv.Itoa(attackTries))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.Findings(), "squatting 1 ") {
		t.Fatalf("the attacker could not squat port %d: %q", from, a.Findings())
	}
	held := listen2(t, from, Options{UID: os.Getuid()}) // the victim's other port (the Jupyter proxy's, say)
	defer held.Close()
	x := newFakeXpra(t)
	// The real lookup, counted: how many of the attacker's connections it admits as the victim.
	var lookups, admitted atomic.Int64
	peer := func(local, remote *net.TCPAddr) (int, error) {
		uid, err := PeerUID(local, remote)
		lookups.Add(1)
		if err == nil && uid == os.Getuid() {
			admitted.Add(1)
		}
		return uid, err
	}
	f := listen2(t, to, Options{UID: os.Getuid(), PeerUID: peer})
	defer f.Close()
	f.Ready(x.path)

	dir := filepath.Dir(a.Ready)
	req := fmt.Sprintf("GET /attack HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://127.0.0.1:%d\r\n\r\n", to, to)
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "payload"), []byte(req), 0o644), "payload")
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "go"), []byte(fmt.Sprintf("%d %d\n", from, to)), 0o644), "go")
	var done string
	if !testutil.Eventually(2*time.Minute, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "done"))
		done = string(b)
		return err == nil
	}) {
		findings := a.Findings()
		t.Fatalf("the attacker did not finish: %q; its stderr: %q", findings, a.StopOutput())
	}
	var tries, connected, sent int
	if _, err := fmt.Sscanf(done, "tries %d connected %d sent %d", &tries, &connected, &sent); err != nil || connected == 0 || sent == 0 {
		t.Fatalf("the attack did not run: %q (%v)", done, err)
	}
	// Every connection the attacker made is looked up: wait until all are.
	testutil.Eventually(30*time.Second, func() bool { return lookups.Load() >= int64(connected) })
	t.Logf("attack: %d tries, %d connected, %d sent and reset; looked up %d, refused %d, admitted %d; xpra got %d requests, %d bytes",
		tries, connected, sent, lookups.Load(), f.Refusals(), admitted.Load(), len(x.requests()), x.bytes.Load())
	if admitted.Load() != 0 || x.bytes.Load() != 0 {
		t.Errorf("%d of %d attack connections admitted as the victim; xpra got %d bytes", admitted.Load(), connected, x.bytes.Load())
	}
	// Every connection the front saw is refused, and it saw every one the attacker counted. It
	// may see one more: a connect the attacker gave up on (EINTR, then no answer within its 1 s
	// wait under load; seen once in CI: 39 counted, 40 looked up and refused) can still have
	// completed its handshake in the kernel.
	if r := f.Refusals(); int64(r) != lookups.Load() || r < connected || r > tries {
		t.Errorf("refusals counted: %d; want every one of the %d looked up, at least the %d the attacker connected and at most its %d tries",
			r, lookups.Load(), connected, tries)
	}
	c := dial(t, f)
	if code, body := get(t, c, bufio.NewReader(c), host(f), "/own"); code != 200 || body != "xpra:/own" {
		t.Errorf("the victim's own request after the attack: %d %q", code, body)
	}
}

func listen2(t *testing.T, port int, opts Options) *Front {
	t.Helper()
	f, err := Listen("127.0.0.1", port, opts)
	if err != nil {
		t.Fatalf("the victim's front on %d: %v", port, err)
	}
	return f
}
