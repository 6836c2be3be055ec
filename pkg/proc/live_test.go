package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/faketree/ftest"
)

// waitTimeout bounds every wait on a real process: generous, the machine is shared and noisy.
const waitTimeout = 30 * time.Second

// faketree builds the faketree binary once per test binary.
var faketree struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if faketree.dir != "" {
		os.RemoveAll(faketree.dir)
	}
	os.Exit(code)
}

func faketreeBin(t testing.TB) string {
	t.Helper()
	faketree.once.Do(func() {
		if faketree.dir, faketree.err = os.MkdirTemp("", "proc-test-"); faketree.err == nil {
			faketree.bin, faketree.err = ftest.BuildIn(faketree.dir)
		}
	})
	if faketree.err != nil {
		t.Fatal(faketree.err)
	}
	return faketree.bin
}

// Unprivileged uids for test trees when running as root (Signal refuses uid 0 on principle).
const (
	testUID  = 65534
	otherUID = 65533
)

// treeUser returns the uid test processes run as and the credential that makes them do so: as
// root an unprivileged uid, otherwise our own.
func treeUser() (int, *syscall.Credential) {
	if os.Getuid() != 0 {
		return os.Getuid(), nil
	}
	return testUID, &syscall.Credential{Uid: testUID, Gid: testUID}
}

// requireRoot is testutil.RequireRoot, which pkg/proc's tests cannot import (testutil imports
// proc).
func requireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skipf("needs root: %s", why)
	}
}

// startTree starts a faketree as the test user.
func startTree(t testing.TB, args ...string) *ftest.Tree {
	t.Helper()
	_, cred := treeUser()
	return ftest.Start(t, faketreeBin(t), ftest.Options{Args: args, Credential: cred})
}

func mustLookup(t testing.TB, pid int) Identity {
	t.Helper()
	id, err := Lookup(pid)
	if err != nil {
		t.Fatalf("Lookup(%d): %v", pid, err)
	}
	return id
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLookupSelf(t *testing.T) {
	id, err := Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if id.PID != os.Getpid() || id.UID != os.Getuid() || id.StartTime == 0 {
		t.Errorf("Lookup(self) = %+v, want pid %d uid %d and a start time", id, os.Getpid(), os.Getuid())
	}
	// Field 22 read independently: the 20th field after the last ')'.
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if want := fields[19]; strconv.FormatUint(id.StartTime, 10) != want {
		t.Errorf("start time %d, /proc/self/stat says %s", id.StartTime, want)
	}
	st, err := ReadStat(os.Getpid())
	if err != nil || st.PID != os.Getpid() || st.PPID != os.Getppid() || st.StartTime != id.StartTime {
		t.Errorf("ReadStat(self) = %+v, %v", st, err)
	}
	if !id.Alive() {
		t.Error("self not Alive")
	}
	for _, other := range []Identity{
		{PID: id.PID, StartTime: id.StartTime + 1, UID: id.UID},
		{PID: id.PID, StartTime: id.StartTime, UID: id.UID + 1},
	} {
		if other.Alive() {
			t.Errorf("%v Alive, but self is %v", other, id)
		}
	}
}

func TestThreadIsNoProcess(t *testing.T) {
	tree := startTree(t)
	proc := mustLookup(t, tree.Child)
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", tree.Child))
	if err != nil {
		t.Fatal(err)
	}
	tid := 0
	for _, task := range tasks {
		if n, _ := strconv.Atoi(task.Name()); n != tree.Child {
			tid = n
		}
	}
	if tid == 0 {
		t.Fatalf("faketree child %d has no thread besides its main one", tree.Child)
	}
	// /proc/TID exists and its stat looks like a process's; a recorded "process" with that
	// PID must still count as gone, not be signalled.
	st, err := ReadStat(tid)
	if err != nil {
		t.Fatalf("ReadStat(thread %d): %v", tid, err)
	}
	if id, err := Lookup(tid); !errors.Is(err, ErrGone) {
		t.Errorf("Lookup(thread %d) = %v, %v; want ErrGone", tid, id, err)
	}
	thread := Identity{PID: tid, StartTime: st.StartTime, UID: proc.UID}
	if thread.Alive() {
		t.Errorf("thread %v Alive", thread)
	}
	if err := Signal(thread, unix.SIGKILL); !errors.Is(err, ErrGone) {
		t.Errorf("Signal(thread %v) = %v, want ErrGone", thread, err)
	}
	if !proc.Alive() {
		t.Errorf("%v died from a signal to its thread", proc)
	}
}

func TestLookupCommWithSpacesAndParens(t *testing.T) {
	tree := startTree(t, "-comm", "(Web Content)")
	st, err := ReadStat(tree.Child)
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "(Web Content)" || st.PPID != tree.Root {
		t.Errorf("ReadStat(child) = %+v, want comm %q and ppid %d", st, "(Web Content)", tree.Root)
	}
}

func TestSignalRefuses(t *testing.T) {
	uid, _ := treeUser()
	tree := startTree(t)
	id := mustLookup(t, tree.Child)
	if id.UID != uid {
		t.Fatalf("tree runs as uid %d, want %d", id.UID, uid)
	}
	self := mustLookup(t, os.Getpid())
	tests := []struct {
		name string
		id   Identity
		want error
	}{
		{"pid 1", Identity{PID: 1, StartTime: 1, UID: uid}, ErrRefused},
		{"pid 0", Identity{PID: 0, StartTime: id.StartTime, UID: uid}, ErrRefused},
		{"negative pid", Identity{PID: -id.PID, StartTime: id.StartTime, UID: uid}, ErrRefused},
		{"self", self, ErrRefused},
		{"recorded uid 0", Identity{PID: id.PID, StartTime: id.StartTime, UID: 0}, ErrRefused},
		{"uid mismatch", Identity{PID: id.PID, StartTime: id.StartTime, UID: uid + 1}, ErrRefused},
		{"stale start time", Identity{PID: id.PID, StartTime: id.StartTime + 1, UID: uid}, ErrGone},
		{"older start time", Identity{PID: id.PID, StartTime: id.StartTime - 1, UID: uid}, ErrGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGTERM, 0} {
				if err := Signal(tc.id, sig); !errors.Is(err, tc.want) {
					t.Errorf("Signal(%v, %s) = %v, want %v", tc.id, sigName(sig), err, tc.want)
				}
			}
		})
	}
	// None of that reached the process.
	if !id.Alive() {
		t.Fatalf("%v died from a refused signal", id)
	}
	// The true identity works.
	if err := Signal(id, unix.SIGKILL); err != nil {
		t.Fatalf("Signal(%v, SIGKILL): %v", id, err)
	}
	waitFor(t, "the child to die", func() bool { return !id.Alive() })
	if err := Signal(id, unix.SIGKILL); !errors.Is(err, ErrGone) {
		t.Errorf("Signal to the dead child = %v, want ErrGone", err)
	}
}

func TestSignalRefusesRootProcess(t *testing.T) {
	requireRoot(t, "starts a process as uid 0")
	tree := ftest.Start(t, faketreeBin(t), ftest.Options{}) // runs as root
	id := mustLookup(t, tree.Child)
	if id.UID != 0 {
		t.Fatalf("Lookup = %v, want uid 0", id)
	}
	if err := Signal(id, unix.SIGKILL); !errors.Is(err, ErrRefused) {
		t.Errorf("Signal(%v) = %v, want ErrRefused", id, err)
	}
	// A forged record claiming the root process is a user's is refused after the re-check.
	forged := Identity{PID: id.PID, StartTime: id.StartTime, UID: testUID}
	if err := Signal(forged, unix.SIGKILL); !errors.Is(err, ErrRefused) {
		t.Errorf("Signal(%v) = %v, want ErrRefused", forged, err)
	}
	if !id.Alive() {
		t.Errorf("%v died from a refused signal", id)
	}
}

func TestSignalZombie(t *testing.T) {
	_, cred := treeUser()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	id := mustLookup(t, cmd.Process.Pid)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not waited for: it stays a zombie.
	waitFor(t, "a zombie", func() bool {
		st, err := ReadStat(id.PID)
		return err == nil && st.State == 'Z'
	})
	if got, err := Lookup(id.PID); !errors.Is(err, ErrGone) {
		t.Errorf("Lookup(zombie) = %v, %v; want ErrGone", got, err)
	}
	if id.Alive() {
		t.Error("zombie is Alive")
	}
	if err := Signal(id, unix.SIGKILL); !errors.Is(err, ErrGone) {
		t.Errorf("Signal(zombie) = %v, want ErrGone", err)
	}
}

func TestSignalWithoutPidfd(t *testing.T) {
	tree := startTree(t)
	id := mustLookup(t, tree.Child)
	var killed []int
	s := signaller{
		fs:        FS{},
		pidfdOpen: func(int, int) (int, error) { return -1, unix.ENOSYS },
		kill: func(pid int, sig unix.Signal) error {
			killed = append(killed, pid)
			return unix.Kill(pid, sig)
		},
		self: os.Getpid(),
	}
	stale := Identity{PID: id.PID, StartTime: id.StartTime + 1, UID: id.UID}
	if err := s.signal(stale, unix.SIGKILL); !errors.Is(err, ErrGone) {
		t.Errorf("fallback signal(%v) = %v, want ErrGone", stale, err)
	}
	wrongUser := Identity{PID: id.PID, StartTime: id.StartTime, UID: id.UID + 1}
	if err := s.signal(wrongUser, unix.SIGKILL); !errors.Is(err, ErrRefused) {
		t.Errorf("fallback signal(%v) = %v, want ErrRefused", wrongUser, err)
	}
	if len(killed) != 0 {
		t.Fatalf("fallback called kill(2) for a refused identity: %v", killed)
	}
	if err := s.signal(id, unix.SIGKILL); err != nil {
		t.Fatalf("fallback signal(%v): %v", id, err)
	}
	if !slices.Equal(killed, []int{id.PID}) {
		t.Errorf("kill(2) calls %v, want [%d]", killed, id.PID)
	}
	waitFor(t, "the child to die", func() bool { return !id.Alive() })
}

// markerTree starts a faketree with -daemon and FFL_SESSION=value, as cred.
func markerTree(t testing.TB, cred *syscall.Credential, value string, extraEnv ...string) *ftest.Tree {
	t.Helper()
	opts := ftest.Options{
		Args:       []string{"-ignore-term", "-daemon", "-marker", "FFL_SESSION=" + value},
		Credential: cred,
	}
	if len(extraEnv) > 0 {
		opts.Env = append(os.Environ(), extraEnv...)
	}
	return ftest.Start(t, faketreeBin(t), opts)
}

func sortedPIDs(pids []int) []int {
	pids = slices.Clone(pids)
	slices.Sort(pids)
	return pids
}

func TestFindByMarker(t *testing.T) {
	uid, cred := treeUser()
	want := markerTree(t, cred, "1/n1/8001")
	// Not to be found: another job whose key starts like ours, and a variable that only ends
	// like ours.
	markerTree(t, cred, "10/n1/8001")
	markerTree(t, cred, "2/n1/8001", "XFFL_SESSION=1/n1/8001")
	if os.Getuid() == 0 {
		// Another user's session with the very same marker.
		markerTree(t, &syscall.Credential{Uid: otherUID, Gid: otherUID}, "1/n1/8001")
		// Root's processes are never looked at: uid 0 is refused outright.
		if _, err := FindByMarker(0, "FFL_SESSION", "1/n1/"); !errors.Is(err, ErrRefused) {
			t.Errorf("FindByMarker(0, ...) = %v, want ErrRefused", err)
		}
	}
	ids, err := FindByMarker(uid, "FFL_SESSION", "1/n1/")
	if err != nil {
		t.Fatal(err)
	}
	if got, wantPIDs := pidsOf(ids), sortedPIDs(want.PIDs()); !slices.Equal(got, wantPIDs) {
		t.Fatalf("FindByMarker = %v, want the tree %v (root, child, daemon)", got, wantPIDs)
	}
	for _, id := range ids {
		if id != mustLookup(t, id.PID) {
			t.Errorf("FindByMarker returned %v, Lookup says %v", id, mustLookup(t, id.PID))
		}
	}
}

func TestChildrenAndDaemon(t *testing.T) {
	tree := startTree(t, "-daemon")
	kids, err := Children(tree.Root)
	if err != nil {
		t.Fatal(err)
	}
	if got := pidsOf(kids); !slices.Equal(got, []int{tree.Child}) {
		t.Errorf("Children(root) = %v, want [%d]", got, tree.Child)
	}
	// The daemonized process is in its own session, as Xvfb and crashhelper are.
	st, err := ReadStat(tree.Daemon)
	if err != nil {
		t.Fatal(err)
	}
	if st.SID == st.PID || st.SID == os.Getpid() {
		t.Errorf("daemon %+v: want a session of its own that it does not lead", st)
	}
}

func TestEnd(t *testing.T) {
	uid, cred := treeUser()
	tree := markerTree(t, cred, "end/n1/8001")
	ids, err := FindByMarker(uid, "FFL_SESSION", "end/n1/")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 {
		t.Fatalf("FindByMarker = %v, want the 3 processes of %v", ids, tree.PIDs())
	}
	bogus := Identity{PID: 1, StartTime: 1, UID: uid}
	reaps := 0
	res := Ender{Grace: 500 * time.Millisecond, Poll: 20 * time.Millisecond, KillWait: waitTimeout,
		Reap: func() { reaps++ }}.End(context.Background(), append(ids, bogus, ids[0]))
	if res.Termed != 3 {
		t.Errorf("Termed = %d, want 3", res.Termed)
	}
	if res.Killed < 1 {
		t.Errorf("Killed = %d, want at least the TERM-ignoring child", res.Killed)
	}
	if len(res.Left) != 0 {
		t.Errorf("Left = %v, want none", res.Left)
	}
	if !errors.Is(res.Errs, ErrRefused) || strings.Contains(fmt.Sprint(res.Errs), "errors:") {
		t.Errorf("Errs = %v, want the one refusal of pid 1", res.Errs)
	}
	if reaps == 0 {
		t.Error("the reap hook never ran")
	}
	for _, id := range ids {
		if id.Alive() {
			t.Errorf("%v still alive after End", id)
		}
	}
}

func TestEndCancelled(t *testing.T) {
	uid, cred := treeUser()
	markerTree(t, cred, "cancel/n1/8001")
	ids, err := FindByMarker(uid, "FFL_SESSION", "cancel/n1/")
	if err != nil || len(ids) != 3 {
		t.Fatalf("FindByMarker = %v, %v", ids, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// An hour of grace: only the cancelled context lets this return; SIGKILL must still be sent.
	res := Ender{Grace: time.Hour, Poll: time.Hour}.End(ctx, ids)
	if res.Termed != 3 || res.Killed < 1 || res.Errs != nil {
		t.Errorf("End = %+v, want 3 TERMs, a KILL for the child, no errors", res)
	}
	for _, id := range ids {
		waitFor(t, id.String()+" to end", func() bool { return !id.Alive() })
	}
}

func TestEndNothing(t *testing.T) {
	res := Ender{Grace: time.Hour, Poll: time.Hour}.End(context.Background(), nil)
	if res.Termed != 0 || res.Killed != 0 || len(res.Left) != 0 || res.Errs != nil {
		t.Errorf("End(nothing) = %+v", res)
	}
}

// TestReaper runs TestHelperReaper in a child test binary: a child subreaper changes the whole
// process, so it must not be this one.
func TestReaper(t *testing.T) {
	faketreeBin(t) // build here; the helper finds it through the environment
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReaper$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "FFL_PROC_HELPER=reaper", "FFL_PROC_FAKETREE="+faketree.bin)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestHelperReaper") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}

func TestHelperReaper(t *testing.T) {
	if os.Getenv("FFL_PROC_HELPER") != "reaper" {
		t.Skip("helper for TestReaper, runs only in its child process")
	}
	if err := SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	r := NewReaper()
	r.Interval = time.Hour // only SIGCHLD (and Run's first pass) can trigger Run below
	tree := ftest.Start(t, os.Getenv("FFL_PROC_FAKETREE"), ftest.Options{Args: []string{"-daemon"}, Start: r.Start})
	me := os.Getpid()

	// The daemon double-forked away from the tree and was adopted by us, not PID 1.
	st, err := ReadStat(tree.Daemon)
	if err != nil || st.PPID != me {
		t.Fatalf("daemon stat %+v, %v: want ppid %d (the subreaper)", st, err, me)
	}
	kids, err := Children(me)
	if err != nil || !slices.Contains(pidsOf(kids), tree.Daemon) {
		t.Errorf("Children(self) = %v, %v: want the adopted daemon %d", pidsOf(kids), err, tree.Daemon)
	}
	isZombie := func(pid int) func() bool {
		return func() bool { st, err := ReadStat(pid); return err == nil && st.State == 'Z' }
	}
	isGone := func(pid int) bool { _, err := ReadStat(pid); return errors.Is(err, ErrGone) }

	// An adopted orphan that dies is reaped by ReapOnce. (Raw kill: the PID cannot be reused
	// while it is our unreaped child.)
	if err := unix.Kill(tree.Daemon, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the daemon to be a zombie", isZombie(tree.Daemon))
	// /proc shows a multi-threaded process's leader as a zombie while its other threads are
	// still exiting; wait4 cannot take it until the last one is gone (the kernel then sends
	// the SIGCHLD that makes Run look again). So: reaped within a few passes, exactly once.
	reaped := 0
	waitFor(t, "ReapOnce to reap the daemon", func() bool { reaped += r.ReapOnce(); return reaped > 0 })
	if reaped != 1 {
		t.Errorf("ReapOnce reaped %d, want 1 (the daemon)", reaped)
	}
	if !isGone(tree.Daemon) {
		t.Errorf("daemon %d still in /proc after ReapOnce", tree.Daemon)
	}

	// An owned child (started through r.Start) is left to exec.Cmd.Wait.
	if err := tree.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tree root to be a zombie", isZombie(tree.Root))
	time.Sleep(50 * time.Millisecond) // its threads gone too: a pass now could reap it if it were not owned
	if n := r.ReapOnce(); n != 0 {
		t.Errorf("ReapOnce = %d, want 0: the root is owned", n)
	}
	err = r.Wait(tree.Cmd)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait(root) = %v, want killed by SIGKILL (the Reaper must not steal it)", err)
	}

	// The root's child was orphaned and adopted too; Run reaps it when it dies.
	waitFor(t, "the child to be adopted", func() bool {
		st, err := ReadStat(tree.Child)
		return err == nil && st.PPID == me
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	if err := unix.Kill(tree.Child, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Run to reap the child", func() bool { return isGone(tree.Child) })
	cancel()
	<-done
}

func BenchmarkScan(b *testing.B) {
	for b.Loop() {
		ids, err := Scan(nil)
		if err != nil || len(ids) == 0 {
			b.Fatalf("Scan = %d ids, %v", len(ids), err)
		}
	}
}

func BenchmarkFindByMarker(b *testing.B) {
	uid, cred := treeUser()
	tree := markerTree(b, cred, "bench/n1/8001")
	for b.Loop() {
		ids, err := FindByMarker(uid, "FFL_SESSION", "bench/n1/")
		if err != nil || len(ids) != len(tree.PIDs()) {
			b.Fatalf("FindByMarker = %v, %v", ids, err)
		}
	}
}

// TestMarkedEnder: rounds until a look finds nothing, confirmed by one more look (a process that
// appears during the first round is ended by the second), refusals left alone and counted.
func TestMarkedEnder(t *testing.T) {
	uid, cred := treeUser()
	markerTree(t, cred, "rounds/n1/8001")
	spare := markerTree(t, cred, "rounds/n1/8002")
	late := spare.PIDs()
	looks := 0
	res := MarkedEnder{
		Find: func(ctx context.Context) ([]Identity, error) {
			looks++
			ids, err := FindByMarker(uid, "FFL_SESSION", "rounds/n1/")
			if looks == 1 { // the second tree "appears" only after the first look
				var first []Identity
				for _, id := range ids {
					if !slices.Contains(late, id.PID) {
						first = append(first, id)
					}
				}
				return first, err
			}
			return ids, err
		},
		Refuse: func(id Identity) error {
			if id.PID == spare.Root {
				return fmt.Errorf("%s: %w", id, ErrRefused)
			}
			return nil
		},
		Grace: 300 * time.Millisecond, Poll: 20 * time.Millisecond, KillWait: waitTimeout,
	}.End(context.Background())
	t.Logf("%+v after %d looks", res, looks)
	if res.Rounds != 2 || looks != 4 || res.Termed != 5 || res.Refused != 1 || len(res.Left) != 0 || !errors.Is(res.Errs, ErrRefused) {
		t.Errorf("result %+v after %d looks: want 2 rounds, 4 looks (the empty one confirmed), 5 TERMs, 1 refused", res, looks)
	}
	if id := mustLookup(t, spare.Root); !id.Alive() {
		t.Error("the refused process was ended")
	}
}

// TestMarkedEnderHiddenFirst: a session whose first look misses a process (a /proc walk is no
// snapshot: a process being created while its parent dies is not listed) is still ended when the
// caller had signalled it (Signalled: the empty look is confirmed by a second one); without
// Signalled an empty first look means nothing to do, and the process is left alone.
func TestMarkedEnderHiddenFirst(t *testing.T) {
	uid, cred := treeUser()
	for _, tc := range []struct {
		name      string
		signalled bool
		wantLooks int
		wantEnded bool
	}{
		{"signalled: the empty look is confirmed", true, 4, true}, // empty, found, empty, confirmed
		{"not signalled: nothing to do", false, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := "hidden/n1/" + strconv.Itoa(tc.wantLooks) + "/"
			markerTree(t, cred, marker)
			looks := 0
			res := MarkedEnder{
				Find: func(ctx context.Context) ([]Identity, error) {
					looks++
					if looks == 1 {
						return nil, nil // the walk that missed it
					}
					return FindByMarker(uid, "FFL_SESSION", marker)
				},
				Grace: 300 * time.Millisecond, Poll: 20 * time.Millisecond, KillWait: waitTimeout, Signalled: tc.signalled,
			}.End(context.Background())
			if looks != tc.wantLooks {
				t.Errorf("%d looks, want %d (%+v)", looks, tc.wantLooks, res)
			}
			left, _ := FindByMarker(uid, "FFL_SESSION", marker)
			ended := res.Termed > 0 && len(left) == 0
			if ended != tc.wantEnded {
				t.Errorf("tree ended = %v, want %v (%+v)", ended, tc.wantEnded, res)
			}
		})
	}
}
