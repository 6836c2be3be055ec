package front

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// The starting overlay. Once the starting session's xpra serves its page (Serve), the front
// relays the HTML5 client while Firefox is still starting, so the client's page load, its
// WebSocket and xpra's handshake happen during Firefox's start instead of after it. What the
// user sees meanwhile is xpra's empty desktop, which must not pass for a ready Firefox: the
// client's page gets one script of ffl's (startingScriptPath, served by the front itself, so the
// page's Content-Security-Policy "script-src 'self'" admits it), which covers the page with
// "Starting Firefox…" and asks the front (readyPath) until the session is Ready, the very moment
// the launcher's own readiness (Firefox's window mapped and painted) is reached; a failed start
// replaces the text with the reason. Both paths are relative in the page, so they work behind
// jupyter-server-proxy's prefix, and both go through the door like every request.
const (
	startingScriptPath = "/.ffl/starting.js"
	readyPath          = "/.ffl/ready"
	// readyPoll bounds one wait of readyPath: the script asks again after a 202, so a proxy's
	// idle timeout never cuts a long start.
	readyPoll = 20 * time.Second
)

// startingJS is the overlay's script (see above). It writes text only through textContent.
const startingJS = `(() => {
  const o = document.createElement('div');
  o.id = 'ffl-starting';
  o.style.cssText = 'position:fixed;left:0;top:0;right:0;bottom:0;z-index:2147483647;display:flex;' +
    'align-items:center;justify-content:center;background:#f0f0f0;color:#333;font:20px sans-serif';
  o.textContent = 'Starting Firefox\u2026';
  const show = () => document.body.appendChild(o);
  if (document.body) show(); else document.addEventListener('DOMContentLoaded', show);
  const ask = () => fetch('.ffl/ready', {cache: 'no-store', credentials: 'same-origin'}).then(r => r.text().then(t => {
    if (r.status === 200) { o.remove(); return; }
    if (r.status === 202) { ask(); return; }
    o.textContent = t;
  })).catch(() => setTimeout(ask, 1000));
  ask();
})();
`

// startingTag is what the client's page gets before its </body>.
const startingTag = `<script src=".ffl/starting.js"></script>`

// serveStarting answers the overlay's two paths.
func (f *Front) serveStarting(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if r.URL.Path == startingScriptPath {
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(startingJS)))
		_, _ = io.WriteString(w, startingJS)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	t := time.NewTimer(readyPoll)
	defer t.Stop()
	for {
		f.mu.Lock()
		state, reason, changed := f.state, f.reason, f.changed
		f.mu.Unlock()
		switch state {
		case Ready:
			_, _ = io.WriteString(w, "ready")
			return
		case Failed:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "The Firefox session could not start: "+reason)
			return
		case Idle, Closed:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "The Firefox session ended.")
			return
		}
		select {
		case <-changed:
		case <-t.C:
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "starting")
			return
		case <-r.Context().Done():
			return
		}
	}
}
