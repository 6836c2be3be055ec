package xpra

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBencodeRoundTrip(t *testing.T) {
	tests := []struct {
		in   any
		enc  string
		back any
	}{
		{"hello", "5:hello", "hello"},
		{"", "0:", ""},
		{42, "i42e", int64(42)},
		{int64(-7), "i-7e", int64(-7)},
		{true, "i1e", int64(1)},
		{[]any{"a", 1}, "l1:ai1ee", []any{"a", int64(1)}},
		{map[string]any{"b": 2, "a": "x"}, "d1:a1:x1:bi2ee", map[string]any{"a": "x", "b": int64(2)}},
		{[]any{}, "le", []any{}},
	}
	for _, tt := range tests {
		got, err := Encode(tt.in)
		if err != nil || string(got) != tt.enc {
			t.Errorf("Encode(%v) = %q, %v; want %q", tt.in, got, err, tt.enc)
			continue
		}
		back, rest, err := Decode(got)
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(back, tt.back) {
			t.Errorf("Decode(%q) = %#v, %q, %v; want %#v", got, back, rest, err, tt.back)
		}
	}
	for _, bad := range []string{"", "i12", "5:abc", "l1:a", "d1:ai1e", "di1ei2ee", "x", "-1:", "iabce", "99999999999:x"} {
		if _, _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q) succeeded", bad)
		}
	}
	if _, err := Encode(3.5); err == nil {
		t.Error("Encode(float) succeeded")
	}
	deep := strings.Repeat("l", maxDepth+2) + strings.Repeat("e", maxDepth+2)
	if _, _, err := Decode([]byte(deep)); err == nil {
		t.Error("Decode of a too deep value succeeded")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"5:hello", "i42e", "l1:ai1ee", "d1:a1:x1:bi2ee", "d15:command_responseli0e3:oke e"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Encode(v)
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", v, err)
		}
		v2, rest, err := Decode(enc)
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip of %q: %#v -> %q -> %#v, %v", data, v, enc, v2, err)
		}
	})
}

// fakeServer answers one connection on a unix socket with fn(first packet); reply answers in
// the encoding the client's header named, as xpra does.
func fakeServer(t *testing.T, fn func(c net.Conn, hello map[string]any)) string {
	return fakeServerEnc(t, func(c net.Conn, enc Encoding, hello map[string]any) {
		fn(encConn{c, enc}, hello)
	})
}

// encConn is a connection with the encoding its peer spoke.
type encConn struct {
	net.Conn
	enc Encoding
}

// fakeServerEnc is fakeServer telling fn which encoding the client's packet header announced.
func fakeServerEnc(t *testing.T, fn func(c net.Conn, enc Encoding, hello map[string]any)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "xpra.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		hdr, err := r.Peek(2)
		if err != nil {
			return
		}
		enc := Bencode
		if hdr[1] == flagRencodePlus {
			enc = RencodePlus
		}
		pkt, err := readPacket(r)
		if err != nil {
			return
		}
		l := pkt.([]any)
		fn(c, enc, l[1].(map[string]any))
	}()
	return path
}

func reply(c net.Conn, pkt any) {
	enc := Bencode
	if ec, ok := c.(encConn); ok {
		enc = ec.enc
	}
	_ = writePacket(c, enc, pkt)
}

func TestControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("ok", func(t *testing.T) {
		var got map[string]any
		sock := fakeServer(t, func(c net.Conn, hello map[string]any) {
			got = hello
			// A raw chunk first, as xpra sends large items: it is skipped.
			hdr := make([]byte, 8)
			hdr[0], hdr[3] = 'P', 1
			binary.BigEndian.PutUint32(hdr[4:], 3)
			_, _ = c.Write(append(hdr, "raw"...))
			reply(c, []any{"hello", map[string]any{"command_response": []any{0, "1 windows shown"}}})
		})
		text, err := Control(ctx, sock, Bencode, "show-all-windows")
		if err != nil || text != "1 windows shown" {
			t.Fatalf("Control = %q, %v", text, err)
		}
		if got["request"] != "command" || fmt.Sprint(got["command_request"]) != "[show-all-windows]" || got["version"] != ProtocolVersion {
			t.Errorf("hello sent: %v", got)
		}
	})
	t.Run("error code", func(t *testing.T) {
		sock := fakeServer(t, func(c net.Conn, _ map[string]any) {
			reply(c, []any{"hello", map[string]any{"command_response": []any{6, "invalid command"}}})
		})
		_, err := Control(ctx, sock, Bencode, "nope")
		var ce *CommandError
		if err == nil || !strings.Contains(err.Error(), "code 6: invalid command") || !errors.As(err, &ce) || ce.Code != CodeInvalid {
			t.Errorf("Control = %v", err)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		sock := fakeServer(t, func(c net.Conn, _ map[string]any) {
			reply(c, []any{"disconnect", "incompatible version"})
		})
		if _, err := Control(ctx, sock, Bencode, "x"); err == nil || !strings.Contains(err.Error(), "incompatible version") {
			t.Errorf("Control = %v", err)
		}
	})
	t.Run("not xpra", func(t *testing.T) {
		sock := fakeServer(t, func(c net.Conn, _ map[string]any) { _, _ = io.WriteString(c, "HTTP/1.1 400 Bad\r\n\r\n") })
		if _, err := Control(ctx, sock, Bencode, "x"); err == nil || !strings.Contains(err.Error(), "not an xpra packet") {
			t.Errorf("Control = %v", err)
		}
	})
	t.Run("nobody listens", func(t *testing.T) {
		if _, err := Control(ctx, filepath.Join(t.TempDir(), "none"), Bencode, "x"); err == nil {
			t.Error("Control to a missing socket succeeded")
		}
	})
}

func TestHTTPReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := HTTPReady(ctx, filepath.Join(t.TempDir(), "none")); ok || err != nil {
		t.Errorf("missing socket: %v, %v; want false, nil", ok, err)
	}
	path := filepath.Join(t.TempDir(), "http.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = bufio.NewReader(c).ReadString('\n')
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			c.Close()
		}
	}()
	if ok, err := HTTPReady(ctx, path); !ok || err != nil {
		t.Errorf("HTTPReady = %v, %v; want true", ok, err)
	}
}

// TestControlEncoding: the hello goes out in the encoding asked for, names only that one, and
// the answer is read in the encoding its header announces. A server that, like xpra 6, drops a
// bencoded hello without answering makes a bencode Control fail and a rencodeplus one succeed.
func TestControlEncoding(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	xpra6 := func(t *testing.T) (string, *map[string]any) {
		var got map[string]any
		return fakeServerEnc(t, func(c net.Conn, enc Encoding, hello map[string]any) {
			if enc != RencodePlus {
				return // xpra 6: "invalid packet format, bencode" and the connection closes
			}
			got = hello
			_ = writePacket(c, RencodePlus, []any{"hello", map[string]any{"command_response": []any{0, "shown"}}})
		}), &got
	}
	sock, got := xpra6(t)
	if text, err := Control(ctx, sock, RencodePlus, "show-all-windows"); err != nil || text != "shown" {
		t.Fatalf("rencodeplus Control = %q, %v", text, err)
	}
	if (*got)["rencodeplus"] != true || (*got)["bencode"] != false || fmt.Sprint((*got)["encoders"]) != "[rencodeplus]" {
		t.Errorf("rencodeplus hello: %v", *got)
	}
	sock, _ = xpra6(t)
	if _, err := Control(ctx, sock, Bencode, "show-all-windows"); err == nil {
		t.Error("a bencoded Control got an answer from a server that drops bencode")
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		enc  Encoding
	}{
		{"xpra v3.1.3", Version{3, 1, 3}, Bencode},
		{"xpra v4.4.6-r0", Version{4, 4, 6}, Bencode},
		{"xpra v5.0.12", Version{5, 0, 12}, RencodePlus},
		{"xpra v6.5", Version{6, 5, 0}, RencodePlus},
		{"xpra v6.5.5-r38000 beta", Version{6, 5, 5}, RencodePlus},
	} {
		v, err := ParseVersion(tc.in)
		if err != nil || v != tc.want || v.Encoding() != tc.enc {
			t.Errorf("ParseVersion(%q) = %v (%v), %v; want %v (%v)", tc.in, v, v.Encoding(), err, tc.want, tc.enc)
		}
	}
	for _, bad := range []string{"", "xpra", "Python 3"} {
		if v, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", bad, v)
		}
	}
}
