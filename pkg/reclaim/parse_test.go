package reclaim

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\nb", `a\nb`},
		{"a\rb\x00c", `a\rb\x00c`},
		{"tab\there", `tab\there`},
		{"bad\xffutf8", `bad\ufffdutf8`},
		{"ünïcödé", "ünïcödé"},
	} {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Sanitize(strings.Repeat("x", 10000)); len(got) > 2100 {
		t.Errorf("Sanitize did not cap: %d bytes", len(got))
	}
}

func TestReportAddAndErr(t *testing.T) {
	var r Report
	if r.Err() != nil {
		t.Fatal("empty report has an error")
	}
	for i := 0; i < maxProblems+5; i++ {
		r.Add(Report{Termed: 1, Bytes: 10, Problems: []string{"p"}, Removed: []string{"r"}})
	}
	if r.Termed != maxProblems+5 || r.Bytes != 10*int64(maxProblems+5) {
		t.Errorf("counts not summed: %+v", r)
	}
	if len(r.Problems) != maxProblems || r.MoreProblems != 5 {
		t.Errorf("problems not capped: %d + %d", len(r.Problems), r.MoreProblems)
	}
	err := r.Err()
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "5 more problems") {
		t.Errorf("Err() = %v", err)
	}
}

func validRequest() HelperRequest {
	return HelperRequest{
		Op: OpHome, UID: 1000, StateDir: "/home/a/.firefox-launcher", RuntimeDir: "/run/ffl", TempDir: "/tmp",
		Node: "n1", Job: "12", BootID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
	}
}

func TestParseHelperRequest(t *testing.T) {
	good, _ := json.Marshal(validRequest())
	if _, err := ParseHelperRequest(good); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
	for name, mutate := range map[string]func(r *HelperRequest){
		"root":          func(r *HelperRequest) { r.UID = 0 },
		"negative uid":  func(r *HelperRequest) { r.UID = -1 },
		"bad op":        func(r *HelperRequest) { r.Op = "rm" },
		"relative dir":  func(r *HelperRequest) { r.StateDir = "home" },
		"unclean dir":   func(r *HelperRequest) { r.TempDir = "/tmp/../etc" },
		"bad node":      func(r *HelperRequest) { r.Node = "../x" },
		"bad job":       func(r *HelperRequest) { r.Job = "1/2" },
		"bad boot":      func(r *HelperRequest) { r.BootID = "x; rm" },
		"neg duration":  func(r *HelperRequest) { r.GraceMS = -1 },
		"relative home": func(r *HelperRequest) { r.Home = "home" },
	} {
		r := validRequest()
		mutate(&r)
		data, _ := json.Marshal(r)
		if _, err := ParseHelperRequest(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, data := range map[string]string{
		"unknown field": strings.Replace(string(good), `"op"`, `"evil":1,"op"`, 1),
		"trailing":      string(good) + "{}",
		"huge":          strings.Repeat(" ", MaxHelperRequest+1) + string(good),
		"not json":      "rm -rf /",
	} {
		if _, err := ParseHelperRequest([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseHelperResult(t *testing.T) {
	r, err := ParseHelperResult([]byte(`{"sessions":1,"bytes":5,"problems":["a\nforged line"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions != 1 || r.Bytes != 5 || r.Problems[0] != `a\nforged line` {
		t.Errorf("got %+v", r)
	}
	for name, data := range map[string]string{
		"negative":  `{"killed":-1}`,
		"neg bytes": `{"bytes":-1}`,
		"unknown":   `{"x":1}`,
		"trailing":  `{} {}`,
		"too big":   `{"removed":["` + strings.Repeat("x", MaxHelperOutput) + `"]}`,
		"too many":  `{"problems":[` + strings.TrimSuffix(strings.Repeat(`"p",`, maxProblems+1), ",") + `]}`,
		"empty":     ``,
	} {
		if _, err := ParseHelperResult([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// noControl reports whether s is free of control characters (what Sanitize guarantees).
func noControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
