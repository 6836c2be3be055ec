package oneline

import (
	"errors"
	"fmt"
	"testing"
)

func TestFormat(t *testing.T) {
	base := errors.New("base")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"none", Err(Append(nil)), "<nil>"},
		{"one", Err(Append(nil, base)), "base"},
		{"two", Err(Append(nil, base, errors.New("b"))), "2 problems: base; b"},
		{"joined inside", Err(Append(nil, errors.Join(errors.New("x"), errors.New("y")))), "x; y"},
		{"nested", Err(Append(nil, Append(nil, base, errors.New("c")), errors.New("d"))), "3 problems: base; c; d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(tc.err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if !errors.Is(Err(Append(nil, errors.New("a"), fmt.Errorf("w: %w", base))), base) {
		t.Error("errors.Is does not see a wrapped error")
	}
}

func TestLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb\tc", "a b c"},
		{"crlf\r\nnext", "crlf next"},
		{"nul\x00byte", "nul byte"},
		{"Traceback:\n  File x\nError: y\n", "Traceback: File x Error: y"},
		{"  padded  ", "padded"},
		{"", ""},
	} {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
