package proc

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// statTail is fields 23.. of a real Linux 6.x stat line (vsize onwards), as the kernel prints them.
const statTail = "1256992768 603 18446744073709551615 4194304 5064049 140732323441904 0 0 0 0 2 2143420157 0 0 0 17 0 0 0 0 0 0 6180864 6233152 684552192 140732323449440 140732323449526 140732323449526 140732323450857 0"

// statLine builds a stat line the way the kernel prints it.
func statLine(pid int, comm string, state byte, ppid, pgid, sid int, start uint64) string {
	return fmt.Sprintf("%d (%s) %c %d %d %d 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 %d %s\n",
		pid, comm, state, ppid, pgid, sid, start, statTail)
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Stat
		wantErr bool
	}{
		{name: "plain", in: statLine(11811, "exe", 'S', 11810, 11705, 4092, 61998),
			want: Stat{PID: 11811, PPID: 11810, PGID: 11705, SID: 4092, Comm: "exe", State: 'S', StartTime: 61998}},
		{name: "space in name", in: statLine(42, "Web Content", 'R', 7, 7, 7, 123),
			want: Stat{PID: 42, PPID: 7, PGID: 7, SID: 7, Comm: "Web Content", State: 'R', StartTime: 123}},
		{name: "parens around name", in: statLine(2, "(sd-pam)", 'S', 1, 2, 2, 5),
			want: Stat{PID: 2, PPID: 1, PGID: 2, SID: 2, Comm: "(sd-pam)", State: 'S', StartTime: 5}},
		{name: "fake fields after close paren", in: statLine(9, "x) Z 1 1 1", 'S', 8, 8, 8, 77),
			want: Stat{PID: 9, PPID: 8, PGID: 8, SID: 8, Comm: "x) Z 1 1 1", State: 'S', StartTime: 77}},
		{name: "lone close paren", in: statLine(9, ")", 'S', 8, 8, 8, 77),
			want: Stat{PID: 9, PPID: 8, PGID: 8, SID: 8, Comm: ")", State: 'S', StartTime: 77}},
		{name: "newline in name", in: statLine(10, "a\nb", 'S', 1, 10, 10, 99),
			want: Stat{PID: 10, PPID: 1, PGID: 10, SID: 10, Comm: "a\nb", State: 'S', StartTime: 99}},
		{name: "empty name", in: statLine(10, "", 'S', 1, 10, 10, 99),
			want: Stat{PID: 10, PPID: 1, PGID: 10, SID: 10, Comm: "", State: 'S', StartTime: 99}},
		{name: "zombie", in: statLine(10, "sleep", 'Z', 1, 10, 10, 99),
			want: Stat{PID: 10, PPID: 1, PGID: 10, SID: 10, Comm: "sleep", State: 'Z', StartTime: 99}},
		{name: "kernel thread", in: statLine(3, "kworker/R-rcu_gp", 'I', 2, 0, 0, 1),
			want: Stat{PID: 3, PPID: 2, PGID: 0, SID: 0, Comm: "kworker/R-rcu_gp", State: 'I', StartTime: 1}},
		{name: "no trailing newline", in: strings.TrimSuffix(statLine(5, "a", 'S', 1, 1, 1, 2), "\n"),
			want: Stat{PID: 5, PPID: 1, PGID: 1, SID: 1, Comm: "a", State: 'S', StartTime: 2}},
		{name: "max start time", in: statLine(5, "a", 'S', 1, 1, 1, 1<<64-1),
			want: Stat{PID: 5, PPID: 1, PGID: 1, SID: 1, Comm: "a", State: 'S', StartTime: 1<<64 - 1}},
		{name: "exactly 22 fields", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n",
			want: Stat{PID: 5, PPID: 1, PGID: 1, SID: 1, Comm: "a", State: 'S', StartTime: 8}},

		{name: "empty", in: "", wantErr: true},
		{name: "only newline", in: "\n", wantErr: true},
		{name: "truncated after comm", in: "5 (a)", wantErr: true},
		{name: "truncated after state", in: "5 (a) S", wantErr: true},
		{name: "truncated before start time", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0\n", wantErr: true},
		{name: "truncated in comm", in: "5 (Web Cont", wantErr: true},
		{name: "no pid", in: strings.TrimPrefix(statLine(5, "a", 'S', 1, 1, 1, 2), "5 "), wantErr: true},
		{name: "pid not a number", in: "x" + statLine(5, "a", 'S', 1, 1, 1, 2), wantErr: true},
		{name: "pid zero", in: statLine(0, "a", 'S', 1, 1, 1, 2), wantErr: true},
		{name: "pid negative", in: "-" + statLine(5, "a", 'S', 1, 1, 1, 2), wantErr: true},
		{name: "pid leading zero", in: "0" + statLine(5, "a", 'S', 1, 1, 1, 2), wantErr: true},
		{name: "two spaces before comm", in: "5  (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "two spaces after comm", in: "5 (a)  S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "no space after comm", in: "5 (a)S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "long state", in: "5 (a) SS 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "state not a letter", in: "5 (a) 1 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "ppid not a number", in: "5 (a) S x 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "negative ppid", in: "5 (a) S -1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "start time not a number", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8x\n", wantErr: true},
		{name: "negative start time", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 -8\n", wantErr: true},
		{name: "start time leading zero", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 08\n", wantErr: true},
		{name: "ppid leading zero", in: "5 (a) S 01 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "start time overflow", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 18446744073709551616\n", wantErr: true},
		{name: "trailing space", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8 \n", wantErr: true},
		{name: "two newlines", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n\n", wantErr: true},
		{name: "garbage later field", in: "5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8 1a\n", wantErr: true},
		{name: "NUL in comm", in: statLine(5, "a\x00b", 'S', 1, 1, 1, 2), wantErr: true},
		{name: "close before open", in: "5 )a( S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
		{name: "no parens", in: "5 a S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseStat(%q) = %+v, want error", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStat(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseStat(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine(11811, "exe", 'S', 11810, 11705, 4092, 61998)))
	f.Add([]byte(statLine(42, "Web Content", 'R', 7, 7, 7, 123)))
	f.Add([]byte(statLine(2, "(sd-pam)", 'S', 1, 2, 2, 5)))
	f.Add([]byte(statLine(9, "x) Z 1 1 1", 'S', 8, 8, 8, 77)))
	f.Add([]byte(statLine(10, "a\nb", 'Z', 1, 10, 10, 99)))
	f.Add([]byte("5 (a) S 1 1 1 0 -1 4194304 554 0 0 0 3 1 0 0 20 0 4 0 8"))
	f.Add([]byte("5 (a"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err != nil {
			return
		}
		if st.PID <= 0 || st.PPID < 0 || st.PGID < 0 || st.SID < 0 || !isLetter(st.State) {
			t.Fatalf("ParseStat(%q) accepted %+v", data, st)
		}
		open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if st.Comm != string(data[open+1:end]) {
			t.Fatalf("ParseStat(%q): comm %q is not between the first ( and the last )", data, st.Comm)
		}
		// What the kernel would print for st must parse back to st.
		again, err := ParseStat([]byte(statLine(st.PID, st.Comm, st.State, st.PPID, st.PGID, st.SID, st.StartTime)))
		if err != nil || again != st {
			t.Fatalf("round trip of %+v: %+v, %v", st, again, err)
		}
	})
}

// statusText is the head of a real /proc/PID/status.
func statusText(name string, pid int, uids string) string {
	return fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nNgid:\t0\n"+
		"Pid:\t%d\nPPid:\t1\nTracerPid:\t0\nUid:\t%s\nGid:\t0\t0\t0\t0\nFDSize:\t64\n", name, pid, pid, uids)
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		tgid, uid int
		wantErr   bool
	}{
		{name: "root", in: statusText("exe", 7, "0\t0\t0\t0"), tgid: 7, uid: 0},
		{name: "user", in: statusText("Web Content", 11811, "1000\t1000\t1000\t1000"), tgid: 11811, uid: 1000},
		{name: "real differs from effective", in: statusText("sudo", 9, "1000\t0\t0\t0"), tgid: 9, uid: 1000},
		{name: "max uid", in: statusText("x", 9, "4294967294\t1\t1\t1"), tgid: 9, uid: 4294967294},
		{name: "escaped newline in name cannot fake lines", in: statusText(`x\nTgid:\t1\nUid:\t0\t0\t0\t0`, 9, "1000\t1000\t1000\t1000"), tgid: 9, uid: 1000},
		{name: "minimal", in: "Tgid:\t3\nUid:\t5\t5\t5\t5\n", tgid: 3, uid: 5},
		{name: "no Uid line", in: "Name:\tx\nTgid:\t3\nGid:\t0\t0\t0\t0\n", wantErr: true},
		{name: "no Tgid line", in: "Name:\tx\nUid:\t0\t0\t0\t0\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "truncated Uid line", in: "Tgid:\t3\nUid:\t1000\t1000", wantErr: true},
		{name: "three ids", in: "Tgid:\t3\nUid:\t1000\t1000\t1000\n", wantErr: true},
		{name: "negative", in: "Tgid:\t3\nUid:\t-1\t1000\t1000\t1000\n", wantErr: true},
		{name: "too big", in: "Tgid:\t3\nUid:\t4294967296\t0\t0\t0\n", wantErr: true},
		{name: "not a number", in: "Tgid:\t3\nUid:\tx\t0\t0\t0\n", wantErr: true},
		{name: "leading zeros", in: "Tgid:\t3\nUid:\t0000\t0\t0\t0\n", wantErr: true},
		{name: "bad tgid", in: "Tgid:\t3x\nUid:\t0\t0\t0\t0\n", wantErr: true},
		{name: "two tgids", in: "Tgid:\t3 4\nUid:\t0\t0\t0\t0\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tgid, uid, err := parseStatus([]byte(tc.in))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parseStatus(%q) = %d, %d; want error", tc.in, tgid, uid)
				}
				return
			}
			if err != nil || tgid != tc.tgid || uid != tc.uid {
				t.Fatalf("parseStatus(%q) = %d, %d, %v; want %d, %d", tc.in, tgid, uid, err, tc.tgid, tc.uid)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(statusText("exe", 11811, "1000\t1000\t1000\t1000")))
	f.Add([]byte("Tgid:\t1\nUid:\t0\t0\t0\t0\n"))
	f.Add([]byte("Uid:\t1\t2\t3"))
	f.Add([]byte("Tgid:\t1\nUid:00000000000000000000000000 0 0 0\n")) // found by fuzzing: leading zeros
	f.Fuzz(func(t *testing.T, data []byte) {
		tgid, uid, err := parseStatus(data)
		if err != nil {
			return
		}
		if uid < 0 || uid > 1<<32-1 || tgid < 0 {
			t.Fatalf("parseStatus(%q) = %d, %d", data, tgid, uid)
		}
		// Each answer must be the canonical number on the first complete line with its key.
		first := func(key string) []string {
			for _, line := range strings.SplitAfter(string(data), "\n") {
				if rest, ok := strings.CutPrefix(line, key); ok && strings.HasSuffix(line, "\n") {
					return strings.Fields(rest)
				}
			}
			return nil
		}
		if f := first("Uid:"); len(f) != 4 || f[0] != fmt.Sprint(uid) {
			t.Fatalf("parseStatus(%q): uid %d, first Uid line has %q", data, uid, f)
		}
		if f := first("Tgid:"); len(f) != 1 || f[0] != fmt.Sprint(tgid) {
			t.Fatalf("parseStatus(%q): tgid %d, first Tgid line has %q", data, tgid, f)
		}
	})
}

func TestEnvironHas(t *testing.T) {
	env := []byte("HOME=/home/a\x00FFL_SESSION=12/n1/8001\x00XFFL_SESSION=7/n1/1\x00EMPTY=\x00")
	tests := []struct {
		name, prefix string
		env          []byte
		want         bool
	}{
		{"FFL_SESSION", "12/n1/", env, true},
		{"FFL_SESSION", "12/n1/8001", env, true},
		{"FFL_SESSION", "", env, true},
		{"FFL_SESSION", "1/n1/", env, false},        // "12/..." does not start with "1/..."
		{"FFL_SESSION", "12/n1/8001/x", env, false}, // longer than the value
		{"FFL_SESSION", "7/n1/", env, false},        // only XFFL_SESSION has it
		{"FFL", "SESSION", env, false},              // name must match a whole name
		{"EMPTY", "", env, true},
		{"EMPTY", "x", env, false},
		{"HOME", "/home/a", []byte("HOME=/home/a"), true}, // last entry without NUL (cut at the cap)
		{"HOME", "", []byte(""), false},
		{"HOME", "", []byte("\x00\x00HOME"), false},
	}
	for _, tc := range tests {
		if got := environHas(tc.env, tc.name, tc.prefix); got != tc.want {
			t.Errorf("environHas(%q, %q, %q) = %v, want %v", tc.env, tc.name, tc.prefix, got, tc.want)
		}
	}
}

func FuzzEnvironHas(f *testing.F) {
	f.Add([]byte("HOME=/h\x00FFL_SESSION=12/n1/8001\x00"), "FFL_SESSION", "12/n1/")
	f.Add([]byte("FFL_SESSION=1"), "FFL_SESSION", "1/")
	f.Add([]byte("XFFL_SESSION=1/\x00"), "FFL_SESSION", "1/")
	f.Fuzz(func(t *testing.T, env []byte, name, prefix string) {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return // FindByMarker refuses such names
		}
		// Differential check against the obvious, slower definition.
		want := false
		for _, e := range strings.Split(string(env), "\x00") {
			if strings.HasPrefix(e, name+"="+prefix) {
				want = true
			}
		}
		if got := environHas(env, name, prefix); got != want {
			t.Fatalf("environHas(%q, %q, %q) = %v, want %v", env, name, prefix, got, want)
		}
	})
}
