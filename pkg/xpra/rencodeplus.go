package xpra

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// ErrRencodePlus is wrapped by every rencodeplus encoding or decoding error.
var ErrRencodePlus = errors.New("rencodeplus")

// rencodeplus is the packet encoding of xpra 5 and later (the only structured one 6.x still
// decodes; 5.x prefers it). Its format, as xpra's Cython codec writes and reads it, is one type
// byte per value:
//
//	0..43        the integer 0..43
//	70..101      the integer -1..-32 (70 = -1)
//	62 / 63 / 64 / 65  int8 / int16 / int32 / int64 follow, big-endian two's complement
//	61 DIGITS 127      an integer written in ASCII (beyond int64)
//	44           float64 follows, big-endian (66: float32, read only)
//	67 / 68 / 69 true / false / None
//	128..191     a UTF-8 string of 0..63 bytes follows
//	'0'..'9'     "LEN:" then a UTF-8 string, or "LEN/" then raw bytes
//	192..255     a list of 0..63 items follows
//	59 ... 127   a list of any length, ended by 127
//	102..126     a dict of 0..24 key/value pairs follows
//	60 ... 127   a dict of any length, ended by 127
//
// ffl writes only what a control hello holds (strings, integers, bools, lists, string-keyed
// dicts) and reads every type, since the server's hello may carry any of them.
const (
	rpList    = 59
	rpDict    = 60
	rpInt     = 61
	rpInt1    = 62
	rpInt2    = 63
	rpInt4    = 64
	rpInt8    = 65
	rpFloat32 = 66
	rpFloat64 = 44
	rpTrue    = 67
	rpFalse   = 68
	rpNone    = 69
	rpTerm    = 127

	rpPosFixedCount  = 44
	rpNegFixedStart  = 70
	rpNegFixedCount  = 32
	rpDictFixedStart = 102
	rpDictFixedCount = 25
	rpStrFixedStart  = 128
	rpStrFixedCount  = 64
	rpListFixedStart = 192
	rpListFixedCount = 64

	// rpMaxIntDigits bounds an ASCII integer, as xpra's decoder does.
	rpMaxIntDigits = 64
)

// EncodeRencodePlus renders v in rencodeplus: string, []byte, bool, nil, the integer types,
// float64, []any, []string and map[string]any (keys in sorted order, so the bytes are stable).
func EncodeRencodePlus(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := rpEncode(&b, v, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func rpEncode(b *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrRencodePlus, maxDepth)
	}
	switch x := v.(type) {
	case nil:
		b.WriteByte(rpNone)
	case bool:
		if x {
			b.WriteByte(rpTrue)
		} else {
			b.WriteByte(rpFalse)
		}
	case int:
		rpInteger(b, int64(x))
	case int32:
		rpInteger(b, int64(x))
	case int64:
		rpInteger(b, x)
	case uint32:
		rpInteger(b, int64(x))
	case float64:
		b.WriteByte(rpFloat64)
		_ = binary.Write(b, binary.BigEndian, math.Float64bits(x))
	case string:
		if !utf8.ValidString(x) {
			return fmt.Errorf("%w: string %q is not UTF-8 (use []byte)", ErrRencodePlus, x)
		}
		if len(x) < rpStrFixedCount {
			b.WriteByte(byte(rpStrFixedStart + len(x)))
		} else {
			b.WriteString(strconv.Itoa(len(x)))
			b.WriteByte(':')
		}
		b.WriteString(x)
	case []byte:
		b.WriteString(strconv.Itoa(len(x)))
		b.WriteByte('/')
		b.Write(x)
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return rpEncode(b, l, depth)
	case []any:
		if len(x) < rpListFixedCount {
			b.WriteByte(byte(rpListFixedStart + len(x)))
		} else {
			b.WriteByte(rpList)
		}
		for _, e := range x {
			if err := rpEncode(b, e, depth+1); err != nil {
				return err
			}
		}
		if len(x) >= rpListFixedCount {
			b.WriteByte(rpTerm)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(x) < rpDictFixedCount {
			b.WriteByte(byte(rpDictFixedStart + len(x)))
		} else {
			b.WriteByte(rpDict)
		}
		for _, k := range keys {
			if err := rpEncode(b, k, depth+1); err != nil {
				return err
			}
			if err := rpEncode(b, x[k], depth+1); err != nil {
				return err
			}
		}
		if len(x) >= rpDictFixedCount {
			b.WriteByte(rpTerm)
		}
	default:
		return fmt.Errorf("%w: cannot encode %T", ErrRencodePlus, v)
	}
	return nil
}

// rpInteger writes n in the shortest form, as xpra does.
func rpInteger(b *bytes.Buffer, n int64) {
	switch {
	case n >= 0 && n < rpPosFixedCount:
		b.WriteByte(byte(n))
	case n < 0 && n >= -rpNegFixedCount:
		b.WriteByte(byte(rpNegFixedStart - 1 - n))
	case n >= math.MinInt8 && n <= math.MaxInt8:
		b.WriteByte(rpInt1)
		b.WriteByte(byte(int8(n)))
	case n >= math.MinInt16 && n <= math.MaxInt16:
		b.WriteByte(rpInt2)
		_ = binary.Write(b, binary.BigEndian, int16(n))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		b.WriteByte(rpInt4)
		_ = binary.Write(b, binary.BigEndian, int32(n))
	default:
		b.WriteByte(rpInt8)
		_ = binary.Write(b, binary.BigEndian, n)
	}
}

// DecodeRencodePlus reads one value from data and returns it with the bytes after it.
// Integers come back as int64 (an ASCII integer beyond int64 is an error: no reply ffl reads has
// one), floats as float64, strings as string, "LEN/" bytes as []byte, lists as []any, dicts as
// map[string]any (a non-string key is rendered with fmt, as the bencode reader does not meet
// them either). Nesting is bounded (maxDepth) and every length is checked against the data, so
// a hostile peer gets an error, never a panic or a huge allocation.
func DecodeRencodePlus(data []byte) (any, []byte, error) {
	return rpDecode(data, 0)
}

func rpErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRencodePlus}, a...)...)
}

func rpDecode(data []byte, depth int) (any, []byte, error) {
	if depth > maxDepth {
		return nil, nil, rpErr("nested deeper than %d", maxDepth)
	}
	if len(data) == 0 {
		return nil, nil, rpErr("unexpected end of data")
	}
	t := data[0]
	switch {
	case t < rpPosFixedCount:
		return int64(t), data[1:], nil
	case t >= rpNegFixedStart && t < rpNegFixedStart+rpNegFixedCount:
		return -int64(t-rpNegFixedStart) - 1, data[1:], nil
	case t == rpInt1, t == rpInt2, t == rpInt4, t == rpInt8, t == rpFloat32, t == rpFloat64:
		return rpFixedWidth(data)
	case t == rpInt:
		end := bytes.IndexByte(data[1:], rpTerm)
		if end < 0 || end > rpMaxIntDigits {
			return nil, nil, rpErr("unterminated or too long integer")
		}
		n, err := strconv.ParseInt(string(data[1:1+end]), 10, 64)
		if err != nil {
			return nil, nil, rpErr("integer %q: %v", data[1:1+end], err)
		}
		return n, data[2+end:], nil
	case t == rpTrue:
		return true, data[1:], nil
	case t == rpFalse:
		return false, data[1:], nil
	case t == rpNone:
		return nil, data[1:], nil
	case t >= rpStrFixedStart && t < rpStrFixedStart+rpStrFixedCount:
		v, rest, err := rpFixed(data, int(t-rpStrFixedStart))
		if err != nil {
			return nil, nil, err
		}
		return string(v), rest, nil
	case t >= '0' && t <= '9':
		sep := bytes.IndexAny(data, ":/")
		if sep < 0 || sep > 10 {
			return nil, nil, rpErr("string length without ':' or '/'")
		}
		n, err := strconv.Atoi(string(data[:sep]))
		if err != nil || n < 0 || n > len(data)-sep-1 {
			return nil, nil, rpErr("string length %q beyond the data", data[:sep])
		}
		v, rest := data[sep+1:sep+1+n], data[sep+1+n:]
		if data[sep] == '/' {
			return append([]byte(nil), v...), rest, nil
		}
		return string(v), rest, nil
	case t >= rpListFixedStart:
		return rpItems(data[1:], int(t-rpListFixedStart), depth)
	case t == rpList:
		return rpItems(data[1:], -1, depth)
	case t >= rpDictFixedStart && t < rpDictFixedStart+rpDictFixedCount:
		return rpPairs(data[1:], int(t-rpDictFixedStart), depth)
	case t == rpDict:
		return rpPairs(data[1:], -1, depth)
	}
	return nil, nil, rpErr("unknown type byte %d", t)
}

// rpFixedWidth reads a big-endian number of the width its type byte (data[0]) says: a signed
// integer of 1, 2, 4 or 8 bytes, or a float of 4 or 8.
// rpFixed splits the n bytes after data's type byte from the rest.
func rpFixed(data []byte, n int) ([]byte, []byte, error) {
	if len(data) < 1+n {
		return nil, nil, rpErr("truncated value (type %d needs %d bytes)", data[0], n)
	}
	return data[1 : 1+n], data[1+n:], nil
}

func rpFixedWidth(data []byte) (any, []byte, error) {
	t := data[0]
	n := 8
	switch t {
	case rpInt1:
		n = 1
	case rpInt2:
		n = 2
	case rpInt4, rpFloat32:
		n = 4
	}
	v, rest, err := rpFixed(data, n)
	if err != nil {
		return nil, nil, err
	}
	switch t {
	case rpInt1:
		return int64(int8(v[0])), rest, nil
	case rpInt2:
		return int64(int16(binary.BigEndian.Uint16(v))), rest, nil
	case rpInt4:
		return int64(int32(binary.BigEndian.Uint32(v))), rest, nil
	case rpInt8:
		return int64(binary.BigEndian.Uint64(v)), rest, nil
	case rpFloat32:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v))), rest, nil
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v)), rest, nil
}

// rpItems reads n list items, or items up to the terminator when n < 0.
func rpItems(data []byte, n int, depth int) (any, []byte, error) {
	l := []any{}
	for i := 0; n < 0 || i < n; i++ {
		if n < 0 {
			if len(data) == 0 {
				return nil, nil, rpErr("unterminated list")
			}
			if data[0] == rpTerm {
				return l, data[1:], nil
			}
		}
		v, rest, err := rpDecode(data, depth+1)
		if err != nil {
			return nil, nil, err
		}
		l, data = append(l, v), rest
	}
	return l, data, nil
}

// rpPairs reads n dict pairs, or pairs up to the terminator when n < 0.
func rpPairs(data []byte, n int, depth int) (any, []byte, error) {
	m := map[string]any{}
	for i := 0; n < 0 || i < n; i++ {
		if n < 0 {
			if len(data) == 0 {
				return nil, nil, rpErr("unterminated dict")
			}
			if data[0] == rpTerm {
				return m, data[1:], nil
			}
		}
		k, rest, err := rpDecode(data, depth+1)
		if err != nil {
			return nil, nil, err
		}
		v, rest, err := rpDecode(rest, depth+1)
		if err != nil {
			return nil, nil, err
		}
		m[asString(k)], data = v, rest
	}
	return m, data, nil
}
