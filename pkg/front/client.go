package front

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// ClientScriptPath is where the front serves clientJS, ffl's corrections to xpra 3.1's HTML5
// client (keyboard and clipboard; the file says what each corrects and why). The front itself
// answers it, after the door's checks, in any state of the session: it is the same for every
// session and holds nothing of the user's.
const ClientScriptPath = "/ffl-client.js"

//go:embed client.js
var clientJS []byte

// maxClientPage bounds the HTML5 client's page the front reads to add the script (xpra 3.1's
// index.html is 40 KiB); a bigger page is relayed unchanged.
const maxClientPage = 1 << 20

// isClientPage says whether a request asks for the HTML5 client's page, the one page that
// loads clientJS.
func isClientPage(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/" || r.URL.Path == "/index.html")
}

// serveClientScript answers ClientScriptPath.
func serveClientScript(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(clientJS)))
	_, _ = w.Write(clientJS)
}

// clientScriptTag is the tag the client's page gets, carrying the configured keyboard layout
// ("" for the browser's own) and, for a page served while Firefox is still starting, a
// data-starting mark (client.js keeps the screen size in the hello then; see there why).
func clientScriptTag(layout string, starting bool) []byte {
	mark := ""
	if starting {
		mark = ` data-starting="1"`
	}
	return []byte(fmt.Sprintf(`<script type="text/javascript" src=".%s" data-keyboard-layout="%s"%s></script>`,
		ClientScriptPath, html.EscapeString(layout), mark))
}

// addClientScript adds ffl's scripts to the HTML5 client's page in resp: clientScriptTag before
// its </head>, after the client's own scripts (which it changes before the page's inline script
// creates the client), and startingTag before its </body>. Any other response, a compressed or
// oversized one, or a page without </head> is left as xpra sent it. starting says the session is
// still starting as the page is served.
func addClientScript(resp *http.Response, layout string, starting bool) error {
	if resp.Request == nil || !isClientPage(resp.Request) || resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil
	}
	if resp.ContentLength > maxClientPage {
		return nil
	}
	body, whole, err := readWhole(resp, maxClientPage)
	if err != nil {
		return fmt.Errorf("read the HTML5 client's page: %w", err)
	}
	if !whole {
		return nil
	}
	if i := bytes.Index(bytes.ToLower(body), []byte("</head>")); i >= 0 {
		tag := clientScriptTag(layout, starting)
		out := make([]byte, 0, len(body)+len(tag)+len(startingTag)+1)
		out = append(append(append(out, body[:i]...), tag...), '\n')
		// The starting overlay's script goes last in the body (starting.go): it needs the body
		// it covers, and nothing of the client waits for it.
		rest := body[i:]
		if j := bytes.LastIndex(bytes.ToLower(rest), []byte("</body>")); j >= 0 {
			out = append(append(out, rest[:j]...), startingTag...)
			rest = rest[j:]
		}
		body = append(out, rest...)
		resp.Header.Del("Etag")
		resp.Header.Del("Last-Modified")
		resp.Header.Set("Cache-Control", "no-cache")
	}
	setBody(resp, body)
	return nil
}

// wholeBody is a body setBody put in memory: the next step of ModifyResponse (addClientScript,
// revalidate, compressResponse) takes its bytes instead of reading and copying them again.
type wholeBody struct {
	*bytes.Reader
	data []byte
}

func (wholeBody) Close() error { return nil }

// setBody makes body resp's whole body, with its length.
func setBody(resp *http.Response, body []byte) {
	resp.Body = wholeBody{bytes.NewReader(body), body}
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// readWhole reads resp's body whole when it is at most limit bytes, and closes it. A body found
// bigger (sent without a Content-Length) is left to be relayed unchanged: resp.Body then gives
// what was read first and then the rest, and whole is false. On a read error the body is closed.
// A body an earlier step set (setBody) is returned as it is, unread.
func readWhole(resp *http.Response, limit int) (body []byte, whole bool, err error) {
	if wb, ok := resp.Body.(wholeBody); ok && wb.Len() == len(wb.data) && len(wb.data) <= limit {
		return wb.data, true, nil
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		resp.Body.Close()
		return nil, false, err
	}
	if len(body) > limit {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil, false, nil
	}
	resp.Body.Close()
	return body, true, nil
}
