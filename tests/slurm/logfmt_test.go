package slurm

import (
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logTimeLayout is the timestamp format of ffl's text logs (launcher, Prolog, Epilog).
const logTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// logLine is one logrus text line: time="..." level=info msg="..." key=value ...
type logLine struct {
	raw    string
	fields map[string]string
}

// time returns the line's timestamp (zero when it has none).
func (l logLine) time() time.Time {
	ts, _ := time.Parse(logTimeLayout, l.fields["time"])
	return ts
}

// summary renders the Epilog's counters compactly for t.Logf and tables.
func (l logLine) summary() string {
	var b strings.Builder
	for _, k := range []string{"fast", "sessions", "termed", "killed", "left", "refused", "dirs", "files", "errors", "duration_ms"} {
		if v, ok := l.fields[k]; ok {
			b.WriteString(k + "=" + v + " ")
		}
	}
	return strings.TrimSpace(b.String())
}

// parseLogLines parses every line that looks like logrus text output (has msg=) and skips the
// rest (JSON connection lines, slurmstepd's messages).
func parseLogLines(text string) []logLine {
	var out []logLine
	for _, raw := range strings.Split(text, "\n") {
		f := parseLogfmt(raw)
		if _, ok := f["msg"]; ok {
			out = append(out, logLine{raw: raw, fields: f})
		}
	}
	return out
}

// findLog returns the first line whose msg starts with prefix.
func findLog(lines []logLine, prefix string) (logLine, bool) {
	for _, l := range lines {
		if strings.HasPrefix(l.fields["msg"], prefix) {
			return l, true
		}
	}
	return logLine{}, false
}

// parseLogfmt splits one line of key=value pairs; a value is either bare (up to the next space)
// or a Go-quoted string (how logrus' text formatter quotes). It stops at the first thing that
// is not a pair, so a line that is not logfmt yields what it could read (often nothing).
func parseLogfmt(line string) map[string]string {
	m := map[string]string{}
	i := 0
	for {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		if i >= len(line) {
			return m
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq <= 0 {
			return m
		}
		key := line[i : i+eq]
		if strings.ContainsAny(key, " \"{}") {
			return m
		}
		i += eq + 1
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				return m
			}
			v, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				return m
			}
			m[key] = v
			i = j + 1
			continue
		}
		j := strings.IndexByte(line[i:], ' ')
		if j < 0 {
			j = len(line) - i
		}
		m[key] = line[i : i+j]
		i += j
	}
}

// formatLogfmt is the inverse of parseLogfmt for the fuzz target: keys sorted, values quoted
// when they are empty or hold anything but safe characters (as logrus does).
func formatLogfmt(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := m[k]
		if v == "" || strings.IndexFunc(v, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._/@^+:", r))
		}) >= 0 {
			v = strconv.Quote(v)
		}
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

func TestParseLogfmt(t *testing.T) {
	tests := []struct {
		name string
		line string
		want map[string]string
	}{
		{"epilog summary",
			`time="2026-11-26T19:12:29.841Z" level=info msg="epilog done" bytes=0 dirs=1 errors=0 fast=true job=5000 user=ffluser1`,
			map[string]string{"time": "2026-11-26T19:12:29.841Z", "level": "info", "msg": "epilog done", "bytes": "0", "dirs": "1", "errors": "0", "fast": "true", "job": "5000", "user": "ffluser1"}},
		{"escaped quote", `msg="a \"b\" c" x=1`, map[string]string{"msg": `a "b" c`, "x": "1"}},
		{"json line is not logfmt", `{"port":31000,"node":"vm"}`, map[string]string{}},
		{"slurmstepd line", `slurmstepd-vm: error: *** JOB 5000 ON vm CANCELLED AT 2026-11-26T19:12:29 ***`, map[string]string{}},
		{"unterminated quote keeps what came before", `a=1 msg="open`, map[string]string{"a": "1"}},
		{"empty value", `a= b=2`, map[string]string{"a": "", "b": "2"}},
		{"empty line", ``, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseLogfmt(tc.line); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseLogfmt(%q) = %v, want %v", tc.line, got, tc.want)
			}
		})
	}
	l := parseLogLines("{\"port\":1}\n" + tests[0].line + "\nnoise\n")
	if len(l) != 1 || l[0].fields["job"] != "5000" || l[0].time().IsZero() {
		t.Errorf("parseLogLines: %+v", l)
	}
	if s := l[0].summary(); s != "fast=true dirs=1 errors=0" {
		t.Errorf("summary = %q", s)
	}
}

// FuzzParseLogfmt: any input parses without panicking, and a formatted map parses back to itself.
func FuzzParseLogfmt(f *testing.F) {
	f.Add(`time="2026-11-26T19:12:29.841Z" level=info msg="epilog done" job=5000`, "msg", "a \"b\"\n")
	f.Add(`a=1 b="x y"`, "k", "")
	f.Add(`="`, "x", `\`)
	f.Fuzz(func(t *testing.T, line, key, value string) {
		_ = parseLogfmt(line)
		if key == "" || strings.ContainsAny(key, " \"{}=") || !isPrintableASCII(key) {
			return
		}
		m := map[string]string{key: value, "msg": "x y"}
		if key == "msg" {
			m = map[string]string{key: value}
		}
		if got := parseLogfmt(formatLogfmt(m)); !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %q: got %q", m, got)
		}
	})
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func TestNamesJob(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"[2026-12-06T17:22:45.082] [368187.extern] done with job", true},
		{"[2026-12-06T17:22:41.909] Launching batch job 368187 for UID 1004", true},
		{"error: [job 368187] epilog failed status=0:9", true},
		{"Launching batch job 3681870 for UID 1004", false},
		{"Launching batch job 1368187 for UID 1004", false},
		{"job 1368187 then job 368187", true},
		{"nothing here", false},
	} {
		if got := namesJob(tc.line, "368187"); got != tc.want {
			t.Errorf("namesJob(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestJobLines(t *testing.T) {
	log := strings.Join([]string{
		"[01:16:40.050] [368187.extern] debug2: prep/script: _run_subpath_command: prolog success rc:0",
		"[01:16:41.000] [368188.extern] debug2: prep/script: _run_subpath_command: epilog success rc:0 output:other job",
		"[01:16:44.229] [368187.extern] Sent signal 18 to StepId=368187.extern",
		"[01:16:44.432] [368187.extern] debug2: prep/script: _run_subpath_command: epilog success rc:0 output:x",
		"[01:16:44.433] [368187.extern] debug:  JobId=368187: sent epilog complete msg: rc = 0",
		"[01:16:44.440] [368187.extern] debug:  Message thread exited",
		"[01:16:44.442] [368187.extern] done with step",
	}, "\n")
	got := jobLines(log, "368187", 2)
	want := []string{
		"[01:16:44.432] [368187.extern] debug2: prep/script: _run_subpath_command: epilog success rc:0 output:x",
		"[01:16:44.433] [368187.extern] debug:  JobId=368187: sent epilog complete msg: rc = 0",
		"[01:16:44.440] [368187.extern] debug:  Message thread exited",
		"[01:16:44.442] [368187.extern] done with step",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("jobLines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEpilogAsUser(t *testing.T) {
	log := strings.Join([]string{
		`[00:32:42.160] [95593.extern] debug2: prep/script: _run_subpath_command: epilog success rc:0 output:time="00:32:42.150Z" level=warning msg=logging error="log file: open /x/epilog.log: permission denied"`,
		`time="00:32:42.150Z" level=error msg="the Epilog not running as root but as uid 1000, gid 1000: nothing done. ..." job=95593 uid=1000 user=ffluser1`,
		`time="00:32:42.150Z" level=warning msg="epilog done, with problems (see the lines above)" job=95593`,
		`time="00:33:42.150Z" level=error msg="the Epilog not running as root but as uid 1001, gid 1001: nothing done. ..." job=95594 uid=1001 user=ffluser2`,
	}, "\n")
	if line, ok := epilogAsUser(log, "95593"); !ok || !strings.Contains(line, "job=95593") {
		t.Errorf("epilogAsUser(95593) = %q, %v", line, ok)
	}
	if line, ok := epilogAsUser(log, "9559"); ok {
		t.Errorf("epilogAsUser(9559) found %q", line)
	}
	if line, ok := epilogAsUser(log, "95595"); ok {
		t.Errorf("epilogAsUser(95595) found %q", line)
	}
}
