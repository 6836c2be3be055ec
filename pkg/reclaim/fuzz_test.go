package reclaim

import (
	"encoding/json"
	"strings"
	"testing"
)

// Fuzz targets for every parser the root-run Epilog, Prolog and sweep feed with input a user
// controls. State and supervisor files are fuzzed in pkg/layout (state_fuzz_test.go).

func FuzzParseHelperRequest(f *testing.F) {
	good, _ := json.Marshal(validRequest())
	f.Add(good)
	f.Add([]byte(`{"op":"sweep"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseHelperRequest(data)
		if err != nil {
			return
		}
		if r.UID <= 0 {
			t.Fatalf("accepted uid %d", r.UID)
		}
		if err := r.layout().Validate(); err != nil {
			t.Fatalf("accepted an invalid layout: %v", err)
		}
		for _, p := range []string{r.StateDir, r.RuntimeDir, r.TempDir} {
			if !cleanAbs(p) {
				t.Fatalf("accepted path %q", p)
			}
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseHelperRequest(again); err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
	})
}

func FuzzParseHelperResult(f *testing.F) {
	f.Add([]byte(`{"sessions":1,"problems":["x\ny"],"removed":["a"]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := ParseHelperResult(data)
		if err != nil {
			return
		}
		if rep.Sessions < 0 || rep.Termed < 0 || rep.Killed < 0 || rep.Left < 0 || rep.Dirs < 0 || rep.Files < 0 || rep.Refused < 0 || rep.Bytes < 0 {
			t.Fatalf("negative count accepted: %+v", rep)
		}
		for _, l := range append(append([]string{}, rep.Problems...), rep.Removed...) {
			if !noControl(l) {
				t.Fatalf("control character in %q", l)
			}
		}
	})
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{"a\nb", "\x00", "ok", "\xff\xfe", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Sanitize(s)
		if !noControl(out) || strings.ContainsAny(out, "\u2028\u2029") {
			t.Fatalf("Sanitize(%q) = %q", s, out)
		}
	})
}
