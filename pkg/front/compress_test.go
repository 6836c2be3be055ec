package front

import (
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"gzip, deflate, br, zstd"}, true},
		{[]string{"br", "GZIP"}, true},
		{[]string{"br;q=1.0, gzip;q=0.5"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.0, br"}, false},
		{[]string{"x-gzip, br"}, false},
		{[]string{"identity"}, false},
	} {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		for _, h := range tc.header {
			r.Header.Add("Accept-Encoding", h)
		}
		if got := acceptsGzip(r); got != tc.want {
			t.Errorf("Accept-Encoding %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

// staticXpra serves files as xpra 3.1 does (Content-Type by extension, and gzip at its own
// slowest level when asked), recording the Accept-Encoding of every request.
func staticXpra(t *testing.T, files map[string]string) (string, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var asked []string
	sock := unixHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Header.Get("Accept-Encoding"))
		mu.Unlock()
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch filepath.Ext(r.URL.Path) {
		case ".js":
			w.Header().Set("Content-Type", "text/javascript")
		case ".png":
			w.Header().Set("Content-Type", "image/png")
		}
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
			_, _ = io.WriteString(zw, body)
			_ = zw.Close()
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	return sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), asked...)
	}
}

// TestCompressedByTheFront: xpra is always asked for files uncompressed; the browser gets text
// gzipped when it accepts gzip (and the same bytes once decompressed), as sent otherwise, and a
// small text or an image as xpra sent it.
func TestCompressedByTheFront(t *testing.T) {
	script := strings.Repeat("function f(a, b) { return a + b; }\n", 2000)
	png := strings.Repeat("\x89PNG", 600)
	sock, asked := staticXpra(t, map[string]string{"/js/Client.js": script, "/small.js": "var x = 1;", "/icon.png": png})
	f := listen(t, Options{UID: os.Getuid()})
	f.Ready(sock)
	for _, tc := range []struct {
		name, path, accept string
		want               string
		wantGzip           bool
	}{
		{"script, gzip accepted", "/js/Client.js", "Accept-Encoding: gzip, deflate, br, zstd", script, true},
		{"script, only br accepted", "/js/Client.js", "Accept-Encoding: br", script, false},
		{"script, gzip refused", "/js/Client.js", "Accept-Encoding: gzip;q=0", script, false},
		{"script, nothing said", "/js/Client.js", "X-Nothing: 1", script, false},
		{"a small script", "/small.js", "Accept-Encoding: gzip", "var x = 1;", false},
		{"an image", "/icon.png", "Accept-Encoding: gzip", png, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, got := fetchVia(t, f, tc.path, tc.accept)
			if gz := resp.Header.Get("Content-Encoding") == "gzip"; gz != tc.wantGzip {
				t.Fatalf("Content-Encoding %q, want gzip %v", resp.Header.Get("Content-Encoding"), tc.wantGzip)
			}
			if got != tc.want {
				t.Fatalf("body of %d bytes, want the %d bytes xpra has", len(got), len(tc.want))
			}
		})
	}
	for _, ae := range asked() {
		if ae != "" {
			t.Errorf("xpra was asked with Accept-Encoding %q: it compresses at its slowest level", ae)
		}
	}
}
