package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/hostile/htest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
)

// The attack suite: an unprivileged user tries to hang, slow or trick the real ffl-epilog
// binary (issue 8). Each case asserts the promise: the run returns within its timeout plus 1 s,
// exits 0, writes its summary line (naming what it could not finish), changes nothing outside
// the job, and leaves nothing of the job that could have been removed. The job's user is a
// user of its own (fflhostile): some attacks make reads of that user's processes hang for
// anyone, and no other test may meet them. Every attack is disarmed at the end of its test.

// attackTimeout is epilog.timeout in these tests.
const attackTimeout = 3 * time.Second

// bound is the promise: timeout plus at most 1 s.
const bound = attackTimeout + time.Second

func attackHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessFor(t, fmt.Sprintf("timeout = %q", attackTimeout.String()), "fflhostile", "fflhostile2")
}

// attack starts the attacker as u, skipping the test where the machine cannot run it.
func (h *harness) attack(u testUser, args ...string) *htest.Attack {
	h.t.Helper()
	a, err := htest.Start(h.t, hostileBin, u.uid, u.gid, h.root, args...)
	if errors.Is(err, htest.ErrUnsupported) {
		h.t.Skipf("this attack needs unprivileged user namespaces and /dev/fuse: %v", err)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// promised checks the promise for one run of job's Epilog.
func (h *harness) promised(r result, job string, before map[string]string, allowed ...string) {
	t := h.t
	t.Helper()
	if r.took > bound {
		t.Errorf("the Epilog took %s, more than its timeout %s plus 1 s", r.took, attackTimeout)
	}
	if r.code != 0 {
		t.Errorf("exit status %d, want 0; stderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.log, "epilog done") || !strings.Contains(r.log, "job="+job) || !strings.Contains(r.log, "unfinished=") {
		t.Errorf("no summary line (with unfinished=) for job %s", job)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), append(h.jobPaths(h.user, job), allowed...)...)
	for _, p := range h.jobPaths(h.user, job) {
		if testutil.Exists(p) {
			t.Errorf("%s not removed", p)
		}
	}
}

// promisedOrRanOut is promised for the two tests whose subject is descriptors, not the removal
// (their tens of thousands of files only make the helper live a while): on a loaded machine the
// removal may run out of the Epilog's time. Then the first run must still keep its bound, exit
// 0 and say so (unfinished=... dirs), and the next run (the next Epilog or sweep of the node)
// removes the rest and keeps the whole promise.
func (h *harness) promisedOrRanOut(r result, job string, before map[string]string, env []string, allowed ...string) {
	t := h.t
	t.Helper()
	left := false
	for _, p := range h.jobPaths(h.user, job) {
		left = left || testutil.Exists(p)
	}
	if !left || !regexp.MustCompile(`unfinished=\S*dirs`).MatchString(r.log) {
		h.promised(r, job, before, allowed...)
		return
	}
	if r.took > bound || r.code != 0 {
		t.Errorf("the Epilog that ran out of time: exit %d after %s (bound %s)", r.code, r.took, bound)
	}
	t.Logf("the removal ran out of the Epilog's %s here (machine load): the next run removes the rest", attackTimeout)
	h.promised(h.run(env), job, before, allowed...)
}

// TestAttackEnvironReadBlocks: a process of the job's user makes every read of its environment
// block (a FUSE file that never answers, a thread holding the mmap lock waiting for it, a writer
// queued behind it). The scan that reads environments runs in a child that is killed at its
// deadline; the recorded session processes are looked at first and ended; the directories are
// removed regardless; the summary says the process step did not finish.
func TestAttackEnvironReadBlocks(t *testing.T) {
	h := attackHarness(t)
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, "")
	trap := h.attack(h.user, "-mode", "fuse-environ")
	t.Logf("trap: %s", trap.Findings())
	before := testutil.Snapshot(t, h.world()...)
	r := h.run(h.slurmEnv(jobA, h.user))
	h.promised(r, jobA, before)
	testutil.WaitGone(t, procs)
	if !strings.Contains(r.log, "unfinished=processes") {
		t.Error("the summary does not name the cut-short process step")
	}
}

// TestAttackSweepFairness: the same trap by one user delays the sweep of another user's stale
// job by at most that user's share: the other user's job is removed.
func TestAttackSweepFairness(t *testing.T) {
	h := newHarnessFor(t, "", "fflhostile", "fflhostile2") // the attacker's uid is the lower: swept first
	jobs := map[int]string{h.user.uid: "710", h.other.uid: "711"}
	for _, u := range []testUser{h.user, h.other} {
		h.session(u, jobs[u.uid], 8001, false, nil, "")
		old := time.Now().Add(-48 * time.Hour)
		for _, p := range h.jobPaths(u, jobs[u.uid]) {
			_ = filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
				if err == nil {
					_ = os.Chtimes(q, old, old)
				}
				return nil
			})
		}
	}
	h.attack(h.user, "-mode", "fuse-environ")
	const sweepTimeout = 6 * time.Second
	r := h.run([]string{"PATH=/usr/bin:/bin"}, "sweep", "--node", h.node, "--older-than", "24h", "--timeout", sweepTimeout.String())
	if r.took > sweepTimeout+time.Second || r.code != 0 || !strings.Contains(r.log, "sweep done") {
		t.Errorf("sweep: exit %d after %s (bound %s); summary: %v", r.code, r.took, sweepTimeout+time.Second, strings.Contains(r.log, "sweep done"))
	}
	for _, p := range h.jobPaths(h.other, "711") {
		if testutil.Exists(p) {
			t.Errorf("the other user's stale %s was not removed", p)
		}
	}
}

// TestAttackManyProcesses: thousands of processes of the job's user, each with a 1 MiB
// environment (the cost of a scan that reads whole environments). The scan reads 4 KiB of
// each; the bound holds and the job is cleaned.
func TestAttackManyProcesses(t *testing.T) {
	h := attackHarness(t)
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, "")
	h.attack(h.user, "-mode", "many", "-n", "3000", "-env-kib", "1024")
	before := testutil.Snapshot(t, h.world()...)
	r := h.run(h.slurmEnv(jobA, h.user))
	h.promised(r, jobA, before)
	testutil.WaitGone(t, procs)
}

// rootOnlyFile makes a root-only (0600) file and opens it for the Epilog to inherit: no process
// of the user's may end up holding it. The file is closed when the test ends.
func rootOnlyFile(t *testing.T) (string, *os.File) {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "root-only")
	testutil.Must(t, os.WriteFile(secret, []byte("secret"), 0o600), "secret")
	f, err := os.Open(secret)
	testutil.Must(t, err, "open")
	t.Cleanup(func() { f.Close() })
	return secret, f
}

// TestAttackPipeGrabber: a process of the job's user copies the helper's descriptors as soon as
// the helper starts (pidfd_getfd) and holds them, so the helper's pipes never reach EOF. The
// root side reads the helper's answer with deadlines and never waits for EOF. The helper also
// must not carry a descriptor the Epilog inherited (a root-only file here). The helper makes
// itself non-dumpable first thing, so the copy mostly fails here (the findings say); the effect
// of a pipe held open is what pkg/reexec's TestBounds checks deterministically.
func TestAttackPipeGrabber(t *testing.T) {
	h := attackHarness(t)
	secret, f := rootOnlyFile(t)
	grabber := h.attack(h.user, "-mode", "grab", "-exe", epilogBin)
	for round := 0; round < 3; round++ {
		job := strconv.Itoa(520 + round)
		procs := h.tree(h.user, h.layout(h.user, job).Marker(8001))
		_, home := h.session(h.user, job, 8001, false, procs, "")
		manyFiles(t, filepath.Join(home, "profile"), h.user, 20_000) // a helper that lives a while
		before := testutil.Snapshot(t, h.world()...)
		env := h.slurmEnv(job, h.user)
		r := h.runWith(env, []*os.File{f})
		// The attacker's own findings file is the attacker's to change.
		h.promisedOrRanOut(r, job, before, env, grabber.Ready, grabber.Ready+".tmp")
		testutil.WaitGone(t, procs)
	}
	found := grabber.Findings()
	t.Logf("what the grabber copied:\n%s", found)
	if strings.Contains(found, secret) {
		t.Error("the helper carried the descriptor the Epilog inherited")
	}
}

// TestAttackInheritedDescriptor: the Epilog inherits a descriptor of a root-only file; neither
// the helper (the user's process) nor the scan child holds it while they run.
func TestAttackInheritedDescriptor(t *testing.T) {
	h := attackHarness(t)
	secret, f := rootOnlyFile(t)
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	_, home := h.session(h.user, jobA, 8001, false, procs, "")
	manyFiles(t, filepath.Join(home, "profile"), h.user, 50_000)
	stop := make(chan struct{})
	seen := make(chan []string, 1)
	go func() { seen <- watchChildren(stop, secret) }()
	before := testutil.Snapshot(t, h.world()...)
	env := h.slurmEnv(jobA, h.user)
	r := h.runWith(env, []*os.File{f})
	close(stop)
	h.promisedOrRanOut(r, jobA, before, env)
	got := <-seen
	t.Logf("children looked at: %v", got)
	for _, line := range got {
		if strings.Contains(line, "LEAK") {
			t.Error(line)
		}
	}
	if len(got) == 0 {
		t.Log("no child of the Epilog was caught while running (nothing to check this time)")
	}
}

// watchChildren polls for processes running the Epilog's binary other than the Epilog itself
// (the helper, the scan child) and reports each one once, with LEAK if one of its descriptors
// is secret.
func watchChildren(stop <-chan struct{}, secret string) []string {
	reported := map[int]bool{}
	var out []string
	for {
		select {
		case <-stop:
			return out
		default:
		}
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || reported[pid] {
				continue
			}
			if exe, _ := os.Readlink("/proc/" + e.Name() + "/exe"); exe != epilogBin {
				continue
			}
			fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
			if len(fds) == 0 {
				continue
			}
			st, _ := proc.ReadStat(pid)
			if st.PPID == os.Getpid() {
				continue // the Epilog itself
			}
			// Between fork and exec a child is still a copy of the Epilog, with every
			// descriptor (the close-on-exec ones close at the exec): only a child running its
			// subcommand (helper, scan) is what the user could reach.
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if args := strings.Split(string(cmdline), "\x00"); len(args) < 2 || (args[1] != "helper" && args[1] != "scan") {
				continue
			}
			reported[pid] = true
			line := fmt.Sprintf("pid %d: %d descriptors", pid, len(fds))
			for _, fd := range fds {
				if t, _ := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); t == secret {
					line = fmt.Sprintf("LEAK: pid %d holds the Epilog's inherited %s as fd %s", pid, secret, fd.Name())
				}
			}
			out = append(out, line)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAttackSquattedTemp: another user made <temp>/ffl-<uid> first (no Prolog here). The
// victim's launcher still gets a node-local dir (a private one, runtimedir.Prepare); its
// Epilog finds it (it sees the squat) and removes it, and leaves the squat alone. If the
// squatter removes its plant later, the sweep still finds the private dir.
func TestAttackSquattedTemp(t *testing.T) {
	h := attackHarness(t)
	squat := h.layout(h.user, jobA).FallbackRuntimeParent()
	testutil.MkdirAs(t, squat, h.other, 0o777)
	testutil.WriteAs(t, filepath.Join(squat, "plant"), h.other, []byte("mine"))
	for _, job := range []string{jobA, "530"} {
		dir, err := runtimedir.Prepare(h.layout(h.user, job)) // as the launcher would, for the victim
		if err != nil {
			t.Fatalf("a squat denied the victim a node-local dir: %v", err)
		}
		if !strings.HasPrefix(filepath.Base(filepath.Dir(dir)), layout.UserTempName(h.user.uid)+".") {
			t.Fatalf("Prepare = %s, want a private parent", dir)
		}
		procs := h.tree(h.user, h.layout(h.user, job).Marker(8001))
		h.sessionIn(h.user, job, 8001, dir, procs, "")
		if job != jobA {
			continue
		}
		before := testutil.Snapshot(t, h.world()...)
		r := h.run(h.slurmEnv(jobA, h.user))
		h.promised(r, jobA, before, filepath.Dir(dir))
		testutil.WaitGone(t, procs)
		if testutil.Exists(filepath.Dir(dir)) {
			t.Errorf("private parent %s not removed", filepath.Dir(dir))
		}
		if !testutil.Exists(filepath.Join(squat, "plant")) {
			t.Error("the squat was touched")
		}
	}
	// The squatter removes its plant; the victim's other job's private dir is found by the sweep.
	testutil.Must(t, os.RemoveAll(squat), "remove the squat")
	private, _ := filepath.Glob(filepath.Join(h.temp, layout.UserTempName(h.user.uid)+".*"))
	if len(private) != 1 {
		t.Fatalf("private parents: %v", private)
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range append(private, h.layout(h.user, "530").HomeJobDir()) {
		_ = filepath.Walk(p, func(q string, _ os.FileInfo, err error) error {
			if err == nil {
				_ = os.Chtimes(q, old, old)
			}
			return nil
		})
	}
	r := h.run([]string{"PATH=/usr/bin:/bin"}, "sweep", "--node", h.node, "--older-than", "24h", "--temp-older-than", "1h")
	if r.code != 0 || testutil.Exists(filepath.Join(private[0], layout.JobDirName("530"))) {
		t.Errorf("the sweep left the private job dir (exit %d)", r.code)
	}
}

// TestAttackLiveDisplayWithoutLock: the job's state names display :N, whose socket belongs to a
// live X server of the same user (another job, started by xpra 3.1's Xvfb -displayfd: no lock
// file). The socket stays (no listener may lose its socket); everything else of the job goes.
func TestAttackLiveDisplayWithoutLock(t *testing.T) {
	h := attackHarness(t)
	sockDir := filepath.Join(h.xdir, ".X11-unix")
	testutil.Must(t, os.Mkdir(sockDir, 0o755), "mkdir")
	testutil.Must(t, os.Chmod(sockDir, 0o777|os.ModeSticky), "chmod")
	sock := filepath.Join(sockDir, "X4402")
	server := h.attack(h.user, "-mode", "listen", "-socket", sock)
	var st syscall.Stat_t
	testutil.Must(t, syscall.Lstat(sock, &st), "lstat")
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, ":4402")
	before := testutil.Snapshot(t, h.world()...)
	r := h.run(h.slurmEnv(jobA, h.user))
	h.promised(r, jobA, before)
	testutil.WaitGone(t, procs)
	var after syscall.Stat_t
	if err := syscall.Lstat(sock, &after); err != nil || after.Ino != st.Ino {
		t.Errorf("the live server's socket was removed (%v)", err)
	}
	if id, err := proc.Lookup(server.PID()); err != nil || !id.Alive() {
		t.Error("the live server was ended")
	}
}
