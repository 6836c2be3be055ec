package xpra

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestRencodePlusBytes checks the encoder against byte strings worked out by hand from the
// format (see rencodeplus.go), and the decoder on the same bytes.
func TestRencodePlusBytes(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name string
		v    any
		enc  string
	}{
		{"zero", int64(0), "\x00"},
		{"fixed positive max", int64(43), "\x2b"},
		{"int8 above fixed", int64(44), "\x3e\x2c"},
		{"minus one", int64(-1), "\x46"},
		{"fixed negative min", int64(-32), "\x65"},
		{"int8 below fixed", int64(-33), "\x3e\xdf"},
		{"int16", int64(1000), "\x3f\x03\xe8"},
		{"int16 negative", int64(-1000), "\x3f\xfc\x18"},
		{"int32", int64(70000), "\x40\x00\x01\x11\x70"},
		{"int64", int64(1) << 40, "\x41\x00\x00\x01\x00\x00\x00\x00\x00"},
		{"true", true, "\x43"},
		{"false", false, "\x44"},
		{"none", nil, "\x45"},
		{"float64", 1.5, "\x2c\x3f\xf8\x00\x00\x00\x00\x00\x00"},
		{"empty string", "", "\x80"},
		{"short string", "hello", "\x85hello"},
		{"64-byte string", long, "64:" + long},
		{"bytes", []byte("ab"), "2/ab"},
		{"empty list", []any{}, "\xc0"},
		{"list", []any{"a", int64(1)}, "\xc2\x81a\x01"},
		{"dict sorted", map[string]any{"b": int64(2), "a": true}, "\x68\x81a\x43\x81b\x02"},
		{"hello", []any{"hello", map[string]any{"command_request": []any{"show-all-windows"}}},
			"\xc2\x85hello\x67\x8fcommand_request\xc1\x90show-all-windows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeRencodePlus(tc.v)
			if err != nil || string(got) != tc.enc {
				t.Fatalf("encode %#v = %q, %v; want %q", tc.v, got, err, tc.enc)
			}
			v, rest, err := DecodeRencodePlus([]byte(tc.enc + "tail"))
			if err != nil || string(rest) != "tail" || !reflect.DeepEqual(v, tc.v) {
				t.Fatalf("decode %q = %#v, rest %q, %v; want %#v", tc.enc, v, rest, err, tc.v)
			}
		})
	}
}

// TestRencodePlusDecodeOnly: forms xpra may send that ffl never writes.
func TestRencodePlusDecodeOnly(t *testing.T) {
	many := make([]any, 64)
	enc := []byte{rpList}
	for i := range many {
		many[i] = int64(i % 40)
		enc = append(enc, byte(i%40))
	}
	enc = append(enc, rpTerm)
	for _, tc := range []struct {
		name string
		in   string
		want any
	}{
		{"ascii integer", "\x3d12345\x7f", int64(12345)},
		{"float32", "\x42\x3f\xc0\x00\x00", 1.5},
		{"long string with colon", "3:abc", "abc"},
		{"terminated dict", "\x3c\x81k\x01\x7f", map[string]any{"k": int64(1)}},
		{"terminated list", string(enc), many},
		{"tuple of tuples", "\xc2\xc1\x01\xc0", []any{[]any{int64(1)}, []any{}}},
	} {
		v, rest, err := DecodeRencodePlus([]byte(tc.in))
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(v, tc.want) {
			t.Errorf("%s: decode %q = %#v, %q, %v; want %#v", tc.name, tc.in, v, rest, err, tc.want)
		}
	}
	// The encoder writes 64+ items with the terminated forms.
	if got, _ := EncodeRencodePlus(many); !bytes.Equal(got, enc) {
		t.Errorf("encode 64 items = %q, want %q", got, enc)
	}
}

func TestRencodePlusBad(t *testing.T) {
	deep := strings.Repeat("\xc1", maxDepth+2) + "\x00"
	for _, in := range []string{
		"", "\x3e", "\x3f\x01", "\x40\x00", "\x41", "\x2c\x00", "\x85abc", "5:ab", "9999999999999:x", "12",
		"\xc2\x01", "\x3b\x01", "\x3c\x81k", "\x68\x81k", "\x3d123", "\x3d12a\x7f", "\x7f", "\x2f", deep,
	} {
		if v, _, err := DecodeRencodePlus([]byte(in)); err == nil {
			t.Errorf("decode %q = %#v, want an error", in, v)
		}
	}
	for _, v := range []any{struct{}{}, "\xff", math.NaN} {
		if _, err := EncodeRencodePlus(v); err == nil {
			t.Errorf("encode %#v succeeded", v)
		}
	}
}

// FuzzDecodeRencodePlus: any input decodes or fails cleanly, and what decodes re-encodes to a
// value that decodes the same.
func FuzzDecodeRencodePlus(f *testing.F) {
	for _, s := range []string{"\x00", "\x85hello", "\xc2\x81a\x01", "\x68\x81a\x43\x81b\x02", "3:abc", "2/ab",
		"\x3d12345\x7f", "\x3c\x81k\x01\x7f", "\x3b\x01\x7f", "\x2c\x3f\xf8\x00\x00\x00\x00\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _, err := DecodeRencodePlus(data)
		if err != nil {
			return
		}
		enc, err := EncodeRencodePlus(v)
		if err != nil {
			// Only a decoded string that is not UTF-8 may refuse to encode.
			if !strings.Contains(err.Error(), "not UTF-8") {
				t.Fatalf("decoded %#v does not encode: %v", v, err)
			}
			return
		}
		v2, rest, err := DecodeRencodePlus(enc)
		if err != nil || len(rest) != 0 || !reflect.DeepEqual(normNaN(v), normNaN(v2)) {
			t.Fatalf("round trip of %q: %#v -> %q -> %#v, %v", data, v, enc, v2, err)
		}
	})
}

// normNaN replaces NaN (never equal to itself) so round trips compare.
func normNaN(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "NaN"
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normNaN(e)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normNaN(e)
		}
		return out
	}
	return v
}
