package lifecycle

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// CheckStartURL refuses, before anything is started, a start page Firefox could not load from
// this node: a file:// URL whose file the user cannot read, an http(s) URL whose host does not
// resolve or does not accept a connection (Firefox in a session uses no proxy: the session's
// environment has none). Other schemes (about:, data:) pass. The error names the URL and the
// fix.
func CheckStartURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%w: start URL %q: not an absolute URL: fix start_url in ffl.toml or --url", ErrBadInput, raw)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return fmt.Errorf("%w: start URL %s: %v: fix start_url in ffl.toml or --url", ErrBadInput, raw, err)
		}
		f.Close()
	case "http", "https":
		port := u.Port()
		if port == "" {
			port = "80"
			if strings.EqualFold(u.Scheme, "https") {
				port = "443"
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
		if err != nil {
			return fmt.Errorf("%w: start URL %s cannot be loaded from this node: %v: fix start_url in ffl.toml or --url", ErrBadInput, raw, err)
		}
		c.Close()
	}
	return nil
}
