package reclaim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/faketree/ftest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// helperArg makes the test binary act as the privilege-dropped helper (see TestMain): Helper
// re-executes /proc/self/exe, which in a test is the test binary.
const helperArg = "reclaim-test-helper"

var testHelper = Helper{Args: []string{helperArg}}

// faketreeBin is built once by TestMain (when running as root).
var faketreeBin string

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		_ = ServeHelper(os.Args[2], os.Stdout, nil)
		os.Exit(0)
	}
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "reclaim-faketree-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if faketreeBin, err = ftest.BuildIn(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// testUser is a non-root user made for these tests.
type testUser struct {
	name     string
	uid, gid int
	home     string
}

// syscallStat is what os.FileInfo.Sys() holds on Linux.
type syscallStat = syscall.Stat_t

// IDs makes testUser a testutil.Owner.
func (u testUser) IDs() (int, int) { return u.uid, u.gid }

func (u testUser) cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
}

// homesDir holds the test users' homes; it outlives test runs (the users do too).
const homesDir = "/var/tmp/ffltest-homes"

// ensureUser creates (idempotently) a user without a login whose home is below homesDir.
func ensureUser(t testing.TB, name string) testUser {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "-M", "-d", filepath.Join(homesDir, name), "-s", "/usr/sbin/nologin", "-c", "ffl test user", name).CombinedOutput()
		if _, lerr := user.Lookup(name); lerr != nil {
			t.Fatalf("useradd %s: %v: %s", name, err, out)
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(homesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(homesDir, 0o755)
	if err := os.MkdirAll(u.HomeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(u.HomeDir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return testUser{name: name, uid: uid, gid: gid, home: u.HomeDir}
}

// fixture is a private set of roots (runtime root, temp dir, X dir) plus a unique node name, so
// tests can share the test users' homes without meeting each other.
type fixture struct {
	t       *testing.T
	root    string
	runtime string // root-owned 0755, like /run/ffl
	temp    string // 1777, like /tmp
	xdir    string // 1777 with .X11-unix, like /tmp for X
	node    string
	user    testUser
	other   testUser
	bootID  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	f := &fixture{t: t, user: ensureUser(t, "ffltest1"), other: ensureUser(t, "ffltest2")}
	f.root = t.TempDir()
	// t.TempDir makes <tmp>/<Test...>/<n>, both 0700: the test users must get through.
	testutil.Must(t, os.Chmod(filepath.Dir(f.root), 0o755))
	testutil.Must(t, os.Chmod(f.root, 0o755))
	f.runtime = filepath.Join(f.root, "run", "ffl")
	testutil.Must(t, os.MkdirAll(f.runtime, 0o755))
	testutil.Must(t, os.Chmod(filepath.Dir(f.runtime), 0o755))
	testutil.Must(t, os.Chmod(f.runtime, 0o755))
	f.temp = filepath.Join(f.root, "tmp")
	testutil.Must(t, os.Mkdir(f.temp, 0o755))
	testutil.Must(t, os.Chmod(f.temp, 0o777|os.ModeSticky))
	f.xdir = filepath.Join(f.root, "x")
	testutil.Must(t, os.Mkdir(f.xdir, 0o755))
	testutil.Must(t, os.Chmod(f.xdir, 0o777|os.ModeSticky))
	testutil.Must(t, os.Mkdir(filepath.Join(f.xdir, ".X11-unix"), 0o755))
	testutil.Must(t, os.Chmod(filepath.Join(f.xdir, ".X11-unix"), 0o777|os.ModeSticky))
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	f.node = "t" + hex.EncodeToString(rnd[:])
	id, err := proc.BootID()
	testutil.Must(t, err)
	f.bootID = id
	t.Cleanup(func() {
		for _, u := range []testUser{f.user, f.other} {
			os.RemoveAll(filepath.Join(stateDirOf(u), layout.SessionsDir, f.node))
		}
	})
	return f
}

func stateDirOf(u testUser) string { return filepath.Join(u.home, ".firefox-launcher") }

// layout is user u's layout for job on this fixture's node.
func (f *fixture) layout(u testUser, job string) layout.Layout {
	return layout.Layout{StateDir: stateDirOf(u), RuntimeDir: f.runtime, TempDir: f.temp, UID: u.uid, Node: f.node, JobKey: job}
}

func (f *fixture) opts() Options {
	return Options{BootID: f.bootID, Grace: 300 * time.Millisecond, XDir: f.xdir, KillWait: 5 * time.Second}
}

// sessionSpec describes one session to lay out on disk.
type sessionSpec struct {
	user      testUser
	job       string
	port      int
	fallback  bool            // node-local dir under <temp>/ffl-<uid> instead of the runtime root
	display   string          // recorded display, "" for none
	processes []proc.Identity // recorded processes
	sup       *proc.Identity  // supervisor in the state file (nil: a dead one)
	bootID    string          // "" = this boot
}

// deadID names no process (a PID above any pid_max).
var deadID = proc.Identity{PID: 999_999_999, StartTime: 1}

// runtimeJobDir returns (creating) the node-local job dir of spec.
func (f *fixture) runtimeJobDir(s sessionSpec) string {
	var dir string
	if s.fallback {
		dir = filepath.Join(f.temp, layout.UserTempName(s.user.uid), layout.JobDirName(s.job))
	} else {
		dir = filepath.Join(f.runtime, layout.JobDirName(s.job))
	}
	testutil.MkdirAs(f.t, dir, s.user, 0o700)
	return dir
}

// addSession lays out a session: node-local session dir with state.json, home session dir with
// a password and a profile. It returns (node-local session dir, home session dir).
func (f *fixture) addSession(s sessionSpec) (string, string) {
	t := f.t
	t.Helper()
	l := f.layout(s.user, s.job)
	rt := filepath.Join(f.runtimeJobDir(s), layout.SessionDirName(s.port))
	testutil.MkdirAs(t, rt, s.user, 0o700)
	for _, d := range []string{"run", "xpra", "tmp", "cache"} {
		testutil.MkdirAs(t, filepath.Join(rt, d), s.user, 0o700)
	}
	sup := deadID
	if s.sup != nil {
		sup = *s.sup
	}
	boot := s.bootID
	if boot == "" {
		boot = f.bootID
	}
	st := layout.State{
		Schema: layout.StateSchema, Job: s.job, Node: f.node, BootID: boot, UID: s.user.uid, User: s.user.name,
		Port: s.port, Display: s.display, Created: time.Now().UTC(), Marker: l.Marker(s.port),
		SessionDir: l.HomeSessionDir(s.port), RuntimeDir: rt, Supervisor: sup, Processes: s.processes,
	}
	if st.Processes == nil {
		st.Processes = []proc.Identity{}
	}
	data, err := st.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(rt, layout.StateFile), s.user, data)
	home := l.HomeSessionDir(s.port)
	testutil.MkdirAs(t, filepath.Join(home, "profile"), s.user, 0o700)
	testutil.WriteAs(t, filepath.Join(home, layout.PasswordFile), s.user, []byte("secret"))
	testutil.WriteAs(t, filepath.Join(home, "profile", "user.js"), s.user, []byte("user_pref(\"x\", 1);\n"))
	return rt, home
}

// addSupervisor writes supervisor.json into the node-local job dir of s.
func (f *fixture) addSupervisor(s sessionSpec, id proc.Identity, bootID string) {
	t := f.t
	t.Helper()
	if bootID == "" {
		bootID = f.bootID
	}
	rec := layout.Supervisor{Schema: layout.StateSchema, Job: s.job, Node: f.node, BootID: bootID, Process: id, Started: time.Now().UTC()}
	data, err := rec.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(f.runtimeJobDir(s), layout.SupervisorFile), s.user, data)
}

// tree starts a faketree as u carrying marker (none if ""), with a TERM-ignoring child and a
// daemonized grandchild: the shape of a session after its launcher was SIGKILLed.
func (f *fixture) tree(u testUser, marker string) *ftest.Tree {
	f.t.Helper()
	args := []string{"-ignore-term", "-daemon"}
	if marker != "" {
		args = append(args, "-marker", layout.MarkerVar+"="+marker)
	}
	return ftest.Start(f.t, faketreeBin, ftest.Options{Args: args, Credential: u.cred(), Env: []string{"PATH=/usr/bin:/bin"}})
}

// ids returns the identities of a tree's processes.
func ids(t testing.TB, tr *ftest.Tree) []proc.Identity {
	t.Helper()
	var out []proc.Identity
	for _, pid := range tr.PIDs() {
		id, err := proc.Lookup(pid)
		testutil.Must(t, err)
		out = append(out, id)
	}
	return out
}

// hasLine reports whether some problem line contains every one of the substrings.
func hasLine(lines []string, subs ...string) bool {
	for _, l := range lines {
		ok := true
		for _, s := range subs {
			if !strings.Contains(l, s) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}
