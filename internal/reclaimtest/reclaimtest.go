// Package reclaimtest is the on-disk and process fixture of the root-only tests of the cleanup
// (pkg/reclaim, pkg/hook): test users with homes, private runtime, temp and X roots with a
// unique node name, sessions laid out as a launcher leaves them, and faketree process trees
// carrying a session's marker. It is test support only: nothing outside tests imports it.
package reclaimtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
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
	"github.com/ffl-hpc/ffl/pkg/reexec"
)

// User is a non-root user made for these tests.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// IDs makes User a testutil.Owner.
func (u User) IDs() (int, int) { return u.UID, u.GID }

// Cred is u as a process credential.
func (u User) Cred() *syscall.Credential {
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}
}

// homesDir holds the test users' homes; it outlives test runs (the users do too).
const homesDir = "/var/tmp/ffltest-homes"

// EnsureUser creates (idempotently) a user without a login whose home is below homesDir.
func EnsureUser(t testing.TB, name string) User {
	t.Helper()
	return EnsureUserHome(t, name, filepath.Join(homesDir, name))
}

// EnsureUserHome creates (idempotently) a user without a login whose home is home; the home is
// created (the user's, 0700, in a parent all may traverse) unless it is below /nonexistent, the
// case of a user whose home does not exist.
func EnsureUserHome(t testing.TB, name, home string) User {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin", "-c", "ffl test user", name).CombinedOutput()
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
	if !strings.HasPrefix(u.HomeDir, "/nonexistent") {
		testutil.Must(t, os.MkdirAll(filepath.Dir(u.HomeDir), 0o755))
		_ = os.Chmod(filepath.Dir(u.HomeDir), 0o755)
		testutil.Must(t, os.MkdirAll(u.HomeDir, 0o700))
		testutil.Must(t, os.Chown(u.HomeDir, uid, gid))
	}
	return User{Name: name, UID: uid, GID: gid, Home: u.HomeDir}
}

// Fixture is a private set of roots (runtime root, temp dir, X dir) plus a unique node name, so
// tests can share the test users' homes without meeting each other.
type Fixture struct {
	T       *testing.T
	Root    string
	Runtime string // root-owned 0755, like /run/ffl
	Temp    string // 1777, like /tmp
	XDir    string // 1777 with .X11-unix, like /tmp for X
	Node    string
	User    User
	Other   User
	BootID  string
	// Faketree is the faketree binary Tree starts (ftest.BuildIn, built once by TestMain).
	Faketree string
}

// New makes a fixture for a root-only test (it skips otherwise) with the test users ffltest1
// (User) and ffltest2 (Other); faketree is the binary Tree starts.
func New(t *testing.T, faketree string) *Fixture {
	t.Helper()
	testutil.RequireRoot(t)
	f := &Fixture{T: t, User: EnsureUser(t, "ffltest1"), Other: EnsureUser(t, "ffltest2"), Faketree: faketree}
	f.Root = t.TempDir()
	// t.TempDir makes <tmp>/<Test...>/<n>, both 0700: the test users must get through.
	testutil.Must(t, os.Chmod(filepath.Dir(f.Root), 0o755))
	testutil.Must(t, os.Chmod(f.Root, 0o755))
	f.Runtime = filepath.Join(f.Root, "run", "ffl")
	testutil.Must(t, os.MkdirAll(f.Runtime, 0o755))
	testutil.Must(t, os.Chmod(filepath.Dir(f.Runtime), 0o755))
	testutil.Must(t, os.Chmod(f.Runtime, 0o755))
	f.Temp = filepath.Join(f.Root, "tmp")
	testutil.Must(t, os.Mkdir(f.Temp, 0o755))
	testutil.Must(t, os.Chmod(f.Temp, 0o777|os.ModeSticky))
	f.XDir = filepath.Join(f.Root, "x")
	testutil.Must(t, os.Mkdir(f.XDir, 0o755))
	testutil.Must(t, os.Chmod(f.XDir, 0o777|os.ModeSticky))
	testutil.Must(t, os.Mkdir(filepath.Join(f.XDir, ".X11-unix"), 0o755))
	testutil.Must(t, os.Chmod(filepath.Join(f.XDir, ".X11-unix"), 0o777|os.ModeSticky))
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	f.Node = "t" + hex.EncodeToString(rnd[:])
	id, err := proc.BootID()
	testutil.Must(t, err)
	f.BootID = id
	t.Cleanup(func() {
		for _, u := range []User{f.User, f.Other} {
			os.RemoveAll(filepath.Join(StateDirOf(u), layout.SessionsDir, f.Node))
		}
	})
	return f
}

func StateDirOf(u User) string { return filepath.Join(u.Home, ".firefox-launcher") }

// Layout is user u's layout for job on this Fixture's node.
func (f *Fixture) Layout(u User, job string) layout.Layout {
	return layout.Layout{StateDir: StateDirOf(u), RuntimeDir: f.Runtime, TempDir: f.Temp, UID: u.UID, Node: f.Node, JobKey: job}
}

// Session describes one session to lay out on disk.
type Session struct {
	User      User
	Job       string
	Port      int
	Fallback  bool            // node-local dir under <temp>/ffl-<uid> instead of the runtime root
	Display   string          // recorded display, "" for none
	Processes []proc.Identity // recorded processes
	Sup       *proc.Identity  // supervisor in the state file (nil: a dead one)
	BootID    string          // "" = this boot
}

// DeadID names no process (a PID above any pid_max).
var DeadID = proc.Identity{PID: 999_999_999, StartTime: 1}

// RuntimeJobDir returns (creating) the node-local job dir of spec.
func (f *Fixture) RuntimeJobDir(s Session) string {
	var dir string
	if s.Fallback {
		dir = filepath.Join(f.Temp, layout.UserTempName(s.User.UID), layout.JobDirName(s.Job))
	} else {
		dir = filepath.Join(f.Runtime, layout.JobDirName(s.Job))
	}
	testutil.MkdirAs(f.T, dir, s.User, 0o700)
	return dir
}

// AddSession lays out a session: node-local session dir with state.json, home session dir with
// a password and a profile. It returns (node-local session dir, home session dir).
func (f *Fixture) AddSession(s Session) (string, string) {
	t := f.T
	t.Helper()
	l := f.Layout(s.User, s.Job)
	rt := filepath.Join(f.RuntimeJobDir(s), layout.SessionDirName(s.Port))
	testutil.MkdirAs(t, rt, s.User, 0o700)
	for _, d := range []string{"run", "xpra", "tmp", "cache"} {
		testutil.MkdirAs(t, filepath.Join(rt, d), s.User, 0o700)
	}
	sup := DeadID
	if s.Sup != nil {
		sup = *s.Sup
	}
	boot := s.BootID
	if boot == "" {
		boot = f.BootID
	}
	st := layout.State{
		Schema: layout.StateSchema, Job: s.Job, Node: f.Node, BootID: boot, UID: s.User.UID, User: s.User.Name,
		Port: s.Port, Display: s.Display, Created: time.Now().UTC(), Marker: l.Marker(s.Port),
		SessionDir: l.HomeSessionDir(s.Port), RuntimeDir: rt, Supervisor: sup, Processes: s.Processes,
	}
	if st.Processes == nil {
		st.Processes = []proc.Identity{}
	}
	data, err := st.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(rt, layout.StateFile), s.User, data)
	home := l.HomeSessionDir(s.Port)
	testutil.MkdirAs(t, filepath.Join(home, "profile"), s.User, 0o700)
	testutil.WriteAs(t, filepath.Join(home, layout.PasswordFile), s.User, []byte("secret"))
	testutil.WriteAs(t, filepath.Join(home, "profile", "user.js"), s.User, []byte("user_pref(\"x\", 1);\n"))
	return rt, home
}

// AddSupervisor writes supervisor.json into the node-local job dir of s.
func (f *Fixture) AddSupervisor(s Session, id proc.Identity, bootID string) {
	t := f.T
	t.Helper()
	if bootID == "" {
		bootID = f.BootID
	}
	rec := layout.Supervisor{Schema: layout.StateSchema, Job: s.Job, Node: f.Node, BootID: bootID, Process: id, Started: time.Now().UTC()}
	data, err := rec.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(f.RuntimeJobDir(s), layout.SupervisorFile), s.User, data)
}

// Tree starts a faketree as u carrying marker (none if ""), with a TERM-ignoring child and a
// daemonized grandchild: the shape of a session after its launcher was SIGKILLed.
func (f *Fixture) Tree(u User, marker string) *ftest.Tree {
	f.T.Helper()
	args := []string{"-ignore-term", "-daemon"}
	if marker != "" {
		args = append(args, "-marker", layout.MarkerVar+"="+marker)
	}
	return ftest.Start(f.T, f.Faketree, ftest.Options{Args: args, Credential: u.Cred(), Env: []string{"PATH=/usr/bin:/bin"}})
}

// IDs returns the identities of a tree's processes.
func IDs(t testing.TB, tr *ftest.Tree) []proc.Identity {
	t.Helper()
	var out []proc.Identity
	for _, pid := range tr.PIDs() {
		id, err := proc.Lookup(pid)
		testutil.Must(t, err)
		out = append(out, id)
	}
	return out
}

// HasLine reports whether some problem line contains every one of the substrings.
func HasLine(lines []string, subs ...string) bool {
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

// Leftovers lays out the "real leftover" scene: job A with sessions 8001 and 8002, job B (same
// user), and another user's job A-lookalike, each with a live faketree carrying its marker
// (TERM-ignoring child, daemonized grandchild), as after a SIGKILL of every launcher.
type Leftovers struct {
	A1, A2, B, Other, OtherNode []proc.Identity
	ARuntime, BRuntime          string
	AHome, BHome, OtherHome     string
}

func (f *Fixture) Leftovers(jobA, jobB string) Leftovers {
	t := f.T
	var s Leftovers
	la := f.Layout(f.User, jobA)
	tA1 := f.Tree(f.User, la.Marker(8001))
	tA2 := f.Tree(f.User, la.Marker(8002))
	tB := f.Tree(f.User, f.Layout(f.User, jobB).Marker(8001))
	tO := f.Tree(f.Other, f.Layout(f.Other, jobA).Marker(8001)) // same marker text, another uid
	tN := f.Tree(f.User, jobA+"/elsewhere/8001/")               // same job, another node
	s.A1, s.A2, s.B, s.Other, s.OtherNode = IDs(t, tA1), IDs(t, tA2), IDs(t, tB), IDs(t, tO), IDs(t, tN)
	f.AddSession(Session{User: f.User, Job: jobA, Port: 8001, Display: ":4201", Processes: s.A1})
	f.AddSession(Session{User: f.User, Job: jobA, Port: 8002, Processes: s.A2[:1]})
	f.AddSupervisor(Session{User: f.User, Job: jobA}, DeadID, "")
	f.AddSession(Session{User: f.User, Job: jobB, Port: 8001, Processes: s.B, Fallback: true})
	f.AddSession(Session{User: f.Other, Job: jobA, Port: 8001, Processes: s.Other, Fallback: true})
	s.ARuntime = filepath.Join(f.Runtime, layout.JobDirName(jobA))
	s.BRuntime = filepath.Join(f.Temp, layout.UserTempName(f.User.UID), layout.JobDirName(jobB))
	s.AHome = la.HomeJobDir()
	s.BHome = f.Layout(f.User, jobB).HomeJobDir()
	s.OtherHome = f.Layout(f.Other, jobA).HomeJobDir()
	// A stale X lock of job A's display, and its socket.
	testutil.WriteAs(t, filepath.Join(f.XDir, ".X4201-lock"), f.User, []byte(fmt.Sprintf("%10d\n", 999_999_999)))
	sock := filepath.Join(f.XDir, ".X11-unix", "X4201")
	ln, err := net.Listen("unix", sock)
	testutil.Must(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	testutil.Must(t, os.Lchown(sock, f.User.UID, f.User.GID))
	return s
}

func (s Leftovers) Check(t *testing.T, f *Fixture) {
	t.Helper()
	testutil.WaitGone(t, append(append([]proc.Identity{}, s.A1...), s.A2...))
	testutil.AssertAlive(t, "job B", s.B)
	testutil.AssertAlive(t, "another user", s.Other)
	testutil.AssertAlive(t, "job A on another node", s.OtherNode)
	for _, p := range []string{s.ARuntime, s.AHome, filepath.Join(f.XDir, ".X4201-lock"), filepath.Join(f.XDir, ".X11-unix", "X4201")} {
		if testutil.Exists(p) {
			t.Errorf("%s still exists", p)
		}
	}
	for _, p := range []string{s.BRuntime, s.BHome, s.OtherHome} {
		if !testutil.Exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
}

// Age sets the times of every entry below each path to d ago (directories last changed then).
func Age(t testing.TB, d time.Duration, paths ...string) {
	t.Helper()
	when := time.Now().Add(-d)
	for _, root := range paths {
		var all []string
		_ = filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				all = append(all, p)
			}
			return nil
		})
		for i := len(all) - 1; i >= 0; i-- { // children first: touching them changes nothing above
			testutil.Must(t, os.Chtimes(all[i], when, when))
		}
	}
}

// ShHelper runs a shell script as the privilege-dropped helper (the request becomes $0); it
// answers in reexec's protocol: {"result": REPORT}.
func ShHelper(script string) reexec.Command {
	return reexec.Command{Path: "/bin/sh", Args: []string{"-c", script}}
}
