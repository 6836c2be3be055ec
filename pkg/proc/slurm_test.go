package proc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mustOK fails the test on error (pkg/proc's tests cannot use internal/testutil: it imports
// proc).
func mustOK(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseStepdCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"slurmstepd: [123.batch]\x00", "123", true},
		{"slurmstepd: [7.extern]", "7", true},
		{"slurmstepd: [42.0]\x00\x00\x00", "42", true},
		{"slurmstepd: [42]", "42", true},
		{"slurmstepd: [0.batch]", "", false},
		{"slurmstepd: [.batch]", "", false},
		{"slurmstepd: [abc.batch]", "", false},
		{"slurmstepd\x00-D\x00", "", false},
		{"sleep 100", "", false},
		{"", "", false},
	} {
		got, ok := ParseStepdCmdline([]byte(tc.in))
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseStepdCmdline(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseStepdCmdline(f *testing.F) {
	for _, s := range []string{"slurmstepd: [123.batch]\x00", "slurmstepd: [1]", "slurmstepd: [", "x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ok := ParseStepdCmdline(data)
		if !ok {
			return
		}
		if id == "" || strings.Trim(id, "0123456789") != "" || id[0] == '0' {
			t.Fatalf("ParseStepdCmdline(%q) = %q", data, id)
		}
	})
}

func TestSlurmJobsOnNode(t *testing.T) {
	root := t.TempDir()
	add := func(pid, comm, cmdline string, uid string) {
		d := filepath.Join(root, pid)
		mustOK(t, os.Mkdir(d, 0o755))
		stat := pid + " (" + comm + ") S 1 " + pid + " " + pid + " 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 100 1 1 18446744073709551615\n"
		mustOK(t, os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644))
		status := "Name:\t" + comm + "\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t" + pid + "\nNgid:\t0\nPid:\t" + pid + "\nPPid:\t1\nTracerPid:\t0\nUid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\n"
		mustOK(t, os.WriteFile(filepath.Join(d, "status"), []byte(status), 0o644))
		mustOK(t, os.WriteFile(filepath.Join(d, "cmdline"), []byte(cmdline), 0o644))
	}
	add("100", "slurmstepd", "slurmstepd: [77.batch]\x00", "0")
	add("101", "slurmstepd", "slurmstepd: [78.extern]\x00", "0")
	add("102", "sleep", "slurmstepd: [79.batch]\x00", "1000") // only slurmstepd counts
	add("103", "slurmstepd", "garbage", "0")
	add("104", "slurmstepd", "slurmstepd: [80.batch]\x00", "1000") // a user's process so named: never read
	got, err := FS{Root: root}.SlurmJobs(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["77"] || !got["78"] { // not 79 (not slurmstepd), not 80 (not root's)
		t.Errorf("got %v, want 77 and 78", got)
	}
}
