package slurmtest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

func TestFreePortRange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		starts []int        // what intn returns, try by try (offsets from 20000)
		busy   map[int]bool // ports in use
		n      int
		want   int
		ok     bool
	}{
		{name: "first try", starts: []int{5}, n: 3, want: 20005, ok: true},
		{name: "busy port in the range", starts: []int{5, 100}, busy: map[int]bool{20006: true}, n: 3, want: 20100, ok: true},
		{name: "busy port just past the range", starts: []int{5}, busy: map[int]bool{20008: true}, n: 3, want: 20005, ok: true},
		{name: "never free", starts: []int{0}, busy: map[int]bool{20000: true}, n: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			try := 0
			intn := func(max int) int {
				if max != 40000 {
					t.Fatalf("intn(%d), want 40000", max)
				}
				v := tc.starts[min(try, len(tc.starts)-1)]
				try++
				return v
			}
			got, err := freePortRange(tc.n, intn, func(p int) bool { return !tc.busy[p] })
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("freePortRange = %d, %v; want %d, ok %v", got, err, tc.want, tc.ok)
			}
			if !tc.ok && try != 50 {
				t.Errorf("gave up after %d tries, want 50", try)
			}
		})
	}
}

func TestParseUsers(t *testing.T) {
	got, err := parseUsers("users.sh: ffluser1 exists\nffluser1 1001 1001 /home/ffluser1\nffluser2 1002 1003 /home/ffluser2\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]testutil.User{
		"ffluser1": {Name: "ffluser1", UID: 1001, GID: 1001, Home: "/home/ffluser1"},
		"ffluser2": {Name: "ffluser2", UID: 1002, GID: 1003, Home: "/home/ffluser2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseUsers = %v, want %v", got, want)
	}
	if _, err := parseUsers("ffluser1 x 1001 /home/ffluser1"); err == nil {
		t.Error("a line with a bad uid parsed")
	}
}

func TestHasEnv(t *testing.T) {
	env := []byte("PATH=/bin\x00SLURM_JOB_ID=123\x00SLURM_JOB_ID_X=9\x00")
	for kv, want := range map[string]bool{
		"SLURM_JOB_ID=123": true, "PATH=/bin": true, "SLURM_JOB_ID=12": false, "SLURM_JOB_ID=23": false, "D=123": false,
	} {
		if got := hasEnv(env, kv); got != want {
			t.Errorf("hasEnv(%q) = %v, want %v", kv, got, want)
		}
	}
}

func TestLauncherInfos(t *testing.T) {
	p := filepath.Join(t.TempDir(), "firefox-1.log")
	if got := LauncherInfos(p); got != nil {
		t.Errorf("no file: %v, want nil", got)
	}
	log := `time="x" level=info msg="starting"` + "\n" +
		`{"port":20001,"job":"1","node":"n1"}` + "\n" +
		`{"port":0}` + "\n" + `{broken` + "\n\n" +
		`{"port":20002,"job":"1","node":"n1"}` + "\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := LauncherInfos(p)
	if len(got) != 2 || got[0].Port != 20001 || got[1].Port != 20002 || got[0].Job != "1" || got[0].Node != "n1" {
		t.Errorf("LauncherInfos = %+v, want the sessions on 20001 and 20002", got)
	}
}

func TestResultsTable(t *testing.T) {
	got := ResultsTable([]Result{
		{Name: "01_a", Ran: true, OK: true, Took: 1500 * time.Millisecond},
		{Name: "02_b", Ran: true, Took: 2 * time.Second},
		{Name: "03_c"},
		{Name: "04_d", Ran: true, Skipped: true, OK: true},
	}, "total", 4*time.Second)
	want := strings.Join([]string{
		"scenario                             result  duration",
		"01_a                                 PASS       1.5s",
		"02_b                                 FAIL       2.0s",
		"03_c                                 not run    0.0s",
		"04_d                                 skipped    0.0s",
		"total                                           4.0s",
	}, "\n")
	if got != want {
		t.Errorf("ResultsTable:\n%s\nwant:\n%s", got, want)
	}
}

func TestInstallConfig(t *testing.T) {
	const tag = "# installed by test"
	for _, tc := range []struct {
		name     string
		before   string // "" = no file
		backups  map[string]string
		wantBack string // after restore; "" = no file
	}{
		{name: "no original", wantBack: ""},
		{name: "original kept", before: "mine\n", wantBack: "mine\n"},
		{name: "leftover with backup", before: tag + " old\n", backups: map[string]string{"b1": "orig\n"}, wantBack: "orig\n"},
		{name: "leftover from the other suite", before: tag + " old\n", backups: map[string]string{"b2": "orig\n"}, wantBack: "orig\n"},
		{name: "leftover without backup", before: tag + " old\n", wantBack: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "etc")
			path := filepath.Join(dir, "ffl.toml")
			b1, b2 := path+".b1", path+".b2"
			if tc.before != "" || tc.backups != nil {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if tc.before != "" {
				if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for name, data := range tc.backups {
				if err := os.WriteFile(path+"."+name, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			restore, err := InstallConfig(path, []byte(tag+" now\n"), tag, b1, b2)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); string(got) != tag+" now\n" {
				t.Fatalf("installed %q", got)
			}
			if err := restore(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			switch {
			case tc.wantBack == "" && err == nil:
				t.Errorf("after restore %s holds %q, want no file", path, got)
			case tc.wantBack != "" && string(got) != tc.wantBack:
				t.Errorf("after restore %s holds %q (%v), want %q", path, got, err, tc.wantBack)
			}
			for _, b := range []string{b1, b2} {
				if testutil.Exists(b) {
					t.Errorf("backup %s left", b)
				}
			}
			if tc.before == "" && tc.backups == nil && testutil.Exists(dir) {
				t.Errorf("%s made for the run and left", dir)
			}
		})
	}
}

func TestFFLConfig(t *testing.T) {
	want := `# tag
runtime_dir = "/run/x"
port_min = 20000
port_max = 20099
cleanup_timeout = "3s"
start_timeout = "90s"
max_sessions = 2

[epilog]
log_file = "/var/tmp/e.log"
syslog = false
timeout = "20s"
`
	if got := FFLConfig("# tag", "/run/x", 20000, 20099, "max_sessions = 2\n", "/var/tmp/e.log"); got != want {
		t.Errorf("FFLConfig:\n%s\nwant:\n%s", got, want)
	}
	if got := FFLConfig("# tag", "", 1, 2, "", "l"); strings.Contains(got, "runtime_dir") || !strings.HasPrefix(got, "# tag\nport_min = 1\n") {
		t.Errorf("FFLConfig without runtime_dir:\n%s", got)
	}
}
