package front

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// ProxySecretHeader carries the Jupyter proxy port's secret (Options.ProxySecret): the entry
// in jupyter_server_config.py adds it to every request jupyter-server-proxy makes to the port,
// HTTP and WebSocket alike (its proxy_request_headers merges request_headers_override into
// both), from a 0600 file in the job's runtime directory that no web page can read.
const ProxySecretHeader = "X-Ffl-Proxy-Secret"

// door returns why a request of an admitted connection (the session's own uid, proven) may not
// reach xpra, or "" when it may. The uid proves the program, not the page: the session's own
// Firefox, the laptop's browser behind `ssh -L` and the notebook server all connect as the user,
// and any web page open in those browsers can make them send a request here. So:
//   - a session port relays only requests whose Host is a loopback name of this port
//     (localhost, 127.0.0.1, [::1], or the bind address, with this port): a page on a name that
//     resolves to 127.0.0.1 (DNS rebinding) carries its own name;
//   - an Origin, when the browser sends one (every WebSocket handshake, every fetch other than a
//     plain GET), must be one of those names with this port: a page of another origin, another
//     port of the node included, is refused, "null" (sandboxes, files) too;
//   - Sec-Fetch-Site, which browsers add to every request, refuses what another site's page
//     makes the browser fetch (subresources, frames: no clickjacking of the session), and lets
//     only a top-level navigation (a link clicked) through, which the other page cannot read;
//   - only GET and HEAD: xpra's HTML5 client needs nothing else, and a cross-protocol POST of
//     xpra's binary protocol does not start with a method net/http parses anyway;
//   - on the Jupyter proxy port (Options.ProxySecret) the Host and Origin are those of the hub
//     as the user's browser sent them (jupyter-server-proxy copies the request's headers), so the
//     proof there is the secret header, which only the user's notebook server sends.
func (f *Front) door(r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return fmt.Sprintf("Method %s: this session serves only GET and HEAD.", r.Method)
	}
	if sec := r.Header.Values(ProxySecretHeader); f.opts.ProxySecret != "" {
		if len(sec) != 1 || subtle.ConstantTimeCompare([]byte(sec[0]), []byte(f.opts.ProxySecret)) != 1 {
			return "This port belongs to the Jupyter proxy of a notebook server: open Firefox from " +
				"JupyterLab's launcher (the address /user/NAME/firefox/ of your hub), not the port itself."
		}
	} else {
		if !f.ownHost(r.Host) {
			return fmt.Sprintf("The address %q is not this session's. Open http://localhost:%d/ "+
				"(from your own machine: ssh -N -L %d:127.0.0.1:%d NODE, then http://localhost:%d/).",
				r.Host, f.port, f.port, f.port, f.port)
		}
		if o := r.Header.Values("Origin"); len(o) > 0 && (len(o) > 1 || !f.ownOrigin(o[0])) {
			return fmt.Sprintf("A page of %q may not use this session: only the session's own page "+
				"(http://localhost:%d/) may.", strings.Join(o, ", "), f.port)
		}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		top := r.Header.Get("Sec-Fetch-Mode") == "navigate" && r.Header.Get("Sec-Fetch-Dest") == "document"
		if !top {
			return "A page of another site asked the browser for this session (in a frame, a script " +
				"or an image): only the session's own page may. Type the session's address instead."
		}
	}
	return ""
}

// ownHost reports whether host (a Host header) names this front: a loopback name or the bind
// address, with this front's port.
func (f *Front) ownHost(host string) bool {
	h, p, err := net.SplitHostPort(host)
	if err != nil || p != strconv.Itoa(f.port) {
		return false
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	if h == "127.0.0.1" || h == "::1" {
		return true
	}
	// The bind address itself, when the site binds an address of the node (never "any").
	ip := net.ParseIP(h)
	return ip != nil && !ip.IsUnspecified() && h == f.bind
}

// ownOrigin reports whether origin is http:// and one of ownHost's names.
func (f *Front) ownOrigin(origin string) bool {
	rest, ok := strings.CutPrefix(strings.ToLower(origin), "http://")
	return ok && !strings.ContainsAny(rest, "/?#@") && f.ownHost(rest)
}

// logForbidden counts a 403 and logs it, rate-limited like the refusals.
func (f *Front) logForbidden(r *http.Request, reason string) {
	f.mu.Lock()
	f.forbidden++
	f.doorLogged.count++
	now := time.Now()
	if !f.doorLogged.last.IsZero() && now.Sub(f.doorLogged.last) < refusalLogEvery {
		f.mu.Unlock()
		return
	}
	count := f.doorLogged.count
	f.doorLogged = refusal{last: now}
	f.mu.Unlock()
	f.opts.Log.WithFields(logrus.Fields{"port": f.port, "host": r.Host, "origin": r.Header.Get("Origin"),
		"path": r.URL.Path, "refused": count, "reason": reason}).Warn("request refused (403): not the session's own page")
}

// Forbidden is the number of requests answered 403 so far (door).
func (f *Front) Forbidden() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forbidden
}
