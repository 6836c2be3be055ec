package lifecycle

import (
	"encoding/binary"
	"errors"
	"fmt"

	"syscall"

	"golang.org/x/sys/unix"
)

// Layout of the kernel's sock_diag structures (linux/inet_diag.h), which x/sys/unix does not
// define: inet_diag_req_v2 is 56 bytes, inet_diag_msg 72.
const (
	inetDiagReqLen = 56
	inetDiagMsgLen = 72
	tcpListen      = 10 // TCP_LISTEN
)

// listeningInodesDiag returns the inodes of the TCP sockets in LISTEN state on port, asking the
// kernel over NETLINK_SOCK_DIAG for listening sockets only. Reading /proc/net/tcp instead lists
// every socket of the host (thousands in TIME_WAIT on a busy node) and cost ~14 ms per session
// start in the benchmark; this dump holds only the listeners.
func listeningInodesDiag(port int) (map[uint64]bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	out := map[uint64]bool{}
	for seq, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := diagDump(fd, uint32(seq+1), family, port, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func diagDump(fd int, seq uint32, family uint8, port int, out map[uint64]bool) error {
	req := make([]byte, unix.NLMSG_HDRLEN+inetDiagReqLen)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:8], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	body := req[unix.NLMSG_HDRLEN:]
	body[0] = family
	body[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(body[4:8], 1<<tcpListen)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 32<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag reply: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
						return fmt.Errorf("sock_diag: %w", unix.Errno(-code))
					}
				}
				return nil
			}
			if len(m.Data) < inetDiagMsgLen || m.Data[1] != tcpListen {
				continue
			}
			// idiag_sport is big-endian at offset 4; idiag_inode is host-endian at 68.
			if int(binary.BigEndian.Uint16(m.Data[4:6])) != port {
				continue
			}
			if ino := binary.NativeEndian.Uint32(m.Data[68:72]); ino != 0 {
				out[uint64(ino)] = true
			}
		}
	}
}
