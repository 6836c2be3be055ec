package front

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestAddClientScript: the HTML5 client's page (and only it, as xpra sent it uncompressed) gets
// ffl's script before </head>, with the layout escaped, and the starting overlay's before </body>; everything else passes unchanged.
func TestAddClientScript(t *testing.T) {
	page := "<html><head><script src=\"js/Client.js\"></script></head><body>x</body></html>"
	for _, tc := range []struct {
		name, method, path, ctype, enc, body, layout string
		starting                                     bool // served while the session starts
		status                                       int
		chunked                                      bool   // no Content-Length
		want                                         string // "" = unchanged
	}{
		{name: "index.html", method: "GET", path: "/index.html", ctype: "text/html", body: page, layout: "de", status: 200,
			want: "<html><head><script src=\"js/Client.js\"></script>" + `<script type="text/javascript" src="./ffl-client.js" data-keyboard-layout="de"></script>` + "\n</head><body>x" + startingTag + "</body></html>"},
		{name: "the root", method: "GET", path: "/", ctype: "text/html; charset=utf-8", body: page, status: 200,
			want: "<html><head><script src=\"js/Client.js\"></script>" + `<script type="text/javascript" src="./ffl-client.js" data-keyboard-layout=""></script>` + "\n</head><body>x" + startingTag + "</body></html>"},
		{name: "while starting", method: "GET", path: "/", ctype: "text/html", body: page, layout: "us", starting: true, status: 200,
			want: "<html><head><script src=\"js/Client.js\"></script>" + `<script type="text/javascript" src="./ffl-client.js" data-keyboard-layout="us" data-starting="1"></script>` + "\n</head><body>x" + startingTag + "</body></html>"},
		{name: "a layout is escaped", method: "GET", path: "/", ctype: "text/html", body: page, layout: `x"><script>`, status: 200,
			want: "<html><head><script src=\"js/Client.js\"></script>" + `<script type="text/javascript" src="./ffl-client.js" data-keyboard-layout="x&#34;&gt;&lt;script&gt;"></script>` + "\n</head><body>x" + startingTag + "</body></html>"},
		{name: "another page", method: "GET", path: "/connect.html", ctype: "text/html", body: page, status: 200},
		{name: "a script", method: "GET", path: "/", ctype: "text/javascript", body: page, status: 200},
		{name: "not modified", method: "GET", path: "/", ctype: "text/html", body: "", status: 304},
		{name: "compressed", method: "GET", path: "/", ctype: "text/html", enc: "gzip", body: page, status: 200},
		{name: "no head", method: "GET", path: "/", ctype: "text/html", body: "<html><body></body></html>", status: 200},
		{name: "too big", method: "GET", path: "/", ctype: "text/html", body: strings.Repeat("x", maxClientPage) + "</head>", status: 200},
		{name: "too big, no length", method: "GET", path: "/", ctype: "text/html", body: strings.Repeat("x", maxClientPage) + "</head>", status: 200, chunked: true},
		{name: "a POST", method: "POST", path: "/", ctype: "text/html", body: page, status: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, "http://xpra"+tc.path, nil)
			resp := &http.Response{StatusCode: tc.status, Request: req, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body)), ContentLength: int64(len(tc.body))}
			if tc.chunked {
				resp.ContentLength = -1
			}
			resp.Header.Set("Content-Type", tc.ctype)
			resp.Header.Set("Etag", "e1")
			if tc.enc != "" {
				resp.Header.Set("Content-Encoding", tc.enc)
			}
			if err := addClientScript(resp, tc.layout, tc.starting); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			want := tc.want
			if want == "" {
				want = tc.body
			}
			if string(got) != want {
				t.Fatalf("body %q, want %q", got, want)
			}
			if wantLen := int64(len(got)); tc.chunked && resp.ContentLength != -1 || !tc.chunked && resp.ContentLength != wantLen {
				t.Errorf("ContentLength %d for a body of %d bytes (sent without a length: %v)", resp.ContentLength, len(got), tc.chunked)
			}
			if changed := tc.want != ""; changed == (resp.Header.Get("Etag") != "") {
				t.Errorf("changed page %v, Etag %q: a changed page must lose xpra's validators, another keep them", changed, resp.Header.Get("Etag"))
			}
		})
	}
}

// TestClientScriptServed: the front itself answers ClientScriptPath after the door's checks,
// in any state (xpra gets no request for it), and asks xpra for the client's page whole.
func TestClientScriptServed(t *testing.T) {
	x := newFakeXpra(t)
	f := listen(t, Options{UID: os.Getuid(), KeyboardLayout: "fr"})
	f.Ready(x.path)
	c := dial(t, f)
	r := bufio.NewReader(c)
	h := "localhost:" + strconv.Itoa(f.Port())
	code, body := get(t, c, r, h, ClientScriptPath, "Referer: http://"+h+"/")
	if code != 200 || !bytes.Equal([]byte(body), clientJS) {
		t.Fatalf("GET %s: %d, %d bytes, want 200 and the script", ClientScriptPath, code, len(body))
	}
	if code, _ := get(t, c, r, h, "/index.html", "Accept-Encoding: gzip, br", "If-None-Match: e1"); code != 200 {
		t.Fatalf("index.html: %d", code)
	}
	reqs := x.requests()
	if len(reqs) != 1 || reqs[0].URL.Path != "/index.html" {
		t.Fatalf("xpra got %d requests, want only the page's", len(reqs))
	}
	if ae, inm := reqs[0].Header.Get("Accept-Encoding"), reqs[0].Header.Get("If-None-Match"); ae != "" || inm != "" {
		t.Errorf("xpra was asked for the page with Accept-Encoding %q, If-None-Match %q: it may answer compressed or 304", ae, inm)
	}
	c2 := dial(t, f)
	if code, _ := get(t, c2, bufio.NewReader(c2), h, ClientScriptPath, "Origin: http://evil.example"); code != http.StatusForbidden {
		t.Errorf("a request from another page got %d, want 403", code)
	}
}

// TestReadWholeTakesSetBody: a body an earlier step set is handed on, not read and copied again;
// one over the limit is still relayed whole.
func TestReadWholeTakesSetBody(t *testing.T) {
	data := []byte(strings.Repeat("x", 4096))
	resp := &http.Response{Header: http.Header{}}
	setBody(resp, data)
	got, whole, err := readWhole(resp, len(data))
	if err != nil || !whole || len(got) != len(data) || &got[0] != &data[0] {
		t.Fatalf("readWhole of a set body: %d bytes, whole %v, err %v, same bytes %v", len(got), whole, err, len(got) > 0 && &got[0] == &data[0])
	}
	setBody(resp, data)
	if _, whole, err := readWhole(resp, len(data)-1); err != nil || whole {
		t.Fatalf("a set body over the limit: whole %v, err %v", whole, err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != string(data) {
		t.Fatalf("a set body over the limit relays %d of %d bytes (%v)", len(rest), len(data), err)
	}
}
