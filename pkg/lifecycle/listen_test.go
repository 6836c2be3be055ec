package lifecycle

import (
	"net"
	"os"
	"testing"
)

func TestParseListeners(t *testing.T) {
	table := []byte(`  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 100 0 0 10 0
   1: 0100007F:1F41 0100007F:AC48 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0 100 0 0 10 0
   2: 00000000:1F42 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 4444 1 0 100 0 0 10 0
   3: garbage
`)
	got := map[uint64]bool{}
	parseListeners(table, "1F41", got)
	if len(got) != 1 || !got[4242] {
		t.Errorf("port 8001 listeners = %v, want only 4242 (4343 is an established connection)", got)
	}
	got = map[uint64]bool{}
	parseListeners(table, "1F40", got)
	if len(got) != 0 {
		t.Errorf("port 8000: %v", got)
	}
}

// TestOwnsListener: this process owns its own listener and not a port it does not listen on.
func TestOwnsListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if !ownsListener(os.Getpid(), port) {
		t.Errorf("own listener on %d not recognised", port)
	}
	if ownsListener(os.Getppid(), port) {
		t.Errorf("parent claimed to own our listener")
	}
	l.Close()
	if ownsListener(os.Getpid(), port) {
		t.Errorf("closed listener still owned")
	}
}

// TestListeningInodesDiag: the netlink answer names the same listener as /proc/net/tcp.
func TestListeningInodesDiag(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v (skipped)", addr, err)
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		viaDiag, err := listeningInodesDiag(port)
		if err != nil {
			l.Close()
			t.Fatalf("sock_diag: %v", err)
		}
		viaProc, err := listeningInodes("/proc", port)
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		if len(viaDiag) != 1 || len(viaProc) != 1 {
			t.Errorf("%s: diag %v, /proc %v: want one listener each", addr, viaDiag, viaProc)
		}
		for ino := range viaProc {
			if !viaDiag[ino] {
				t.Errorf("%s: inode %d from /proc/net not in sock_diag answer %v", addr, ino, viaDiag)
			}
		}
		l.Close()
		if after, err := listeningInodesDiag(port); err != nil || len(after) != 0 {
			t.Errorf("%s after close: %v %v", addr, after, err)
		}
	}
}
