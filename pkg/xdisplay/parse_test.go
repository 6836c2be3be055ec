package xdisplay

import (
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{":0", 0, true},
		{":100", 100, true},
		{":65535", 65535, true},
		{":65536", 0, false},
		{"100", 0, false},
		{":", 0, false},
		{":01", 0, false},
		{":-1", 0, false},
		{":+1", 0, false},
		{":1.0", 0, false},
		{":1/../../etc", 0, false},
		{": 1", 0, false},
		{"", 0, false},
		{":999999", 0, false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("Parse(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseLock(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"      4242\n", 4242, true},
		{"1\n", 1, true},
		{"0\n", 0, false},
		{"-5\n", 0, false},
		{"", 0, false},
		{"abc", 0, false},
		{"12345678901", 0, false},
		{"0012", 0, false},
		{"12 34", 0, false},
	} {
		got, err := ParseLock([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseLock(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{":0", ":100", ":65535", ":65536", "1", ":01", ":-1", ":1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		if n < 0 || n > 65535 || ":"+strconv.Itoa(n) != s {
			t.Fatalf("Parse(%q) = %d", s, n)
		}
	})
}

func FuzzParseLock(f *testing.F) {
	for _, s := range []string{"      4242\n", "1", "", "0", "-1", "99999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pid, err := ParseLock(data)
		if err != nil {
			return
		}
		if pid <= 0 || strconv.Itoa(pid) != strings.TrimSpace(string(data)) {
			t.Fatalf("ParseLock(%q) = %d", data, pid)
		}
	})
}
