package lifecycle

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOneFamilyFallback: with [::1] held by someone else on every port of the range, a session
// still starts, on 127.0.0.1 alone, and its URL and ssh line name 127.0.0.1 literally; the proxy
// port (jupyter-server-proxy dials "localhost", ::1 first) is refused rather than taken on one
// family.
func TestOneFamilyFallback(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestOneFamilyFallback")
	if !ok {
		return
	}
	m := testManager(t, faketree, fakexpra, dir, "81", "no-tree", time.Second)
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for p := m.s.PortMin; p <= m.s.PortMax; p++ {
		l, err := net.Listen("tcp", "[::1]:"+strconv.Itoa(p))
		if err != nil {
			t.Skipf("[::1]:%d: %v (no IPv6 loopback?)", p, err)
		}
		held = append(held, l)
	}
	if _, err := m.Bind(nil, "secret"); !errors.Is(err, ErrPortInUse) {
		t.Errorf("proxy port with [::1] held everywhere: %v, want ErrPortInUse", err)
	}
	ctx := context.Background()
	info, err := m.Start(ctx, StartRequest{})
	if err != nil {
		t.Fatalf("start with [::1] held on every port: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(info.Port)
	if info.URL != "http://"+addr+"/" || !strings.Contains(info.SSH, ":"+addr+" ") {
		t.Errorf("URL %q, ssh %q: want %s literally", info.URL, info.SSH, addr)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Errorf("%s of a live session could be bound by someone else", addr)
	}
	if err := m.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
}
