package xpra

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// maxDepth bounds the nesting Decode accepts: a hostile or broken peer must not exhaust the
// stack.
const maxDepth = 64

// ErrBencode is wrapped by every decoding error.
var ErrBencode = errors.New("bencode")

// Encode renders v in xpra's bencode: strings and []byte as "len:bytes", integers (and bools,
// as 0/1) as "iNe", []any as "l...e", map[string]any as "d...e" with sorted keys.
func Encode(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, v, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func encode(b *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrBencode, maxDepth)
	}
	switch x := v.(type) {
	case string:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.WriteString(x)
	case []byte:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte(':')
		b.Write(x)
	case int:
		fmt.Fprintf(b, "i%de", x)
	case int64:
		fmt.Fprintf(b, "i%de", x)
	case bool:
		if x {
			b.WriteString("i1e")
		} else {
			b.WriteString("i0e")
		}
	case []any:
		b.WriteByte('l')
		for _, e := range x {
			if err := encode(b, e, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('e')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteByte('d')
		for _, k := range keys {
			_ = encode(b, k, depth+1)
			if err := encode(b, x[k], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('e')
	default:
		return fmt.Errorf("%w: cannot encode %T", ErrBencode, v)
	}
	return nil
}

// Decode parses one bencoded value from data and returns it with the bytes after it. Strings
// decode as string, integers as int64, lists as []any, dicts as map[string]any.
func Decode(data []byte) (any, []byte, error) {
	return decode(data, 0)
}

func decode(data []byte, depth int) (any, []byte, error) {
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("%w: nested deeper than %d", ErrBencode, maxDepth)
	}
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: unexpected end", ErrBencode)
	}
	switch c := data[0]; {
	case c == 'i':
		end := bytes.IndexByte(data, 'e')
		if end < 0 {
			return nil, nil, fmt.Errorf("%w: unterminated integer", ErrBencode)
		}
		n, err := strconv.ParseInt(string(data[1:end]), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: integer %q", ErrBencode, data[1:end])
		}
		return n, data[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(data, ':')
		if colon < 0 || colon > 10 {
			return nil, nil, fmt.Errorf("%w: bad string length", ErrBencode)
		}
		n, err := strconv.Atoi(string(data[:colon]))
		if err != nil || n < 0 || n > len(data)-colon-1 {
			return nil, nil, fmt.Errorf("%w: string length %q", ErrBencode, data[:colon])
		}
		return string(data[colon+1 : colon+1+n]), data[colon+1+n:], nil
	case c == 'l':
		rest := data[1:]
		out := []any{}
		for {
			if len(rest) == 0 {
				return nil, nil, fmt.Errorf("%w: unterminated list", ErrBencode)
			}
			if rest[0] == 'e' {
				return out, rest[1:], nil
			}
			v, r, err := decode(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, v)
			rest = r
		}
	case c == 'd':
		rest := data[1:]
		out := map[string]any{}
		for {
			if len(rest) == 0 {
				return nil, nil, fmt.Errorf("%w: unterminated dict", ErrBencode)
			}
			if rest[0] == 'e' {
				return out, rest[1:], nil
			}
			k, r, err := decode(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: dict key of type %T", ErrBencode, k)
			}
			v, r, err := decode(r, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out[key] = v
			rest = r
		}
	default:
		return nil, nil, fmt.Errorf("%w: unexpected byte %q", ErrBencode, c)
	}
}
