package front

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDisconnectedPage: the page xpra's HTML5 client goes to when its connection has ended is
// the front's own, in every state of the session, behind the door like every other request,
// and xpra never sees the request.
func TestDisconnectedPage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		state  func(f *Front, xpra string)
		idle   time.Duration
		origin string // "" for the session's own
		status int
		want   string
	}{
		{"ready", func(f *Front, x string) { f.Ready(x) }, 30 * time.Minute, "", 200, "input for %s"},
		{"idle timeout in words", func(f *Front, x string) { f.Ready(x) }, 90 * time.Second, "", 200, "1 minute 30 seconds"},
		{"no session", func(f *Front, x string) { f.Idle() }, 0, "", 200, "This session was opened in another tab or window"},
		{"failed", func(f *Front, x string) { f.Failed("boom") }, 0, "", 200, `href="./"`},
		{"another origin", func(f *Front, x string) { f.Ready(x) }, 0, "http://evil.example", 403, "may not use this session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFakeXpra(t)
			f := listen(t, Options{UID: 7, PeerUID: uidIs(7), IdleTimeout: tc.idle})
			tc.state(f, x.path)
			host := "localhost:" + strconv.Itoa(f.Port())
			origin := "http://" + host
			if tc.origin != "" {
				origin = tc.origin
			}
			c := dial(t, f)
			code, body := get(t, c, bufio.NewReader(c), host, DisconnectedPath, "Origin: "+origin)
			want := tc.want
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", humanDuration(tc.idle))
			}
			if code != tc.status || !strings.Contains(body, want) {
				t.Errorf("got %d %q, want %d with %q", code, body, tc.status, want)
			}
			if n := x.bytes.Load(); n != 0 {
				t.Errorf("xpra got %d bytes of the request for %s", n, DisconnectedPath)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Minute:                   "30 minutes",
		time.Hour + 30*time.Minute:         "1 hour 30 minutes",
		20 * time.Second:                   "20 seconds",
		2*time.Hour + time.Second:          "2 hours 1 second",
		time.Minute + 400*time.Millisecond: "1 minute",
		0:                                  "0 seconds",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestNoClientReconnect: a browser's navigation to the HTML5 client's page is sent to the same
// page with reconnect=false (a relative redirect: only the query changes); everything else
// reaches xpra as it is.
func TestNoClientReconnect(t *testing.T) {
	nav := "Sec-Fetch-Dest: document"
	for _, tc := range []struct {
		name     string
		off      bool
		path     string
		header   string
		status   int
		location string
	}{
		{"navigation to /", false, "/", nav, 302, "?reconnect=false"},
		{"navigation to /index.html with a query", false, "/index.html?sharing=no", nav, 302, "?reconnect=false&sharing=no"},
		{"reconnect already said", false, "/?reconnect=true", nav, 200, ""},
		{"not a navigation (a probe, curl)", false, "/", "Sec-Fetch-Dest: empty", 200, ""},
		{"another page", false, "/js/Client.js", nav, 200, ""},
		{"option off", true, "/", nav, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newFakeXpra(t)
			f := listen(t, Options{UID: 7, PeerUID: uidIs(7), NoClientReconnect: !tc.off})
			f.Ready(x.path)
			host := "localhost:" + strconv.Itoa(f.Port())
			c := dial(t, f)
			_, _ = io.WriteString(c, "GET "+tc.path+" HTTP/1.1\r\nHost: "+host+"\r\n"+tc.header+"\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
				t.Errorf("got %d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
			}
			if relayed := x.bytes.Load() > 0; relayed != (tc.status == 200) {
				t.Errorf("xpra got the request: %v, want %v", relayed, tc.status == 200)
			}
		})
	}
}
