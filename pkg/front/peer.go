package front

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoPeer means the kernel gave no proof of the socket at the peer's end of a connection: it
// closed already (its end is then in TIME_WAIT, which belongs to nobody, or gone), it is not on
// this host, or the kernel answered with another socket than the one asked for (see
// checkAnswer).
var ErrNoPeer = errors.New("no proof of the peer's socket")

// Layout of the kernel's sock_diag structures (linux/inet_diag.h), which x/sys/unix does not
// define: inet_diag_req_v2 is 56 bytes, inet_diag_msg 72 with idiag_uid at offset 64.
const (
	inetDiagReqLen = 56
	inetDiagMsgLen = 72
	diagUIDOffset  = 64
	diagNoCookie   = ^uint32(0)
	// inet_diag_msg: idiag_family, idiag_state, then the inet_diag_sockid at offset 4
	// (sport, dport: big endian; src, dst: 16 bytes each).
	diagStateOffset = 1
	diagIDOffset    = 4
)

// TCP states (include/net/tcp_states.h, also /proc/net/tcp's "st" column) that the client end of
// a connection the front just accepted can be in: connected, or connected and half-closed by the
// client (it sent its request and shut down its writing side, or closed its socket, which then
// lingers as an orphan that still carries its creator's uid). A LISTEN socket is never the
// client end (that is the kernel's fallback answer, see checkAnswer); TIME_WAIT and CLOSE carry
// no owner worth believing.
const (
	tcpEstablished = 1
	tcpFinWait1    = 4
	tcpFinWait2    = 5
)

// clientState reports whether st is a state the client end of a live connection can be in.
func clientState(st uint8) bool {
	return st == tcpEstablished || st == tcpFinWait1 || st == tcpFinWait2
}

// PeerUID returns the uid owning the socket at the other end of a loopback TCP connection
// accepted on this host, as the kernel records it (the sk_uid of the socket the peer process
// created): the one fact about a local client that the client cannot choose. It asks
// NETLINK_SOCK_DIAG for exactly that socket; where netlink is not available it reads
// /proc/net/tcp{,6}. The peer of a connection from another host is not found: ErrNoPeer.
func PeerUID(local, remote *net.TCPAddr) (int, error) {
	uid, err := peerUIDDiag(local, remote)
	if err == nil || errors.Is(err, ErrNoPeer) {
		return uid, err
	}
	if puid, perr := peerUIDProc("/proc", local, remote); perr == nil {
		return puid, nil
	}
	return -1, err
}

// addrs returns the connection's two endpoints as 16-byte forms plus their family: an IPv4
// address (also one an IPv6 socket shows as ::ffff:a.b.c.d) is AF_INET.
func addrs(local, remote *net.TCPAddr) (family uint8, l, r netip.AddrPort, err error) {
	la, ok1 := netip.AddrFromSlice(local.IP)
	ra, ok2 := netip.AddrFromSlice(remote.IP)
	if !ok1 || !ok2 {
		return 0, l, r, fmt.Errorf("peer lookup: bad addresses %v -> %v", remote, local)
	}
	la, ra = la.Unmap(), ra.Unmap()
	family = unix.AF_INET6
	if la.Is4() && ra.Is4() {
		family = unix.AF_INET
	}
	return family, netip.AddrPortFrom(la, uint16(local.Port)), netip.AddrPortFrom(ra, uint16(remote.Port)), nil
}

func peerUIDDiag(local, remote *net.TCPAddr) (int, error) {
	family, l, r, err := addrs(local, remote)
	if err != nil {
		return -1, err
	}
	// The peer's socket may be an IPv6 one with v4-mapped addresses (a dual-stack client), so
	// an IPv4 connection is looked up in both families.
	families := []uint8{family}
	if family == unix.AF_INET {
		families = append(families, unix.AF_INET6)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	// A reply never takes long; a kernel that does not answer must not hang the front.
	tv := unix.Timeval{Sec: 1}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	noPeer := ErrNoPeer
	for i, fam := range families {
		uid, err := diagOne(fd, uint32(i+1), fam, r, l)
		if errors.Is(err, ErrNoPeer) {
			if err != ErrNoPeer {
				noPeer = err // the kernel answered with another socket: say which
			}
			continue
		}
		return uid, err
	}
	return -1, noPeer
}

// diagOne asks for the one TCP socket whose local end is src and remote end dst.
func diagOne(fd int, seq uint32, family uint8, src, dst netip.AddrPort) (int, error) {
	req := make([]byte, unix.NLMSG_HDRLEN+inetDiagReqLen)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	b := req[unix.NLMSG_HDRLEN:]
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(b[4:8], ^uint32(0)) // every state
	id := b[8:]
	binary.BigEndian.PutUint16(id[0:2], src.Port())
	binary.BigEndian.PutUint16(id[2:4], dst.Port())
	putAddr(id[4:20], family, src.Addr())
	putAddr(id[20:36], family, dst.Addr())
	binary.NativeEndian.PutUint32(id[40:44], diagNoCookie)
	binary.NativeEndian.PutUint32(id[44:48], diagNoCookie)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return -1, fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 8<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return -1, fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					code := unix.Errno(-int32(binary.NativeEndian.Uint32(m.Data[:4])))
					if code == unix.ENOENT {
						return -1, ErrNoPeer
					}
					if code != 0 {
						return -1, fmt.Errorf("sock_diag: %w", code)
					}
				}
				return -1, ErrNoPeer
			case unix.NLMSG_DONE:
				return -1, ErrNoPeer
			}
			if len(m.Data) < inetDiagMsgLen {
				continue
			}
			if err := checkAnswer(m.Data, src, dst); err != nil {
				return -1, err
			}
			return int(binary.NativeEndian.Uint32(m.Data[diagUIDOffset : diagUIDOffset+4])), nil
		}
	}
}

// checkAnswer accepts the kernel's inet_diag_msg only when it describes the very socket asked
// for: a client-end state and exactly the 4-tuple src -> dst. The kernel's exact lookup
// (inet_diag_find_one_icsk) is the same lookup as for an incoming packet: the established table
// first, then a LISTENING socket bound to the requested local address and port. So when the
// client's socket is gone (it sent its bytes and reset) and somebody listens on the address and
// port the client had bound (with SO_REUSEADDR, a non-listening bind does not stop a later
// listener, of any uid, on the same port), the answer is that listener, with its owner's uid.
// Taking that uid would admit the client as the listener's owner.
func checkAnswer(msg []byte, src, dst netip.AddrPort) error {
	st := msg[diagStateOffset]
	id := msg[diagIDOffset:]
	// The answer is in the socket's own family: an IPv6 socket with v4-mapped addresses answers
	// a query for an IPv4 connection in 16-byte form.
	got := func(b []byte, port uint16) netip.AddrPort {
		var a netip.Addr
		if msg[0] == unix.AF_INET {
			a = netip.AddrFrom4([4]byte(b[:4]))
		} else {
			a = netip.AddrFrom16([16]byte(b[:16])).Unmap()
		}
		return netip.AddrPortFrom(a, port)
	}
	gotSrc := got(id[4:20], binary.BigEndian.Uint16(id[0:2]))
	gotDst := got(id[20:36], binary.BigEndian.Uint16(id[2:4]))
	if !clientState(st) || gotSrc != src || gotDst != dst {
		return fmt.Errorf("%w: the kernel answered with a socket in state %d, %s -> %s, not the client's %s -> %s",
			ErrNoPeer, st, gotSrc, gotDst, src, dst)
	}
	return nil
}

// putAddr writes a in the kernel's idiag_src/dst form: IPv4 in the first word for AF_INET,
// the full (v4-mapped where needed) 16 bytes for AF_INET6.
func putAddr(dst []byte, family uint8, a netip.Addr) {
	if family == unix.AF_INET {
		v4 := a.As4()
		copy(dst, v4[:])
		return
	}
	v6 := a.As16()
	copy(dst, v6[:])
}

// peerUIDProc finds the peer socket in /proc/net/tcp{,6}: the line whose local address is the
// connection's remote end and whose remote address is its local end, in a client-end state
// (column 4); column 8 is the uid.
func peerUIDProc(procRoot string, local, remote *net.TCPAddr) (int, error) {
	_, l, r, err := addrs(local, remote)
	if err != nil {
		return -1, err
	}
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		data, err := os.ReadFile(procRoot + "/" + name)
		if err != nil {
			continue
		}
		if uid, ok := findProcSocket(data, r, l); ok {
			return uid, nil
		}
	}
	return -1, ErrNoPeer
}

// findProcSocket scans one /proc/net/tcp table for the socket local=src remote=dst.
func findProcSocket(table []byte, src, dst netip.AddrPort) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for first := true; sc.Scan(); first = false {
		if first {
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 8 {
			continue
		}
		ls, ok1 := parseProcAddr(f[1])
		rs, ok2 := parseProcAddr(f[2])
		if !ok1 || !ok2 || ls != src || rs != dst {
			continue
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil || !clientState(uint8(st)) {
			continue
		}
		uid, err := strconv.Atoi(f[7])
		if err != nil {
			return -1, false
		}
		return uid, true
	}
	return -1, false
}

// parseProcAddr parses /proc/net/tcp's "0100007F:1F90" (IPv4: one host-order word) or its
// 32-hex-digit IPv6 form (four host-order words), unmapping v4-mapped addresses.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	// Each 32-bit word is printed in host order: swap every word back to network order.
	for i := 0; i+4 <= len(raw); i += 4 {
		w := binary.NativeEndian.Uint32(raw[i : i+4])
		binary.BigEndian.PutUint32(raw[i:i+4], w)
	}
	a, ok := netip.AddrFromSlice(raw)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}
