package runtimedir

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// TestJobDirs: the one listing of a directory of job dirs names its job-<key> entries only,
// as lstat sees them (a symlink is a symlink, never its target).
func TestJobDirs(t *testing.T) {
	d := t.TempDir()
	testutil.Must(t, os.Mkdir(filepath.Join(d, "job-12"), 0o700), "mkdir")
	testutil.Must(t, os.Mkdir(filepath.Join(d, "job-local-7"), 0o700), "mkdir")
	testutil.Must(t, os.Symlink("/etc", filepath.Join(d, "job-13")), "symlink")
	testutil.Must(t, os.Mkdir(filepath.Join(d, "session-8001"), 0o700), "mkdir")
	testutil.Must(t, os.WriteFile(filepath.Join(d, "job-"), nil, 0o600), "write")
	testutil.Must(t, os.WriteFile(filepath.Join(d, "supervisor.json"), nil, 0o600), "write")
	f, err := safefs.OpenDir(d)
	testutil.Must(t, err, "open")
	defer f.Close()
	dirs, more, err := JobDirs(f)
	if err != nil || more {
		t.Fatalf("JobDirs: more %v, %v", more, err)
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Name < dirs[j].Name })
	var got []string
	for _, jd := range dirs {
		kind := "dir"
		if !jd.Info.IsDir() {
			kind = "not a dir"
		}
		got = append(got, jd.Name+"="+jd.Key+" "+kind)
	}
	want := []string{"job-12=12 dir", "job-13=13 not a dir", "job-local-7=local-7 dir"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JobDirs = %q, want %q", got, want)
	}
}

// TestReadSupervisor: the one reader of supervisor.json returns a record that parses, says
// "not there" for a missing one, and refuses a symlink and a record with unknown fields.
func TestReadSupervisor(t *testing.T) {
	rec := layout.Supervisor{Schema: layout.StateSchema, Job: "9", Node: "n1", BootID: "b", Process: proc.Identity{PID: 42, StartTime: 7, UID: 1000}, Started: time.Now().UTC()}
	good, err := rec.Marshal()
	testutil.Must(t, err, "marshal")
	for _, tc := range []struct {
		name     string
		setup    func(dir string)
		ok       bool
		notExist bool
	}{
		{"record", func(dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, layout.SupervisorFile), good, 0o600), "write")
		}, true, false},
		{"missing", func(string) {}, false, true},
		{"symlink", func(dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "real"), good, 0o600), "write")
			testutil.Must(t, os.Symlink("real", filepath.Join(dir, layout.SupervisorFile)), "symlink")
		}, false, false},
		{"unknown field", func(dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, layout.SupervisorFile), []byte(`{"schema":1,"job":"9","node":"n1","x":1}`), 0o600), "write")
		}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			f, err := safefs.OpenDir(dir)
			testutil.Must(t, err, "open")
			defer f.Close()
			sup, err := ReadSupervisor(f)
			if (err == nil) != tc.ok || safefs.IsNotExist(err) != tc.notExist {
				t.Fatalf("ReadSupervisor: %+v, %v (want ok %v, not-exist %v)", sup, err, tc.ok, tc.notExist)
			}
			if tc.ok && (sup.Job != "9" || sup.Process != rec.Process) {
				t.Errorf("read %+v, want %+v", sup, rec)
			}
		})
	}
}
