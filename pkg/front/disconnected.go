package front

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DisconnectedPath is where xpra's HTML5 client sends a tab whose connection has ended for good:
// another tab or window took the session over (xpra's reason "new client"), the tab was idle
// for idle_timeout ("idle timeout"), or the server stopped answering after the client's own
// reconnect attempts. The client puts the reason into the tab's sessionStorage ("disconnect";
// in the query when the browser has no sessionStorage) and navigates to ./connect.html.
//
// xpra's page there is its connect form (server, port, user name, password, "Start Desktop",
// ...): in an ffl session it is of no use, reads like a login, and the reason is one line
// above a form. So the front answers this path itself, after the door, in every state: a page
// that says in the user's words what happened and offers the one useful thing, reconnecting
// to the same session ("./", relative, so it works under jupyter-server-proxy's prefix too).
// It sends no request by itself and reconnects only when clicked: an idle tab stays quiet, so
// that JupyterHub's culler sees no activity.
const DisconnectedPath = "/connect.html"

// disconnectedPage is the page at DisconnectedPath; %s is the idle timeout in words. The
// reason is inserted with textContent, never as markup, and its words are shown only when they
// come from the tab's sessionStorage: a query string is any web page's to choose.
const disconnectedPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ffl: Firefox session disconnected</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:sans-serif;margin:2em;max-width:50em">
<h1 id="ffl-title">This tab is no longer connected to the Firefox session</h1>
<p id="ffl-what">The connection to the session ended.</p>
<p>Firefox and its tabs keep running in the session until it ends.</p>
<p><a id="ffl-reconnect" href="./" style="font-size:120%%">Reconnect</a></p>
<p id="ffl-reason" style="color:#555"></p>
<script>
(function () {
  // The reason is read from the tab's sessionStorage, which only pages of this origin write.
  // The query is read only when the browser has no sessionStorage (the client then puts the
  // reason there instead), and any web page can link here with a query of its choosing: so
  // the query only selects one of the known texts below, and its words are never shown.
  var reason = null, own = false;
  try {
    reason = sessionStorage.getItem("disconnect");
    own = true;
    // What the client left there would be read back by its page on "Reconnect".
    sessionStorage.clear();
  } catch (e) {
    try { reason = new URLSearchParams(location.search).get("disconnect"); } catch (e2) {}
  }
  var title = document.getElementById("ffl-title"), what = document.getElementById("ffl-what");
  var r = (reason || "").toLowerCase();
  if (r.indexOf("new client") === 0) {
    title.textContent = "This session was opened in another tab or window";
    what.textContent = "Only one tab at a time can show the Firefox session, and another tab or window has just opened it. Use that one, or reconnect here: the other one is then disconnected.";
  } else if (r.indexOf("idle timeout") === 0) {
    title.textContent = "Disconnected after %s without input";
    what.textContent = "This tab had no keyboard or mouse input for %s, so it let go of the session: a tab left open does not keep the job, and the node, busy (idle_timeout in ffl.toml). Reconnect to go on where you left off.";
  } else if (reason) {
    what.textContent = "The connection to the session was lost. Reconnect to go on; if the session has ended, start a new one.";
  }
  if (reason && own) {
    document.getElementById("ffl-reason").textContent = "Reason (from xpra's client): " + reason;
  }
})();
</script>
</body></html>
`

// noReconnect answers a browser's navigation to the HTML5 client's page ("/", "/index.html")
// that does not say whether the client should reconnect with a redirect to the same page with
// reconnect=false, and says whether it did. Why: xpra 3.1's client never completes a reconnect
// (its do_reconnect reads a variable that does not exist, throws, and leaves its
// reconnect_in_progress flag set, which also silences its ping timeout), so after a dropped
// connection the tab would show a frozen picture of Firefox for ever. Told not to reconnect,
// the client goes to the disconnect page (DisconnectedPath), which says the connection was lost
// and offers Reconnect: the same Firefox, one click away. The redirect is relative (only the
// query changes), so it works under jupyter-server-proxy's prefix; only navigations
// (Sec-Fetch-Dest: document, which every current browser sends) get it, so scripts and probes
// that fetch the page see it as it is.
func noReconnect(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet || (r.URL.Path != "/" && r.URL.Path != "/index.html") ||
		r.Header.Get("Sec-Fetch-Dest") != "document" {
		return false
	}
	q := r.URL.Query()
	if q.Has("reconnect") {
		return false
	}
	q.Set("reconnect", "false")
	w.Header().Set("Location", "?"+q.Encode())
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
	return true
}

// isDisconnected says whether r asks for the disconnect page.
func isDisconnected(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == DisconnectedPath
}

// writeDisconnected answers with the disconnect page.
func writeDisconnected(w http.ResponseWriter, idle time.Duration) {
	words := "a while"
	if idle > 0 {
		words = humanDuration(idle)
	}
	body := fmt.Sprintf(disconnectedPage, words, words)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// humanDuration says d the way the page's reader would: "30 minutes", "1 hour 30 minutes",
// "20 seconds".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	var parts []string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}} {
		n := d / u.d
		d -= n * u.d
		switch {
		case n == 1:
			parts = append(parts, "1 "+u.name)
		case n > 1:
			parts = append(parts, strconv.FormatInt(int64(n), 10)+" "+u.name+"s")
		}
	}
	if len(parts) == 0 {
		return "0 seconds"
	}
	return strings.Join(parts, " ")
}
