package front

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientPageXpra serves an HTML5-client-like page at / (text/html, gzip when asked for it, as
// xpra serves its precompressed files) and "xpra:" + path elsewhere, on a unix socket.
func clientPageXpra(t *testing.T) string {
	t.Helper()
	return unixHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			_, _ = io.WriteString(w, "xpra:"+r.URL.Path)
			return
		}
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip") // never readable as text: must not be asked for
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><head></head><body><div id=\"screen\"></div></BODY></html>")
	}))
}

// unixHTTP serves h on a unix socket in a test dir, as xpra serves its socket, until the test
// ends, and returns the socket's path.
func unixHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "xpra.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() { _ = http.Serve(l, h) }()
	return sock
}

// TestServeWhileStarting: a starting session whose xpra serves its page is relayed at once
// (the client loads during Firefox's start), its page carries the overlay's script, and the
// overlay's question is answered only when the session is ready (or failed, with the reason).
func TestServeWhileStarting(t *testing.T) {
	for _, tc := range []struct {
		name     string
		end      func(f *Front, sock string)
		wantCode int
		wantBody string
	}{
		{"ready", func(f *Front, sock string) { f.Ready(sock) }, http.StatusOK, "ready"},
		{"failed", func(f *Front, _ string) { f.Failed("Firefox crashed") }, http.StatusServiceUnavailable, "could not start: Firefox crashed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := clientPageXpra(t)
			f := listen(t, Options{UID: os.Getuid()})
			f.Starting()
			f.Serve(sock)
			c := dial(t, f)
			r := bufio.NewReader(c)
			code, body := get(t, c, r, host(f), "/", "Accept-Encoding: gzip, br")
			if code != 200 || !strings.Contains(body, `<div id="screen"></div>`+startingTag+"</BODY>") {
				t.Fatalf("client page while starting: %d %q", code, body)
			}
			if code, body := get(t, c, r, host(f), "/js/Client.js"); code != 200 || body != "xpra:/js/Client.js" {
				t.Fatalf("other files while starting: %d %q", code, body)
			}
			if code, body := get(t, c, r, host(f), startingScriptPath); code != 200 || !strings.Contains(body, "ffl-starting") {
				t.Fatalf("overlay script: %d %q", code, body)
			}
			// The overlay's question waits while the session starts.
			rc := dial(t, f)
			rr := bufio.NewReader(rc)
			if _, err := io.WriteString(rc, "GET "+readyPath+" HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			answered := make(chan string, 1)
			go func() {
				resp, err := http.ReadResponse(rr, nil)
				if err != nil {
					answered <- "error: " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answered <- http.StatusText(resp.StatusCode) + ":" + string(b)
			}()
			select {
			case a := <-answered:
				t.Fatalf("answered while starting: %s", a)
			case <-time.After(100 * time.Millisecond):
			}
			tc.end(f, sock)
			a := <-answered
			if !strings.HasPrefix(a, http.StatusText(tc.wantCode)+":") || !strings.Contains(a, tc.wantBody) {
				t.Errorf("overlay's answer %q, want %d with %q", a, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// TestNotServedBeforeServe: a starting session is not relayed before xpra serves its page; the
// connection is held and then relayed.
func TestNotServedBeforeServe(t *testing.T) {
	sock := clientPageXpra(t)
	f := listen(t, Options{UID: os.Getuid()})
	f.Starting()
	c := dial(t, f)
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	select {
	case b := <-got:
		t.Fatalf("answered before xpra serves: %q", b)
	case <-time.After(100 * time.Millisecond):
	}
	f.Serve(sock)
	if b := <-got; b != "xpra:/x" {
		t.Fatalf("after Serve: %q", b)
	}
}

// TestAddStartingScriptLeavesOthers: only the client's uncompressed HTML page gets the
// overlay's script (beside ffl-client.js: addClientScript adds both).
func TestAddStartingScriptLeavesOthers(t *testing.T) {
	page := func(method, path, ctype, enc string) *http.Response {
		req, _ := http.NewRequest(method, "http://xpra"+path, nil)
		h := http.Header{"Content-Type": {ctype}}
		if enc != "" {
			h.Set("Content-Encoding", enc)
		}
		return &http.Response{StatusCode: 200, Header: h, Request: req, Body: io.NopCloser(strings.NewReader("<html><head></head><body></body></html>"))}
	}
	for _, tc := range []struct {
		name string
		resp *http.Response
		want bool
	}{
		{"client page", page("GET", "/", "text/html; charset=utf-8", ""), true},
		{"index.html", page("GET", "/index.html", "text/html", ""), true},
		{"compressed", page("GET", "/", "text/html", "gzip"), false},
		{"other page", page("GET", "/connect.html", "text/html", ""), false},
		{"script", page("GET", "/", "text/javascript", ""), false},
		{"HEAD", page("HEAD", "/", "text/html", ""), false},
	} {
		if err := addClientScript(tc.resp, "", true); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(tc.resp.Body)
		if got := strings.Contains(string(b), startingTag) && strings.Contains(string(b), ClientScriptPath); got != tc.want {
			t.Errorf("%s: script added = %v, want %v (%q)", tc.name, got, tc.want, b)
		}
	}
}

// TestEarlyRelayKeptOnlyForItsXpra: a connection relayed while the session started (Serve)
// stays when that same xpra becomes ready, and is dropped when another one does.
func TestEarlyRelayKeptOnlyForItsXpra(t *testing.T) {
	for _, same := range []bool{true, false} {
		sock, other := clientPageXpra(t), clientPageXpra(t)
		f := listen(t, Options{UID: os.Getuid()})
		f.Starting()
		f.Serve(sock)
		c := dial(t, f)
		r := bufio.NewReader(c)
		if code, body := get(t, c, r, host(f), "/js/a.js"); code != 200 || body != "xpra:/js/a.js" {
			t.Fatalf("relayed while starting: %d %q", code, body)
		}
		ready := other
		if same {
			ready = sock
		}
		f.Ready(ready)
		if same {
			if code, body := get(t, c, r, host(f), "/js/b.js"); code != 200 || body != "xpra:/js/b.js" {
				t.Errorf("the same xpra ready: the early connection got %d %q", code, body)
			}
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /js/b.js HTTP/1.1\r\nHost: "+host(f)+"\r\n\r\n"); err == nil {
			if resp, err := http.ReadResponse(r, nil); err == nil {
				b, _ := io.ReadAll(resp.Body)
				t.Errorf("another xpra ready: the early connection still answered %d %q", resp.StatusCode, b)
			}
		}
	}
}

// TestStartingPathsBehindTheDoor: the overlay's two paths and the disconnect page are the
// front's own answers, and like every request they pass the door first: another site's page
// (Origin) and a foreign Host get 403, in every state.
func TestStartingPathsBehindTheDoor(t *testing.T) {
	sock := clientPageXpra(t)
	f := listen(t, Options{UID: os.Getuid()})
	f.Starting()
	f.Serve(sock)
	for _, path := range []string{startingScriptPath, readyPath, DisconnectedPath, ClientScriptPath} {
		for _, bad := range [][2]string{
			{host(f), "Origin: http://evil.example"},
			{"evil.example:" + strconv.Itoa(f.Port()), "X-Nothing: 1"},
		} {
			c := dial(t, f)
			if code, body := get(t, c, bufio.NewReader(c), bad[0], path, bad[1]); code != http.StatusForbidden {
				t.Errorf("GET %s with Host %s, %s: %d %q, want 403", path, bad[0], bad[1], code, body)
			}
			c.Close()
		}
	}
}
