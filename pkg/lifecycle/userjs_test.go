package lifecycle

import (
	"regexp"
	"strings"
	"testing"
)

// userPrefLine is the only statement a user.js may hold: Firefox only logs a line its pref
// parser cannot read, so a typo in the template would lose a setting without anyone noticing.
var userPrefLine = regexp.MustCompile(`^user_pref\(("[a-zA-Z0-9_.\-]+"), (true|false|-?[0-9]+|"(?:[^"\\]|\\.)*")\);$`)

// TestUserJSWellFormed: every line ffl writes into user.js is a comment or one user_pref with a
// literal value, no pref is set twice (the later would silently win), and the values that
// depend on the session's settings are the ones asked for.
func TestUserJSWellFormed(t *testing.T) {
	cases := []struct {
		name             string
		contentProcesses int
		downloadDir      string
		want             []string
		absent           []string
	}{
		{"defaults", 1, "", []string{`user_pref("dom.ipc.processCount", 1);`, `user_pref("javascript.options.mem.gc_allocation_threshold_mb", 8);`}, []string{"browser.download.dir"}},
		{"zero is one", 0, "", []string{`user_pref("dom.ipc.processCount", 1);`}, nil},
		{"downloads", 4, `/home/u/Down "q"`, []string{`user_pref("dom.ipc.processCount", 4);`, `user_pref("browser.download.dir", "/home/u/Down \"q\"");`}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			js := UserJS(c.contentProcesses, c.downloadDir, "/r/s/cache")
			seen := map[string]bool{}
			for i, line := range strings.Split(strings.TrimSuffix(js, "\n"), "\n") {
				if strings.HasPrefix(line, "// ") {
					continue
				}
				m := userPrefLine.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("line %d is not one user_pref with a literal value: %q", i+1, line)
				}
				if seen[m[1]] {
					t.Errorf("pref %s is set twice", m[1])
				}
				seen[m[1]] = true
			}
			for _, w := range c.want {
				if !strings.Contains(js, w+"\n") {
					t.Errorf("user.js lacks %s", w)
				}
			}
			for _, a := range c.absent {
				if strings.Contains(js, a) {
					t.Errorf("user.js sets %s, which it must leave alone here", a)
				}
			}
		})
	}
}
