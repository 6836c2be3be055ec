package front

import (
	"bufio"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

// noCacheXpra serves files with the headers of xpra 3.1's http-headers/00_nocache.txt and
// answers no conditional request, as xpra 3.1 does; set changes a file between requests.
func noCacheXpra(t *testing.T, files map[string]string) (sock string, set func(path, body string)) {
	t.Helper()
	var mu sync.Mutex
	sock = unixHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body, ok := files[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
		h.Set("Pragma", "no-cache")
		h.Set("Expires", "0")
		h.Set("Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT")
		switch {
		case strings.HasSuffix(r.URL.Path, ".js"):
			h.Set("Content-Type", "text/javascript")
		default:
			h.Set("Content-Type", "text/html")
		}
		_, _ = io.WriteString(w, body)
	}))
	return sock, func(path, body string) {
		mu.Lock()
		files[path] = body
		mu.Unlock()
	}
}

// fetchVia sends one GET through the front as a browser on the session's own page would, with
// extra header lines (Accept-Encoding among them when wanted), and returns the response with its
// body read (gunzipped when gzip).
func fetchVia(t *testing.T, f *Front, path string, extra ...string) (*http.Response, string) {
	t.Helper()
	c := dial(t, f)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host(f) + "\r\nReferer: http://" + host(f) + "/\r\n"
	for _, e := range extra {
		req += e + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestClientFilesRevalidated: the browser may keep a client file and ask before using it: the
// front tags it by content, answers a request naming the current tag with 304 and no body, and
// a file changed since (xpra upgraded) with the new content; the client's page and other HTML
// keep xpra's no-store.
func TestClientFilesRevalidated(t *testing.T) {
	script := strings.Repeat("function f(a, b) { return a + b; }\n", 2000)
	sock, set := noCacheXpra(t, map[string]string{
		"/js/Client.js": script,
		"/":             "<html><head></head><body>client</body></html>",
		"/connect.html": "<html><body>connect</body></html>",
	})
	f := listen(t, Options{UID: os.Getuid()})
	f.Ready(sock)

	const gz = "Accept-Encoding: gzip"
	resp, body := fetchVia(t, f, "/js/Client.js", gz)
	tag := resp.Header.Get("Etag")
	if resp.StatusCode != http.StatusOK || body != script {
		t.Fatalf("first fetch: %d with %d bytes, want 200 with the script", resp.StatusCode, len(body))
	}
	if !strings.HasPrefix(tag, `W/"`) {
		t.Fatalf("first fetch: ETag %q, want the front's content tag", tag)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control %q, want private, no-cache", cc)
	}
	for _, h := range []string{"Pragma", "Expires", "Last-Modified"} {
		if v := resp.Header.Get(h); v != "" {
			t.Errorf("%s %q still there: the browser would not keep the file", h, v)
		}
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("the tagged script was not compressed")
	}

	for _, inm := range []string{tag, strings.TrimPrefix(tag, "W/"), `"other", ` + tag, "*"} {
		resp, body = fetchVia(t, f, "/js/Client.js", gz, "If-None-Match: "+inm)
		if resp.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("If-None-Match %s: %d with %d bytes, want 304 and no body", inm, resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("Etag"); got != tag {
			t.Errorf("If-None-Match %s: ETag %q, want %q", inm, got, tag)
		}
	}

	resp, body = fetchVia(t, f, "/js/Client.js", gz, `If-None-Match: W/"0123"`)
	if resp.StatusCode != http.StatusOK || body != script {
		t.Errorf("another tag: %d with %d bytes, want 200 with the script", resp.StatusCode, len(body))
	}

	changed := script + "// upgraded\n"
	set("/js/Client.js", changed)
	resp, body = fetchVia(t, f, "/js/Client.js", gz, "If-None-Match: "+tag)
	if resp.StatusCode != http.StatusOK || body != changed {
		t.Fatalf("a changed file asked with the old tag: %d with %d bytes, want 200 with the new content", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Etag"); got == tag || got == "" {
		t.Errorf("a changed file kept tag %q (got %q)", tag, got)
	}

	for _, path := range []string{"/", "/connect.html"} {
		resp, _ = fetchVia(t, f, path, gz, "If-None-Match: *")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Etag") != "" {
			t.Errorf("%s: %d with ETag %q, want 200 and no tag (HTML is never kept)", path, resp.StatusCode, resp.Header.Get("Etag"))
		}
	}
	resp, _ = fetchVia(t, f, "/connect.html", gz)
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("/connect.html: Cache-Control %q, want xpra's no-store", cc)
	}
}

func TestTagMatches(t *testing.T) {
	const tag = `W/"abc"`
	for _, tc := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{`W/"abc"`}, true},
		{[]string{`"abc"`}, true},
		{[]string{`"x", W/"abc"`}, true},
		{[]string{`"x"`, `"abc"`}, true},
		{[]string{"*"}, true},
		{[]string{`"abcd"`}, false},
		{[]string{`abc`}, false},
		{[]string{``}, false},
	} {
		if got := tagMatches(tc.values, tag); got != tc.want {
			t.Errorf("If-None-Match %q: %v, want %v", tc.values, got, tc.want)
		}
	}
}
