package front

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// syncWriter serialises writes of the front's goroutines into w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// freePort returns a port that nothing listens on right now (tests only: ffl never probes).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func listen(t *testing.T, opts Options) *Front {
	t.Helper()
	f, err := Listen("127.0.0.1", freePort(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// echoServer is a stand-in for xpra's unix socket: it answers every line with "xpra:" + line.
func echoServer(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xpra.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, "xpra:"+sc.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return path
}

func dial(t *testing.T, f *Front) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(f.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// refusedRead connects and returns what the front sends before it closes the connection; a
// front that resets the connection before connect(2) even returns sent nothing too.
func refusedRead(t *testing.T, f *Front, send string) string {
	t.Helper()
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(f.Port()))
	if err != nil {
		if isReset(err) {
			return ""
		}
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.WriteString(c, send)
	return readAll(t, c)
}

// readAll reads what the front sends until it closes the connection.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset by peer") || errors.Is(err, io.EOF))
}

func uidIs(uid int) func(_, _ *net.TCPAddr) (int, error) {
	return func(_, _ *net.TCPAddr) (int, error) { return uid, nil }
}

// TestPeerUIDRealKernel asks the real kernel (sock_diag, and /proc/net/tcp as the fallback) who
// owns the client end of a loopback connection this process made.
func TestPeerUIDRealKernel(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
			if err != nil {
				t.Skipf("no %s here: %v", addr, err)
			}
			defer l.Close()
			acc := make(chan net.Conn, 1)
			go func() {
				c, _ := l.Accept()
				acc <- c
			}()
			cl, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			sc := <-acc
			defer sc.Close()
			local, remote := sc.LocalAddr().(*net.TCPAddr), sc.RemoteAddr().(*net.TCPAddr)
			uid, err := PeerUID(local, remote)
			if err != nil || uid != os.Getuid() {
				t.Errorf("PeerUID = %d, %v; want %d", uid, err, os.Getuid())
			}
			puid, err := peerUIDProc("/proc", local, remote)
			if err != nil || puid != os.Getuid() {
				t.Errorf("peerUIDProc = %d, %v; want %d", puid, err, os.Getuid())
			}
			// The server's own end is not the peer: asking the other way round finds the client
			// end's partner, our accepted socket, which is ours too; a made-up port is not found.
			bogus := &net.TCPAddr{IP: remote.IP, Port: 1}
			if _, err := PeerUID(local, bogus); !errors.Is(err, ErrNoPeer) {
				t.Errorf("PeerUID of a port nobody uses: %v, want ErrNoPeer", err)
			}
		})
	}
}

func TestParseProcAddr(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"0100007F:1F90", "127.0.0.1:8080", true},
		{"00000000000000000000000001000000:0050", "[::1]:80", true},
		{"0000000000000000FFFF00000100007F:1F41", "127.0.0.1:8001", true}, // v4-mapped
		{"0100007F", "", false},
		{"zz00007F:1F90", "", false},
		{"0100007F:XYZ", "", false},
		{"01007F:1F90", "", false},
	}
	for _, tt := range tests {
		got, ok := parseProcAddr(tt.in)
		if ok != tt.ok || (ok && got.String() != tt.want) {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F41 0100007F:A2B4 01 00000000:00000000 00:00000000 00000000  1000        0 1 1\n" +
		"   1: 0100007F:A2B4 0100007F:1F41 01 00000000:00000000 00:00000000 00000000  1234        0 2 1\n"
	src := netip.MustParseAddrPort("127.0.0.1:41652")
	dst := netip.MustParseAddrPort("127.0.0.1:8001")
	if uid, ok := findProcSocket([]byte(table), src, dst); !ok || uid != 1234 {
		t.Errorf("findProcSocket = %d, %v; want 1234", uid, ok)
	}
	if _, ok := findProcSocket([]byte(table), dst, netip.MustParseAddrPort("127.0.0.1:1")); ok {
		t.Error("findProcSocket found a socket that is not in the table")
	}
}

// TestRefusedGetsNothing: a client of another uid (here: the real kernel says this test's uid,
// and the front belongs to another one) is closed without a byte, whatever the session's state.
func TestRefusedGetsNothing(t *testing.T) {
	target := echoServer(t)
	f := listen(t, Options{UID: os.Getuid() + 4242})
	f.Ready(target)
	if got := refusedRead(t, f, "GET / HTTP/1.0\r\n\r\nhello\n"); got != "" {
		t.Errorf("refused client got %q, want nothing", got)
	}
}

// TestAdmittedRelayed: the owner reaches xpra's socket, both ways, with the real sock_diag check.
func TestAdmittedRelayed(t *testing.T) {
	target := echoServer(t)
	f := listen(t, Options{UID: os.Getuid()})
	f.Ready(target)
	c := dial(t, f)
	r := bufio.NewReader(c)
	for _, msg := range []string{"hello", "again"} {
		_, _ = io.WriteString(c, msg+"\n")
		line, err := r.ReadString('\n')
		if err != nil || line != "xpra:"+msg+"\n" {
			t.Fatalf("relayed %q: got %q, %v", msg, line, err)
		}
	}
}

// TestStates drives the states a session goes through and checks what an admitted client sees.
func TestStates(t *testing.T) {
	target := echoServer(t)
	t.Run("starting then ready", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
		f.Starting()
		c := dial(t, f)
		_, _ = io.WriteString(c, "early\n")
		time.Sleep(50 * time.Millisecond) // the client is held, not answered
		f.Ready(target)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "xpra:early\n" {
			t.Fatalf("got %q, %v; want the held request relayed", line, err)
		}
	})
	t.Run("starting then failed", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
		f.Starting()
		c := dial(t, f)
		f.Failed("Firefox <crashed> at start")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || !strings.Contains(string(body), "Firefox &lt;crashed&gt; at start") {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("idle answers after the hold", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7), IdleHold: 100 * time.Millisecond})
		c := dial(t, f)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || !strings.Contains(string(body), "No Firefox session") {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("idle then a start is waited for", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
		c := dial(t, f)
		time.Sleep(50 * time.Millisecond)
		f.Starting()
		f.Ready(target)
		_, _ = io.WriteString(c, "x\n")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "xpra:x\n" {
			t.Fatalf("got %q, %v", line, err)
		}
	})
	t.Run("leaving ready drops relayed connections", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7), IdleHold: 100 * time.Millisecond})
		f.Ready(target)
		c := dial(t, f)
		r := bufio.NewReader(c)
		_, _ = io.WriteString(c, "a\n")
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		f.Idle()
		if rest, _ := io.ReadAll(r); len(rest) != 0 {
			t.Errorf("after Idle the relayed client got %q", rest)
		}
	})
	t.Run("no proof refuses, counts and logs", func(t *testing.T) {
		var logged strings.Builder
		l := logrus.New()
		l.SetOutput(&syncWriter{w: &logged})
		f := listen(t, Options{UID: 7, Log: logrus.NewEntry(l), PeerUID: func(_, _ *net.TCPAddr) (int, error) { return 7, ErrNoPeer }})
		f.Ready(target)
		for range 3 {
			if got := refusedRead(t, f, "x\n"); got != "" {
				t.Errorf("got %q, want nothing", got)
			}
		}
		if n := f.Refusals(); n != 3 {
			t.Errorf("Refusals = %d, want 3", n)
		}
		out := logged.String()
		if strings.Count(out, "no proof of the client's user") != 1 || !strings.Contains(out, "peer_uid=-1") {
			t.Errorf("want one (rate-limited) no-proof line with peer_uid=-1, got:\n%s", out)
		}
	})
}

// TestCloseReleasesPort: after Close nothing listens and the port can be bound again; a second
// front on a held port fails with EADDRINUSE (the port is held from the moment it is chosen).
func TestCloseReleasesPort(t *testing.T) {
	port := freePort(t)
	f, err := Listen("127.0.0.1", port, Options{UID: 7, PeerUID: uidIs(7)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("127.0.0.1", port, Options{UID: 8}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("second Listen on a held port: %v, want address already in use", err)
	}
	if l, err := net.Listen("tcp", "[::1]:"+strconv.Itoa(port)); err == nil {
		l.Close()
		t.Errorf("[::1]:%d could be taken while the front holds 127.0.0.1:%d", port, port)
	}
	c := dial(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "" {
		t.Errorf("client of a closed front got %q", got)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port not free after Close: %v", err)
	}
	l.Close()
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestOnDemand: an owner's visit to an idle port asks for a start (once) and is held until the
// session is ready; a visit a while after a failed start asks again.
func TestOnDemand(t *testing.T) {
	target := echoServer(t)
	asks := make(chan struct{}, 4)
	var f *Front
	f = listen(t, Options{UID: 7, PeerUID: uidIs(7), OnDemand: func() { asks <- struct{}{} }})
	c := dial(t, f)
	select {
	case <-asks:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle visit did not ask for a start")
	}
	f.Starting()
	f.Ready(target)
	_, _ = io.WriteString(c, "hi\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "xpra:hi\n" {
		t.Fatalf("held visit: %q, %v", line, err)
	}
	f.Idle()
	f.Failed("it broke")
	c2 := dial(t, f)
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("a visit right after the failure: %v, %v", resp, err)
	}
	select {
	case <-asks:
		t.Fatal("a visit right after a failure asked for a start")
	default:
	}
	f.mu.Lock()
	f.since = time.Now().Add(-retryAfterFailure - time.Second)
	f.mu.Unlock()
	c3 := dial(t, f)
	select {
	case <-asks:
	case <-time.After(10 * time.Second):
		t.Fatal("a visit a while after the failure did not ask again")
	}
	f.Starting()
	f.Ready(target)
	_, _ = io.WriteString(c3, "again\n")
	if line, err := bufio.NewReader(c3).ReadString('\n'); err != nil || line != "xpra:again\n" {
		t.Fatalf("held visit after a failure: %q, %v", line, err)
	}
}
