package control

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDialChecksServerUID: Dial connects only when the kernel says the socket's server runs as
// the expected uid; otherwise the connection is closed before a byte is sent, with an error
// naming both uids that wraps ErrNoSupervisor (exit 4).
func TestDialChecksServerUID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 64)
			n, _ := c.Read(buf)
			got <- n
			c.Close()
		}
	}()
	me := os.Geteuid()
	c, err := Dial(context.Background(), path, me)
	if err != nil {
		t.Fatalf("Dial as the server's own uid: %v", err)
	}
	c.Close()
	if n := <-got; n != 0 {
		t.Errorf("the server received %d bytes from a bare Dial", n)
	}
	_, err = Dial(context.Background(), path, me+1)
	if !errors.Is(err, ErrForeignServer) || !errors.Is(err, ErrNoSupervisor) {
		t.Fatalf("Dial expecting uid %d: %v, want ErrForeignServer", me+1, err)
	}
	if msg := err.Error(); !strings.Contains(msg, "uid "+strconv.Itoa(me)) || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming the server's uid %d", msg, me)
	}
	if n := <-got; n != 0 {
		t.Errorf("the foreign server received %d bytes", n)
	}
}
