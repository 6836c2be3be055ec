package front

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/testutil"
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

// String is what was written so far, read under the same lock as the writes.
func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.w)
}

func listen(t *testing.T, opts Options) *Front {
	t.Helper()
	f, err := Listen("127.0.0.1", testutil.FreePort(t, "127.0.0.1"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fakeXpra is a stand-in for xpra's unix socket: an HTTP server that answers "xpra:" + path,
// switches a WebSocket upgrade to a line echo ("xpra:" + line), and counts every byte it gets.
type fakeXpra struct {
	path  string
	bytes atomic.Int64
	mu    sync.Mutex
	seen  []*http.Request
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func newFakeXpra(t *testing.T) *fakeXpra {
	t.Helper()
	x := &fakeXpra{path: filepath.Join(t.TempDir(), "xpra.sock")}
	l, err := net.Listen("unix", x.path)
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
			go x.serve(c)
		}
	}()
	return x
}

func (x *fakeXpra) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(countingReader{c, &x.bytes})
	req, err := http.ReadRequest(r)
	if err != nil {
		return
	}
	x.mu.Lock()
	x.seen = append(x.seen, req)
	x.mu.Unlock()
	if strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, "xpra:"+line); err != nil {
				return
			}
		}
	}
	body := "xpra:" + req.URL.Path
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// requests returns the requests xpra got.
func (x *fakeXpra) requests() []*http.Request {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]*http.Request(nil), x.seen...)
}

// get sends a GET for path with Host host and the extra header lines on c, and reads the answer.
func get(t *testing.T, c net.Conn, r *bufio.Reader, host, path string, extra ...string) (int, string) {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	return readResponse(t, r)
}

func readResponse(t *testing.T, r *bufio.Reader) (int, string) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func host(f *Front) string { return "localhost:" + strconv.Itoa(f.Port()) }

// upgrade sends a WebSocket upgrade and returns the reader positioned after the 101.
func upgrade(t *testing.T, c net.Conn, f *Front) *bufio.Reader {
	t.Helper()
	r := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+host(f)+"\r\nOrigin: http://"+host(f)+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	return r
}

// echo sends a line over an upgraded connection and checks xpra's echo.
func echo(t *testing.T, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	_, _ = io.WriteString(c, msg+"\n")
	line, err := r.ReadString('\n')
	if err != nil || line != "xpra:"+msg+"\n" {
		t.Fatalf("relayed %q: got %q, %v", msg, line, err)
	}
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
// and the front belongs to another one) is reset without a byte, whatever the session's state,
// and xpra gets nothing.
func TestRefusedGetsNothing(t *testing.T) {
	x := newFakeXpra(t)
	f := listen(t, Options{UID: os.Getuid() + 4242})
	f.Ready(x.path)
	if got := refusedRead(t, f, "GET / HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n"); got != "" {
		t.Errorf("refused client got %q, want nothing", got)
	}
	if n := x.bytes.Load(); n != 0 {
		t.Errorf("xpra got %d bytes of a refused client", n)
	}
	if f.Refusals() != 1 {
		t.Errorf("Refusals = %d, want 1", f.Refusals())
	}
}

// TestAdmittedRelayed: the owner reaches xpra, with the real sock_diag check: every request of a
// keep-alive connection, and a WebSocket both ways; a loopback name of every kind works.
func TestAdmittedRelayed(t *testing.T) {
	x := newFakeXpra(t)
	f := listen(t, Options{UID: os.Getuid()})
	f.Ready(x.path)
	c := dial(t, f)
	r := bufio.NewReader(c)
	port := strconv.Itoa(f.Port())
	for _, h := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "LocalHost:" + port} {
		if code, body := get(t, c, r, h, "/index.html", "Origin: http://"+h); code != 200 || body != "xpra:/index.html" {
			t.Fatalf("Host %s: got %d %q", h, code, body)
		}
	}
	ws := dial(t, f)
	wr := upgrade(t, ws, f)
	echo(t, ws, wr, "hello")
	echo(t, ws, wr, "again")
}

// TestDoor: requests of the owner's uid that are not the session's own page get a 403 naming
// the reason (or net/http's 400 for what is not HTTP), and xpra gets not a byte of them; what
// the session's page and the Jupyter proxy present is relayed, the proxy's secret stripped.
func TestDoor(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name   string
		proxy  bool
		req    string // PORT is replaced by the front's port
		status int
		reason string
	}{
		{"rebinding Host", false, "GET / HTTP/1.1\r\nHost: rebind.example:PORT\r\n\r\n", 403, "is not this session's"},
		{"rebinding Host, WebSocket", false, "GET / HTTP/1.1\r\nHost: rebind.example:PORT\r\nOrigin: http://rebind.example:PORT\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 403, "is not this session's"},
		{"absolute-form target on another host", false, "GET http://rebind.example:PORT/ HTTP/1.1\r\nHost: localhost:PORT\r\n\r\n", 403, "is not this session's"},
		{"Host of another port", false, "GET / HTTP/1.1\r\nHost: localhost:1\r\n\r\n", 403, "is not this session's"},
		{"Host without port", false, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 403, "is not this session's"},
		{"no Host", false, "GET / HTTP/1.0\r\n\r\n", 403, "is not this session's"},
		{"WebSocket from another origin", false, "GET / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\nOrigin: http://127.0.0.1:8\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 403, "may not use this session"},
		{"Origin null", false, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nOrigin: null\r\n\r\n", 403, "may not use this session"},
		{"Origin https", false, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nOrigin: https://localhost:PORT\r\n\r\n", 403, "may not use this session"},
		{"two Origins", false, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nOrigin: http://localhost:PORT\r\nOrigin: http://evil.example\r\n\r\n", 403, "may not use this session"},
		{"cross-site fetch without Origin", false, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: script\r\n\r\n", 403, "A page of another site"},
		{"frame of another site", false, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nSec-Fetch-Site: same-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: iframe\r\n\r\n", 403, "A page of another site"},
		{"POST", false, "POST / HTTP/1.1\r\nHost: localhost:PORT\r\nContent-Length: 2\r\n\r\nhi", 403, "only GET and HEAD"},
		{"xpra's binary protocol", false, "PS\x00\x00\x00\x00\x00\x01\x00hello\r\n\r\n", 400, ""},
		{"proxy port, no secret", true, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\n\r\n", 403, "Jupyter proxy"},
		{"proxy port, wrong secret", true, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nX-Ffl-Proxy-Secret: 0123456789abcdef0123456789abcdee\r\n\r\n", 403, "Jupyter proxy"},
		{"proxy port, two secrets", true, "GET / HTTP/1.1\r\nHost: localhost:PORT\r\nX-Ffl-Proxy-Secret: " + secret + "\r\nX-Ffl-Proxy-Secret: x\r\n\r\n", 403, "Jupyter proxy"},
		{"session page", false, "GET /x HTTP/1.1\r\nHost: localhost:PORT\r\nOrigin: http://localhost:PORT\r\nSec-Fetch-Site: same-origin\r\n\r\n", 200, ""},
		{"link from another site", false, "GET /x HTTP/1.1\r\nHost: localhost:PORT\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\r\n", 200, ""},
		{"proxy port, the hub's Host and Origin with the secret", true, "GET /x HTTP/1.1\r\nHost: hub.example.org\r\nOrigin: https://hub.example.org\r\nX-Ffl-Proxy-Secret: " + secret + "\r\n\r\n", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newFakeXpra(t)
			opts := Options{UID: 7, PeerUID: uidIs(7)}
			if tt.proxy {
				opts.ProxySecret = secret
			}
			f := listen(t, opts)
			f.Ready(x.path)
			c := dial(t, f)
			_, _ = io.WriteString(c, strings.ReplaceAll(tt.req, "PORT", strconv.Itoa(f.Port())))
			code, body := readResponse(t, bufio.NewReader(c))
			if code != tt.status || !strings.Contains(body, tt.reason) {
				t.Errorf("got %d %q, want %d with %q", code, body, tt.status, tt.reason)
			}
			if tt.status != 200 {
				if n := x.bytes.Load(); n != 0 {
					t.Errorf("xpra got %d bytes of a refused request", n)
				}
				if tt.status == 403 && f.Forbidden() != 1 {
					t.Errorf("Forbidden = %d, want 1", f.Forbidden())
				}
				return
			}
			reqs := x.requests()
			if len(reqs) != 1 || reqs[0].URL.Path != "/x" || reqs[0].Header.Get(ProxySecretHeader) != "" {
				t.Errorf("xpra got %v, want one request for /x without the proxy's secret", reqs)
			}
		})
	}
}

// TestEveryRequestChecked: a keep-alive connection that carried the session's own request
// cannot carry another page's request, nor a WebSocket of another origin, to xpra.
func TestEveryRequestChecked(t *testing.T) {
	x := newFakeXpra(t)
	f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
	f.Ready(x.path)
	c := dial(t, f)
	r := bufio.NewReader(c)
	if code, _ := get(t, c, r, host(f), "/own"); code != 200 {
		t.Fatalf("own request: %d", code)
	}
	if code, _ := get(t, c, r, host(f), "/other", "Origin: http://evil.example", "Upgrade: websocket", "Connection: Upgrade"); code != 403 {
		t.Fatalf("second request of another origin: %d, want 403", code)
	}
	if reqs := x.requests(); len(reqs) != 1 || reqs[0].URL.Path != "/own" {
		t.Errorf("xpra got %d requests, want only /own", len(reqs))
	}
}

// TestStates drives the states a session goes through and checks what an admitted client sees.
func TestStates(t *testing.T) {
	x := newFakeXpra(t)
	t.Run("starting then ready", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
		f.Starting()
		c := dial(t, f)
		_, _ = io.WriteString(c, "GET /early HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n")
		time.Sleep(50 * time.Millisecond) // the client is held, not answered
		f.Ready(x.path)
		if code, body := readResponse(t, bufio.NewReader(c)); code != 200 || body != "xpra:/early" {
			t.Fatalf("got %d %q; want the held request relayed", code, body)
		}
	})
	t.Run("starting then failed", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
		f.Starting()
		c := dial(t, f)
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		f.Failed("Firefox <crashed> at start")
		if code, body := readResponse(t, bufio.NewReader(c)); code != 503 || !strings.Contains(body, "Firefox &lt;crashed&gt; at start") {
			t.Errorf("got %d %q", code, body)
		}
	})
	t.Run("idle answers after the hold", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7), IdleHold: 100 * time.Millisecond})
		c := dial(t, f)
		if code, body := get(t, c, bufio.NewReader(c), host(f), "/"); code != 503 || !strings.Contains(body, "No Firefox session") {
			t.Errorf("got %d %q", code, body)
		}
	})
	t.Run("idle then a start is waited for", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7)})
		c := dial(t, f)
		_, _ = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		f.Starting()
		f.Ready(x.path)
		if code, body := readResponse(t, bufio.NewReader(c)); code != 200 || body != "xpra:/x" {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("leaving ready drops relayed connections", func(t *testing.T) {
		f := listen(t, Options{UID: 7, PeerUID: uidIs(7), IdleHold: 100 * time.Millisecond})
		f.Ready(x.path)
		c := dial(t, f)
		r := upgrade(t, c, f)
		echo(t, c, r, "a")
		f.Idle()
		if rest, _ := io.ReadAll(r); len(rest) != 0 {
			t.Errorf("after Idle the relayed client got %q", rest)
		}
	})
	t.Run("no proof refuses, counts and logs", func(t *testing.T) {
		logged := &syncWriter{w: &strings.Builder{}}
		l := logrus.New()
		l.SetOutput(logged)
		f := listen(t, Options{UID: 7, Log: logrus.NewEntry(l), PeerUID: func(_, _ *net.TCPAddr) (int, error) { return 7, ErrNoPeer }})
		f.Ready(x.path)
		for range 3 {
			if got := refusedRead(t, f, "GET / HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n"); got != "" {
				t.Errorf("got %q, want nothing", got)
			}
		}
		if n := f.Refusals(); n != 3 {
			t.Errorf("Refusals = %d, want 3", n)
		}
		// The refused client sees its reset before the front writes the line: wait for it.
		testutil.Eventually(5*time.Second, func() bool { return strings.Contains(logged.String(), "no proof of the client's user") })
		out := logged.String()
		if strings.Count(out, "no proof of the client's user") != 1 || !strings.Contains(out, "peer_uid=-1") {
			t.Errorf("want one (rate-limited) no-proof line with peer_uid=-1, got:\n%s", out)
		}
	})
}

// TestCloseReleasesPort: after Close nothing listens and the port can be bound again; a second
// front on a held port fails with EADDRINUSE (the port is held from the moment it is chosen).
func TestCloseReleasesPort(t *testing.T) {
	port := testutil.FreePort(t, "127.0.0.1")
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
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "" && !strings.Contains(got, "503") {
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
// session is ready; a visit a while after a failed start asks again; a refused request asks
// for nothing.
func TestOnDemand(t *testing.T) {
	x := newFakeXpra(t)
	asks := make(chan struct{}, 4)
	f := listen(t, Options{UID: 7, PeerUID: uidIs(7), OnDemand: func() { asks <- struct{}{} }})
	bad := dial(t, f)
	if code, _ := get(t, bad, bufio.NewReader(bad), "rebind.example:"+strconv.Itoa(f.Port()), "/"); code != 403 {
		t.Fatalf("rebinding Host on an idle port: %d", code)
	}
	select {
	case <-asks:
		t.Fatal("a refused request asked for a start")
	default:
	}
	c := dial(t, f)
	_, _ = io.WriteString(c, "GET /hi HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n")
	select {
	case <-asks:
	case <-time.After(10 * time.Second):
		t.Fatal("an idle visit did not ask for a start")
	}
	f.Starting()
	f.Ready(x.path)
	if code, body := readResponse(t, bufio.NewReader(c)); code != 200 || body != "xpra:/hi" {
		t.Fatalf("held visit: %d %q", code, body)
	}
	f.Idle()
	f.Failed("it broke")
	c2 := dial(t, f)
	if code, _ := get(t, c2, bufio.NewReader(c2), host(f), "/"); code != 503 {
		t.Fatalf("a visit right after the failure: %d", code)
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
	_, _ = io.WriteString(c3, "GET /again HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n")
	select {
	case <-asks:
	case <-time.After(10 * time.Second):
		t.Fatal("a visit a while after the failure did not ask again")
	}
	f.Starting()
	f.Ready(x.path)
	if code, body := readResponse(t, bufio.NewReader(c3)); code != 200 || body != "xpra:/again" {
		t.Fatalf("held visit after a failure: %d %q", code, body)
	}
}

// TestOnVisit: the visit hook runs when the owner's client opens its WebSocket to the session,
// not for page loads (a proxy's readiness polling is one) nor for a request the door refuses.
func TestOnVisit(t *testing.T) {
	x := newFakeXpra(t)
	f := listen(t, Options{UID: os.Getuid()})
	var visits atomic.Int32
	f.OnVisit(func() { visits.Add(1) })
	f.Ready(x.path)
	c := dial(t, f)
	r := bufio.NewReader(c)
	h := "127.0.0.1:" + strconv.Itoa(f.Port())
	if code, _ := get(t, c, r, h, "/index.html", "Origin: http://"+h); code != 200 {
		t.Fatalf("page: %d", code)
	}
	if code, _ := get(t, c, r, "evil.example:"+strconv.Itoa(f.Port()), "/", "Upgrade: websocket"); code != 403 {
		t.Fatalf("foreign Host: %d, want 403", code)
	}
	time.Sleep(100 * time.Millisecond)
	if n := visits.Load(); n != 0 {
		t.Fatalf("%d visits after a page load and a refused upgrade, want 0", n)
	}
	ws := dial(t, f)
	wr := upgrade(t, ws, f)
	echo(t, ws, wr, "hello")
	if !testutil.Eventually(5*time.Second, func() bool { return visits.Load() == 1 }) {
		t.Fatalf("%d visits after the client's WebSocket, want 1", visits.Load())
	}
}
