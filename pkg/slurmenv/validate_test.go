package slurmenv

import (
	"strings"
	"testing"
)

func TestValidJobID(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string // "" = valid
	}{
		{"1", ""},
		{"123", ""},
		{"4294967295", ""},
		{"18446744073709551615", ""}, // max uint64, 20 digits
		{"", "empty"},
		{"0", "start at 1"},
		{"0123", "leading zeros"},
		{"00", "leading zeros"},
		{"-1", "not a decimal"},
		{"+1", "not a decimal"},
		{"12a", "not a decimal"},
		{" 12", "not a decimal"},
		{"12\n", "not a decimal"},
		{"1.5", "not a decimal"},
		{"1e3", "not a decimal"},
		{"123_4", "not a decimal"},
		{"../1", "not a decimal"},
		{"local-12", "not a decimal"},
		{"１２", "not a decimal"}, // full-width digits
		{"18446744073709551616", "too large"},
		{"99999999999999999999", "too large"},
		{"123456789012345678901", "longer than 20"},
	}
	for _, tt := range tests {
		checkValidator(t, "ValidJobID", ValidJobID, tt.in, tt.wantErr)
	}
}

func TestValidJobKey(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"123", ""},
		{"local-4711", ""},
		{"local-1", ""},
		{"local-0", "positive decimal"},
		{"local-", "positive decimal"},
		{"local-04711", "positive decimal"},
		{"local-abc", "positive decimal"},
		{"local-1/..", "positive decimal"},
		{"local-2147483648", "positive decimal"},
		{"LOCAL-1", "not a decimal"},
		{"0", "start at 1"},
		{"", "empty"},
	}
	for _, tt := range tests {
		checkValidator(t, "ValidJobKey", ValidJobKey, tt.in, tt.wantErr)
	}
}

func TestValidUserName(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"alice", ""},
		{"Alice.Smith", ""},
		{"a_b-c", ""},
		{"alice@EXAMPLE.ORG", ""},
		{"u1000", ""},
		{"a.b", ""},
		{strings.Repeat("a", 64), ""},
		{"", "empty"},
		{strings.Repeat("a", 65), "longer than 64"},
		{"-alice", "starts with '-'"},
		{".", `is "."`},
		{"..", `is "."`},
		{"a..b", `contains ".."`},
		{"a/b", `contains "/"`},
		{"/", `contains "/"`},
		{"a\x00b", `contains "\x00"`},
		{"a\nb", `contains "\n"`},
		{"a b", `contains " "`},
		{"machine$", `contains "$"`},
		{"DOMAIN\\alice", `contains "\\"`},
		{"ålice", "may contain only"},
		{"a:b", `contains ":"`},
		{"a*", `contains "*"`},
	}
	for _, tt := range tests {
		checkValidator(t, "ValidUserName", ValidUserName, tt.in, tt.wantErr)
	}
}

func TestValidNodeName(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string
	}{
		{"n1", ""},
		{"node-001", ""},
		{"gpu_a100.rack3", ""},
		{strings.Repeat("n", 64), ""},
		{"", "empty"},
		{strings.Repeat("n", 65), "longer than 64"},
		{"-n1", "starts with '-'"},
		{".", `is "."`},
		{"..", `is "."`},
		{"n..1", `contains ".."`},
		{"n/1", `contains "/"`},
		{"n@1", `contains "@"`},
		{"n 1", `contains " "`},
		{"n1\n", `contains "\n"`},
		{"n\x001", `contains "\x00"`},
	}
	for _, tt := range tests {
		checkValidator(t, "ValidNodeName", ValidNodeName, tt.in, tt.wantErr)
	}
}

func TestValidDecimal(t *testing.T) {
	for _, in := range []string{"0", "1", "4294967295"} {
		checkValidator(t, "validDecimal", validDecimal, in, "")
	}
	for _, in := range []string{"", "01", "-1", "x", "1 ", "123456789012345678901", "99999999999999999999"} {
		if validDecimal(in) == nil {
			t.Errorf("validDecimal(%q) = nil, want an error", in)
		}
	}
}

func TestValidStepID(t *testing.T) {
	for _, in := range []string{"0", "7", "4294967291", "-5", "-4", "-2"} {
		checkValidator(t, "validStepID", validStepID, in, "")
	}
	for _, in := range []string{"", "-", "-0", "--5", "-05", "-256", "-x", "01", "5-", "-5\n"} {
		if validStepID(in) == nil {
			t.Errorf("validStepID(%q) = nil, want an error", in)
		}
	}
}

func checkValidator(t *testing.T, name string, f func(string) error, in, wantErr string) {
	t.Helper()
	err := f(in)
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("%s(%q) = %v, want nil", name, in, err)
	case wantErr != "" && err == nil:
		t.Errorf("%s(%q) = nil, want an error containing %q", name, in, wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("%s(%q) = %q, want it to contain %q", name, in, err, wantErr)
	}
}
