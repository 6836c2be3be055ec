package front

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// preBound is a TCP socket bound with SO_REUSEADDR to addr:port and not listening: what an
// attacker leaves on a port of ffl's range before the victim's front takes it.
func preBound(t *testing.T, addr netip.Addr, port int) int {
	t.Helper()
	fam, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: port, Addr: addr.As16()})
	if addr.Is4() {
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestPeerGoneListenerAnswers is issue 16's first attack at the kernel level: the client's
// socket, bound (SO_REUSEADDR) to a port on which a listener was started later, connects, and
// resets; the kernel's exact lookup of the client's 4-tuple then answers with that listener.
// The answer is no proof: ErrNoPeer, from sock_diag and from /proc/net/tcp. (Here all sockets
// are this test's; the hostile test does it with a second real user.)
func TestPeerGoneListenerAnswers(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", "::1"} {
		t.Run(addr, func(t *testing.T) {
			ip := netip.MustParseAddr(addr)
			victim, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
			if err != nil {
				t.Skipf("no %s here: %v", addr, err)
			}
			defer victim.Close()
			p := testutil.FreePort(t, addr)
			fd := preBound(t, ip, p)
			held, err := net.Listen("tcp", net.JoinHostPort(addr, itoa(p))) // the victim's other port
			if err != nil {
				t.Fatalf("listen on the pre-bound port: %v", err)
			}
			defer held.Close()
			q := victim.Addr().(*net.TCPAddr).Port
			var to unix.Sockaddr = &unix.SockaddrInet6{Port: q, Addr: ip.As16()}
			if ip.Is4() {
				to = &unix.SockaddrInet4{Port: q, Addr: ip.As4()}
			}
			if err := unix.Connect(fd, to); err != nil {
				t.Fatal(err)
			}
			sc, err := victim.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			local, remote := sc.LocalAddr().(*net.TCPAddr), sc.RemoteAddr().(*net.TCPAddr)
			if uid, err := PeerUID(local, remote); err != nil || uid != os.Getuid() {
				t.Fatalf("while connected: PeerUID = %d, %v; want %d", uid, err, os.Getuid())
			}
			// Reset: close with a zero linger.
			if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
				t.Fatal(err)
			}
			unix.Close(fd)
			if uid, err := PeerUID(local, remote); !errors.Is(err, ErrNoPeer) {
				t.Errorf("after the reset: PeerUID = %d, %v; want ErrNoPeer (the answer is the listener on %d)", uid, err, p)
			}
			if uid, err := peerUIDProc("/proc", local, remote); !errors.Is(err, ErrNoPeer) {
				t.Errorf("after the reset: peerUIDProc = %d, %v; want ErrNoPeer", uid, err)
			}
		})
	}
}

// TestPeerUIDDualStackClient: a client on an IPv6 socket connecting to 127.0.0.1 through its
// v4-mapped address is proven too (the kernel answers in the socket's own family).
func TestPeerUIDDualStackClient(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets: %v", err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	to := &unix.SockaddrInet6{Port: l.Addr().(*net.TCPAddr).Port, Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := unix.Connect(fd, to); err != nil {
		t.Fatal(err)
	}
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	local, remote := sc.LocalAddr().(*net.TCPAddr), sc.RemoteAddr().(*net.TCPAddr)
	if uid, err := PeerUID(local, remote); err != nil || uid != os.Getuid() {
		t.Errorf("PeerUID of a dual-stack client = %d, %v; want %d", uid, err, os.Getuid())
	}
	if uid, err := peerUIDProc("/proc", local, remote); err != nil || uid != os.Getuid() {
		t.Errorf("peerUIDProc of a dual-stack client = %d, %v; want %d", uid, err, os.Getuid())
	}
}

// TestPeerUIDHalfClosedClient: a client that sent its request and shut down its writing side
// (its socket in FIN_WAIT2), or closed its socket altogether (an orphan in FIN_WAIT2 that still
// carries its creator's uid), is still proven: it is the very socket asked for.
func TestPeerUIDHalfClosedClient(t *testing.T) {
	for _, full := range []bool{false, true} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cl, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		if full {
			cl.Close()
		} else {
			defer cl.Close()
			_ = cl.(*net.TCPConn).CloseWrite()
		}
		// The server end sees the FIN once the client's socket has left ESTABLISHED.
		_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := sc.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("want EOF, got %d, %v", n, err)
		}
		local, remote := sc.LocalAddr().(*net.TCPAddr), sc.RemoteAddr().(*net.TCPAddr)
		if uid, err := PeerUID(local, remote); err != nil || uid != os.Getuid() {
			t.Errorf("closed=%v: PeerUID of a half-closed client = %d, %v; want %d", full, uid, err, os.Getuid())
		}
		if uid, err := peerUIDProc("/proc", local, remote); err != nil || uid != os.Getuid() {
			t.Errorf("closed=%v: peerUIDProc of a half-closed client = %d, %v; want %d", full, uid, err, os.Getuid())
		}
	}
}

// TestCheckAnswer: only the client-end states and the exact 4-tuple asked for are proof.
func TestCheckAnswer(t *testing.T) {
	src := netip.MustParseAddrPort("127.0.0.1:41000")
	dst := netip.MustParseAddrPort("127.0.0.1:8001")
	msgFam := func(family uint8, state uint8, s, d netip.AddrPort) []byte {
		b := make([]byte, inetDiagMsgLen)
		b[0], b[1] = family, state
		id := b[diagIDOffset:]
		binary.BigEndian.PutUint16(id[0:2], s.Port())
		binary.BigEndian.PutUint16(id[2:4], d.Port())
		putAddr(id[4:20], family, s.Addr())
		putAddr(id[20:36], family, d.Addr())
		return b
	}
	msg := func(state uint8, s, d netip.AddrPort) []byte { return msgFam(unix.AF_INET, state, s, d) }
	zero := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	tests := []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"established", msg(tcpEstablished, src, dst), true},
		{"a dual-stack client (IPv6 socket, v4-mapped)", msgFam(unix.AF_INET6, tcpEstablished, src, dst), true},
		{"an IPv6 listener in v4-mapped form", msgFam(unix.AF_INET6, 10, src, zero), false},
		{"half-closed by the client", msg(tcpFinWait2, src, dst), true},
		{"fin-wait-1", msg(tcpFinWait1, src, dst), true},
		{"the listener on the client's port", msg(10, src, zero), false},
		{"a listener in ESTABLISHED's clothes", msg(tcpEstablished, src, zero), false},
		{"time-wait", msg(6, src, dst), false},
		{"close", msg(7, src, dst), false},
		{"another remote port", msg(tcpEstablished, src, netip.MustParseAddrPort("127.0.0.1:8002")), false},
		{"another local port", msg(tcpEstablished, netip.MustParseAddrPort("127.0.0.1:41001"), dst), false},
		{"another address", msg(tcpEstablished, netip.MustParseAddrPort("127.0.0.2:41000"), dst), false},
	}
	for _, tt := range tests {
		err := checkAnswer(tt.msg, src, dst)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrNoPeer)) {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
