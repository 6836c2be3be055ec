package runtimedir

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
)

// world is a temp dir like /tmp (1777) and a runtime root like /run/ffl, in a directory every
// user may enter.
func world(t *testing.T) (temp, runtime string) {
	t.Helper()
	d := testutil.SharedDir(t)
	temp = filepath.Join(d, "tmp")
	runtime = filepath.Join(d, "run")
	testutil.Must(t, os.Mkdir(temp, 0o755), "mkdir")
	testutil.Must(t, os.Chmod(temp, 0o777|os.ModeSticky), "chmod")
	testutil.Must(t, os.Mkdir(runtime, 0o755), "mkdir")
	return temp, runtime
}

func lay(u testutil.User, temp, runtime, job string) layout.Layout {
	return layout.Layout{StateDir: "/nonexistent", RuntimeDir: runtime, TempDir: temp, UID: u.UID, Node: "n1", JobKey: job}
}

func owner(t *testing.T, p string) (int, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	testutil.Must(t, err, "lstat")
	return int(fi.Sys().(*syscall.Stat_t).Uid), fi.Mode()
}

func TestPrepareForJob(t *testing.T) {
	testutil.RequireRoot(t)
	u, o := testutil.TestUser(t, "ffltest1"), testutil.TestUser(t, "ffltest2")
	_, base := world(t)
	rt := filepath.Join(base, "ffl")
	dir, err := PrepareForJob(rt, u.UID, u.GID, "501")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		uid  int
		mode os.FileMode
	}{{rt, 0, 0o755}, {dir, u.UID, 0o700}} {
		uid, mode := owner(t, c.path)
		if uid != c.uid || mode.Perm() != c.mode || !mode.IsDir() {
			t.Errorf("%s: uid %d mode %v, want %d %v", c.path, uid, mode, c.uid, c.mode)
		}
	}
	if _, err := PrepareForJob(rt, u.UID, u.GID, "501"); err != nil {
		t.Errorf("second run (a requeued job): %v", err)
	}
	if _, err := PrepareForJob(rt, o.UID, o.GID, "501"); err == nil {
		t.Error("adopted another user's job dir")
	}
	for name, setup := range map[string]func(p string){
		"symlink": func(p string) { testutil.Must(t, os.Symlink(base, p), "symlink") },
		"users":   func(p string) { testutil.MkdirAs(t, p, u, 0o755) },
		"world-writable": func(p string) {
			testutil.Must(t, os.Mkdir(p, 0o755), "mkdir")
			testutil.Must(t, os.Chmod(p, 0o777), "chmod")
		},
	} {
		p := filepath.Join(base, "bad-"+name)
		setup(p)
		before := testutil.Snapshot(t, base)
		if _, err := PrepareForJob(p, u.UID, u.GID, "502"); err == nil {
			t.Errorf("%s runtime root accepted", name)
		}
		testutil.AssertUnchanged(t, before, testutil.Snapshot(t, base))
	}
}

// TestPrepareSquatted: another user made <temp>/ffl-<uid> first. The launcher (run as the
// user) still gets a node-local dir, a private one; the cleanup finds it; Release removes it.
func TestPrepareSquatted(t *testing.T) {
	testutil.RequireRoot(t)
	u, o := testutil.TestUser(t, "ffltest1"), testutil.TestUser(t, "ffltest2")
	temp, runtime := world(t)
	squat := filepath.Join(temp, layout.UserTempName(u.UID))
	testutil.MkdirAs(t, squat, o, 0o777)
	before := testutil.Snapshot(t, squat)
	testutil.RunTestAs(t, u, "TestPrepareAsUser", "RTD_TEMP="+temp, "RTD_RUNTIME="+runtime)
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, squat))
	l := lay(u, temp, runtime, "77")
	got := Existing(l)
	if len(got) != 1 || !strings.HasPrefix(filepath.Base(filepath.Dir(got[0])), layout.UserTempName(u.UID)+".") {
		t.Fatalf("Existing = %v, want one private dir", got)
	}
	tmp, err := os.Open(temp)
	testutil.Must(t, err, "open")
	defer tmp.Close()
	if !Squatted(tmp, u.UID) || Squatted(tmp, o.UID) {
		t.Error("Squatted does not see the squat")
	}
	names, err := PrivateParents(tmp, u.UID, time.Now().Add(time.Second))
	if err != nil || len(names) != 1 {
		t.Errorf("PrivateParents = %v, %v", names, err)
	}
	if err := Release(l, got[0], time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if testutil.Exists(filepath.Dir(got[0])) {
		t.Error("private parent not released")
	}
	if !testutil.Exists(squat) {
		t.Error("the squat was touched")
	}
}

// TestPrepareAsUser is TestPrepareSquatted's part run as the user (RunTestAs).
func TestPrepareAsUser(t *testing.T) {
	if !testutil.IsChild() {
		t.Skip("run by TestPrepareSquatted as the test user")
	}
	u := testutil.User{UID: os.Getuid()}
	l := lay(u, os.Getenv("RTD_TEMP"), os.Getenv("RTD_RUNTIME"), "77")
	dir, err := Prepare(l)
	if err != nil {
		t.Fatalf("denied a session: %v", err)
	}
	if dir == l.FallbackRuntimeJobDir() || dir == l.PreferredRuntimeJobDir() {
		t.Fatalf("Prepare = %s: the squatted dir", dir)
	}
	if uid, mode := owner(t, filepath.Dir(dir)); uid != os.Getuid() || mode.Perm() != 0o700 {
		t.Errorf("private parent: uid %d mode %v", uid, mode)
	}
	// A second job gets its own.
	l2 := l
	l2.JobKey = "78"
	dir2, err := Prepare(l2)
	if err != nil || filepath.Dir(dir2) == filepath.Dir(dir) {
		t.Errorf("second job: %s, %v", dir2, err)
	}
	if err := Release(l2, dir2, time.Now().Add(5*time.Second)); err != nil || testutil.Exists(filepath.Dir(dir2)) {
		t.Errorf("release: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	testutil.RequireRoot(t)
	u := testutil.TestUser(t, "ffltest1")
	temp, runtime := world(t)
	l := lay(u, temp, runtime, "90")
	// No Prolog: the fallback, made (as root here, for the user) with the user as owner.
	dir, err := Prepare(l)
	if err != nil || dir != l.FallbackRuntimeJobDir() {
		t.Fatalf("Prepare = %s, %v", dir, err)
	}
	if uid, mode := owner(t, dir); uid != u.UID || mode.Perm() != 0o700 {
		t.Errorf("%s: uid %d mode %v", dir, uid, mode)
	}
	// The Prolog's dir wins when it exists.
	testutil.MkdirAs(t, l.PreferredRuntimeJobDir(), u, 0o700)
	if dir, err := Prepare(l); err != nil || dir != l.PreferredRuntimeJobDir() {
		t.Errorf("with the Prolog's dir: %s, %v", dir, err)
	}
	if err := Release(l, l.PreferredRuntimeJobDir(), time.Now().Add(time.Second)); err != nil || !testutil.Exists(l.PreferredRuntimeJobDir()) {
		t.Errorf("released the Prolog's dir: %v", err)
	}
	if err := Release(l, "/etc", time.Now().Add(time.Second)); err == nil {
		t.Error("released /etc")
	}
}
