// Package oneline is ffl's one format for an error on one line: Line for a message a person reads
// whole, Append and Err to collect several errors (go-multierror, always formatted on one line),
// Sanitize for untrusted text in a log line. Every error ffl shows ends up in a log line or a
// one-line message (a newline in a log line would split it, and could let a file name forge a
// line).
package oneline

import (
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// Append is multierror.Append with the one-line format (Format) set on the result.
func Append(err error, errs ...error) *multierror.Error {
	m := multierror.Append(err, errs...)
	m.ErrorFormat = Format
	return m
}

// Format renders errors as "e" for one and "N problems: e1; e2; ..." for several; newlines
// inside an error (errors.Join's separator, a wrapped multi-line message) become "; ".
func Format(es []error) string {
	if len(es) == 1 {
		return flat(es[0].Error())
	}
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = flat(e.Error())
	}
	return strconv.Itoa(len(es)) + " problems: " + strings.Join(parts, "; ")
}

// Err returns m as an error, or nil when it holds none (the typed-nil trap of *multierror.Error).
func Err(m *multierror.Error) error {
	if m == nil || len(m.Errors) == 0 {
		return nil
	}
	m.ErrorFormat = Format
	return m
}

// Line is s on one line, for a message read whole (an error on stderr, a failed session's page,
// a table cell): every control character (line breaks, tabs, NUL) becomes a space and each run
// of spaces one space, with none at either end.
func Line(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func flat(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

// Sanitize makes s safe for a log line: control characters (a newline in a user's file name
// could forge a log line), invalid UTF-8 and the Unicode line separators are escaped the way
// strconv.Quote would, and the length is capped at max bytes (then "...").
func Sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		if r == '\ufffd' { // invalid UTF-8 (or a real U+FFFD): say so visibly
			b.WriteString(`\ufffd`)
			continue
		}
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || (r >= 0x80 && r < 0xa0) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
