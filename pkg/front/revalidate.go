package front

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
)

// Revalidation of the HTML5 client's files. xpra 3.1 sends every file of its client with
// "Cache-Control: no-cache, no-store, must-revalidate", "Pragma: no-cache" and "Expires: 0" (its
// http-headers/00_nocache.txt) and answers no conditional request, so the browser fetches the
// client's 34 scripts and style sheets (4.2 MB) anew at every visit, and the front compresses them
// anew. The front gives each such file a validator instead: an entity tag of its content and
// "Cache-Control: private, no-cache", which lets the user's browser keep the file but ask before
// every use. A request whose If-None-Match names the file's current tag gets 304 Not Modified with
// no body: nothing to compress or send. The tag is taken from the body xpra sends at that moment,
// so a changed file (xpra upgraded between two sessions) is never answered from the browser's
// copy, and "private" keeps shared caches out. The client's page itself (which the front changes
// for each session: addClientScript) and any HTML keep xpra's headers.

// revalidate gives resp a content tag and a cache policy that lets the browser keep it (see
// above), and turns it into 304 Not Modified when its request's If-None-Match already names that
// tag. Only a whole 200 answer to a GET of a file that is not HTML is changed, one of at most
// maxCompressed bytes that xpra sent uncompressed (the front asks for it so: askUncompressed).
func revalidate(resp *http.Response) error {
	req := resp.Request
	if req == nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || isClientPage(req) {
		return nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil
	}
	if resp.ContentLength > maxCompressed {
		return nil
	}
	body, whole, err := readWhole(resp, maxCompressed)
	if err != nil || !whole {
		return err
	}
	tag := contentTag(body)
	h := resp.Header
	h.Del("Pragma")
	h.Del("Expires")
	h.Del("Last-Modified")
	h.Set("Cache-Control", "private, no-cache")
	h.Set("Etag", tag)
	varyOnEncoding(h)
	if tagMatches(req.Header.Values("If-None-Match"), tag) {
		resp.StatusCode = http.StatusNotModified
		resp.Status = "304 Not Modified"
		h.Del("Content-Length")
		h.Del("Content-Type")
		resp.ContentLength = 0
		resp.Body = io.NopCloser(strings.NewReader(""))
		return nil
	}
	setBody(resp, body)
	return nil
}

// contentTag is the entity tag of a file's content. It is weak (W/) because the front may send
// the same content gzipped or not (compressResponse), which a strong tag would have to tell
// apart; a weak tag is all If-None-Match compares anyway.
func contentTag(body []byte) string {
	sum := sha256.Sum256(body)
	return `W/"` + hex.EncodeToString(sum[:16]) + `"`
}

// tagMatches says whether the If-None-Match values name tag (weak comparison, RFC 9110
// 13.1.2: W/ is ignored on both sides) or are "*".
func tagMatches(values []string, tag string) bool {
	want := strings.TrimPrefix(tag, "W/")
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == want {
				return true
			}
		}
	}
	return false
}
