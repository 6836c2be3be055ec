package front

import (
	"bytes"
	"compress/gzip"
	"context"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Compression of what xpra serves. xpra 3.1 has no compressed copies of its HTML5 client's
// files, so it gzips each one at zlib's slowest level (9) at every request that accepts gzip:
// the client's page loads 34 scripts and style sheets, 4.2 MB, which took about 360 ms of the
// node's CPU in xpra's process at every visit (measured with Python's zlib on xpra's own files),
// the first visit's during Firefox's start. The front asks xpra for everything uncompressed and
// compresses text itself at gzip's fastest level (Go's, about 50 ms for the same files), for a
// browser that accepts gzip: the user's browser is usually not on the node, and 4.2 MB without
// compression would be slow on a slow link.

// gzipKey marks, in the context of a request relayed to xpra, that the browser accepts gzip.
type gzipKey struct{}

// maxCompressed bounds a response the front reads whole to compress it; a bigger one (xpra's
// largest script is 0.5 MB) is relayed uncompressed.
const maxCompressed = 8 << 20

// minCompressed is the smallest body worth compressing.
const minCompressed = 1024

// acceptsGzip says whether the Accept-Encoding of r admits gzip (absent, or with q=0, it does
// not).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			if qv, ok := strings.CutPrefix(q, "q="); ok {
				if f, err := strconv.ParseFloat(qv, 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

// askUncompressed takes the encodings the browser accepts off a request for xpra (out),
// remembering in its context whether gzip was one of them (in: the browser's request). A
// WebSocket's upgrade is left alone: its compression is negotiated in the WebSocket's own
// headers.
func askUncompressed(in, out *http.Request) *http.Request {
	if out.Header.Get("Upgrade") != "" {
		return out
	}
	out.Header.Del("Accept-Encoding")
	if acceptsGzip(in) {
		out = out.WithContext(context.WithValue(out.Context(), gzipKey{}, true))
	}
	return out
}

// compressible says whether a body of this Content-Type is text that gzip shrinks.
func compressible(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		return true
	case mt == "application/javascript", mt == "application/json", mt == "image/svg+xml", mt == "application/wasm":
		return true
	}
	return false
}

// compressResponse gzips resp's body at the fastest level when its request was marked by
// askUncompressed (the browser accepts gzip), it is a whole 200 answer of compressible type
// that xpra sent uncompressed, and it shrinks. Anything else passes as xpra sent it.
func compressResponse(resp *http.Response) error {
	if resp.Request == nil || resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return nil
	}
	if ok, _ := resp.Request.Context().Value(gzipKey{}).(bool); !ok {
		return nil
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return nil
	}
	if !compressible(resp.Header.Get("Content-Type")) ||
		resp.ContentLength >= 0 && (resp.ContentLength < minCompressed || resp.ContentLength > maxCompressed) {
		return nil
	}
	body, whole, err := readWhole(resp, maxCompressed)
	if err != nil || !whole {
		return err
	}
	out := body
	if len(body) >= minCompressed {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_, _ = zw.Write(body)
		if zw.Close() == nil && buf.Len() < len(body) {
			out = buf.Bytes()
			resp.Header.Set("Content-Encoding", "gzip")
			// A strong tag (xpra's own, if any) names the uncompressed bytes; the front's
			// weak content tag (revalidate) holds for either encoding.
			if !strings.HasPrefix(resp.Header.Get("Etag"), "W/") {
				resp.Header.Del("Etag")
			}
		}
	}
	varyOnEncoding(resp.Header)
	setBody(resp, out)
	return nil
}

// varyOnEncoding says, once, that the response depends on the request's Accept-Encoding.
func varyOnEncoding(h http.Header) {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Accept-Encoding") {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}
