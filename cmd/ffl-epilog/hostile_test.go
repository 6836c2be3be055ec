package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// The hostile-input suite: every case runs the real ffl-epilog binary as root with a Slurm-like
// environment against a job tree a user has booby-trapped, and asserts that nothing outside
// that job's subtree on this node was removed or changed, that no process of another user, job
// or session was signalled, that the exit status is 0, and that a log line names the problem.

const jobA = "500"

// victims makes two directories that must never be touched: root's, and another user's that
// the job's user could even write (0777), both shaped like every level of the layout, so that a
// cleanup following a symlink into one would find "its" job there and remove it.
func (h *harness) victims() (rootV, otherV string) {
	t := h.t
	mk := func(name string, owner testUser, dirMode, fileMode os.FileMode) string {
		v := filepath.Join(h.root, name)
		for _, rel := range []string{
			filepath.Join(layout.SessionsDir, h.node, layout.JobDirName(jobA), "session-8001"),
			filepath.Join(h.node, layout.JobDirName(jobA), "session-8001"),
			filepath.Join(layout.JobDirName(jobA), "session-8001"),
			"session-8001", "profile", "tmp",
		} {
			testutil.Must(t, os.MkdirAll(filepath.Join(v, rel), dirMode))
			testutil.Must(t, os.WriteFile(filepath.Join(v, rel, "password"), []byte("victim"), fileMode))
		}
		testutil.Must(t, os.WriteFile(filepath.Join(v, "file"), []byte("victim"), fileMode))
		testutil.Must(t, filepath.Walk(v, func(p string, fi os.FileInfo, err error) error {
			testutil.Must(t, err)
			testutil.Must(t, os.Lchown(p, owner.uid, owner.gid))
			mode := fileMode
			if fi.IsDir() {
				mode = dirMode
			}
			return os.Chmod(p, mode)
		}))
		return v
	}
	root := testUser{name: "root"}
	return mk("victim-root", root, 0o755, 0o644), mk("victim-other", h.other, 0o777, 0o666)
}

// jobPaths are the places job A of the user may occupy (allowed to change).
func (h *harness) jobPaths(u testUser, job string) []string {
	l := h.layout(u, job)
	return []string{l.PreferredRuntimeJobDir(), l.FallbackRuntimeJobDir(), l.HomeJobDir()}
}

func (h *harness) world() []string {
	return []string{h.root, h.stateDir(h.user), h.stateDir(h.other)}
}

func TestHostileSymlinks(t *testing.T) {
	type swap func(h *harness, victim string)
	// replace turns path into a symlink to target, owned by owner; the real entry moves aside
	// (where nothing may touch it either).
	replace := func(h *harness, path, target string, owner testUser) {
		testutil.Must(h.t, os.Rename(path, path+".aside"))
		testutil.SymlinkAs(h.t, target, path, owner)
	}
	for _, tc := range []struct {
		name     string
		fallback bool
		swap     swap
		problem  string
	}{
		{"state dir", false, func(h *harness, v string) { replace(h, h.stateDir(h.user), v, h.user) }, "symlink"},
		{"sessions dir", false, func(h *harness, v string) {
			replace(h, filepath.Join(h.stateDir(h.user), layout.SessionsDir), v, h.user)
		}, "symlink"},
		{"node dir", false, func(h *harness, v string) {
			replace(h, h.layout(h.user, jobA).HomeNodeDir(), v, h.user)
		}, "symlink"},
		{"home job dir", false, func(h *harness, v string) {
			replace(h, h.layout(h.user, jobA).HomeJobDir(), v, h.user)
		}, "is a symlink"},
		{"home session dir", false, func(h *harness, v string) {
			replace(h, h.layout(h.user, jobA).HomeSessionDir(8001), filepath.Join(v, "session-8001"), h.user)
		}, "is a symlink"},
		{"runtime job dir", false, func(h *harness, v string) {
			replace(h, h.layout(h.user, jobA).PreferredRuntimeJobDir(), v, h.user)
		}, "symlink"},
		{"runtime session dir", false, func(h *harness, v string) {
			replace(h, filepath.Join(h.layout(h.user, jobA).PreferredRuntimeJobDir(), "session-8001"), filepath.Join(v, "session-8001"), h.user)
		}, "symlink"},
		{"state file", false, func(h *harness, v string) {
			replace(h, filepath.Join(h.layout(h.user, jobA).PreferredRuntimeJobDir(), "session-8001", layout.StateFile), filepath.Join(v, "file"), h.user)
		}, "symlink"},
		{"supervisor file", false, func(h *harness, v string) {
			replace(h, filepath.Join(h.layout(h.user, jobA).PreferredRuntimeJobDir(), layout.SupervisorFile), filepath.Join(v, "file"), h.user)
		}, "symlink"},
		{"temp user dir planted by another user", true, func(h *harness, v string) {
			replace(h, h.layout(h.user, jobA).FallbackRuntimeParent(), v, h.other)
		}, "ffl-"},
		{"temp user dir as the user's own symlink", true, func(h *harness, v string) {
			replace(h, h.layout(h.user, jobA).FallbackRuntimeParent(), v, h.user)
		}, "symlink"},
		{"inside the trees", false, func(h *harness, v string) {
			l := h.layout(h.user, jobA)
			testutil.SymlinkAs(h.t, v, filepath.Join(l.PreferredRuntimeJobDir(), "session-8001", "tmp", "link"), h.user)
			testutil.SymlinkAs(h.t, filepath.Join(v, "file"), filepath.Join(l.HomeSessionDir(8001), "profile", "lock"), h.user)
			replace(h, filepath.Join(l.PreferredRuntimeJobDir(), "session-8001", layout.StateFile), filepath.Join(v, "file"), h.user)
		}, "symlink"},
	} {
		for _, target := range []string{"root's", "another user's"} {
			t.Run(tc.name+" to "+target, func(t *testing.T) {
				h := newHarness(t, "")
				rootV, otherV := h.victims()
				victim := rootV
				if target != "root's" {
					victim = otherV
				}
				procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
				h.session(h.user, jobA, 8001, tc.fallback, procs, "")
				tc.swap(h, victim)
				before := testutil.Snapshot(t, h.world()...)
				r := h.epilog(jobA, h.user)
				testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), h.jobPaths(h.user, jobA)...)
				if !strings.Contains(r.log, tc.problem) {
					t.Errorf("no log line names the problem (%q)", tc.problem)
				}
			})
		}
	}
}

// TestHostileSymlinkRace swaps directories of the trees for symlinks into the victims, over and
// over, while the Epilog removes them (root on the node-local side, the helper in the home).
func TestHostileSymlinkRace(t *testing.T) {
	h := newHarness(t, "")
	rootV, otherV := h.victims()
	rt, home := h.session(h.user, jobA, 8001, false, nil, "")
	var dirs []string
	for i := 0; i < 200; i++ {
		for _, base := range []string{filepath.Join(rt, "tmp"), filepath.Join(home, "profile")} {
			d := filepath.Join(base, fmt.Sprintf("d%03d", i))
			testutil.MkdirAs(t, filepath.Join(d, "sub"), h.user, 0o700)
			for j := 0; j < 5; j++ {
				testutil.WriteAs(t, filepath.Join(d, "sub", fmt.Sprintf("f%d", j)), h.user, []byte("data"))
			}
			dirs = append(dirs, d)
		}
	}
	before := testutil.Snapshot(t, h.world()...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			victims := []string{rootV, otherV}
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				d := dirs[(n*2+w)%len(dirs)]
				if os.Rename(d, d+".moved") != nil {
					continue
				}
				if os.Symlink(victims[n%2], d) == nil {
					_ = os.Lchown(d, h.user.uid, h.user.gid)
				}
				time.Sleep(time.Duration(n%3) * 50 * time.Microsecond)
				_ = os.Remove(d)
				_ = os.Rename(d+".moved", d)
			}
		}(w)
	}
	r := h.epilog(jobA, h.user)
	close(stop)
	wg.Wait()
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), h.jobPaths(h.user, jobA)...)
	if !strings.Contains(r.log, "epilog done") {
		t.Error("no summary line")
	}
}

// TestHostileStateFilesNameOtherProcesses: the state file names PID 1, a root process, another
// user's process, a reused PID, a process of the user outside the session, processes of another
// job and of the same job on another node; all carry markers that a careless scan would match.
// Only the session's own processes (the faketree with the job's marker) may be ended.
func TestHostileStateFilesNameOtherProcesses(t *testing.T) {
	h := newHarness(t, "")
	marker := h.layout(h.user, jobA).Marker(8001)
	rootC := h.canary(nil, layout.MarkerVar+"="+marker)
	otherC := h.canary(&h.other, layout.MarkerVar+"="+marker)
	sameC := h.canary(&h.user)
	jobBC := h.canary(&h.user, layout.MarkerVar+"="+h.layout(h.user, jobA+"0").Marker(8001))
	nodeC := h.canary(&h.user, layout.MarkerVar+"="+jobA+"/elsewhere/8001/")
	own := h.tree(h.user, marker)
	var one proc.Identity
	if st, err := proc.ReadStat(1); err == nil {
		one = proc.Identity{PID: 1, StartTime: st.StartTime, UID: h.user.uid}
	}
	asUser := func(id proc.Identity) proc.Identity { id.UID = h.user.uid; return id }
	reused := asUser(sameC.id)
	reused.StartTime++
	named := append([]proc.Identity{one, asUser(rootC.id), asUser(otherC.id), otherC.id, rootC.id, sameC.id, reused,
		jobBC.id, nodeC.id}, own...)
	h.session(h.user, jobA, 8001, false, named, "")
	before := testutil.Snapshot(t, h.world()...)
	r := h.epilog(jobA, h.user)
	testutil.WaitGone(t, own)
	for _, c := range []struct {
		c    *canary
		what string
	}{{rootC, "root's process"}, {otherC, "another user's process"}, {sameC, "the user's process outside the session"},
		{jobBC, "a process of another job"}, {nodeC, "a process of the job on another node"}} {
		c.c.untouched(t, c.what)
	}
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), h.jobPaths(h.user, jobA)...)
	for _, want := range []string{
		"state file names pid 1 ",
		fmt.Sprintf("pid %d (start %d, uid %d) runs as uid 0", rootC.id.PID, rootC.id.StartTime, h.user.uid),
		fmt.Sprintf("runs as uid %d", h.other.uid),
		fmt.Sprintf("names pid %d (start %d, uid %d), not of the job's uid", otherC.id.PID, otherC.id.StartTime, h.other.uid),
		fmt.Sprintf("pid %d (start %d, uid %d) does not carry", sameC.id.PID, sameC.id.StartTime, h.user.uid),
		fmt.Sprintf("pid %d (start %d, uid %d): the pid now belongs to a process started at", reused.PID, reused.StartTime, h.user.uid),
		fmt.Sprintf("pid %d (start %d, uid %d) does not carry", jobBC.id.PID, jobBC.id.StartTime, h.user.uid),
	} {
		if !strings.Contains(r.log, want) {
			t.Errorf("no log line says %q", want)
		}
	}
}

// TestHostileFiles covers garbage, oversized and binary records, FIFOs and sockets where records
// belong, a mode-000 directory, 100,000 files, nesting 5,000 deep and names with newlines.
func TestHostileFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(h *harness, rt, home string)
		problem string // a log line contains this ("" : the summary line suffices)
	}{
		{"garbage state file", func(h *harness, rt, home string) {
			testutil.WriteAs(h.t, filepath.Join(rt, layout.StateFile), h.user, []byte("{\"schema\":1,\"job\":\"500\",garbage"))
		}, "invalid state file"},
		{"huge state file", func(h *harness, rt, home string) {
			testutil.WriteAs(h.t, filepath.Join(rt, layout.StateFile), h.user, []byte(strings.Repeat(" ", 100<<10)+"{}"))
		}, "too large"},
		{"binary state file", func(h *harness, rt, home string) {
			b := make([]byte, 4096)
			_, _ = rand.Read(b)
			testutil.WriteAs(h.t, filepath.Join(rt, layout.StateFile), h.user, b)
		}, "invalid state file"},
		{"garbage supervisor record", func(h *harness, rt, home string) {
			testutil.WriteAs(h.t, filepath.Join(filepath.Dir(rt), layout.SupervisorFile), h.user, []byte("\x00\x01not json"))
		}, "supervisor record"},
		{"fifos and sockets", func(h *harness, rt, home string) {
			for _, p := range []string{filepath.Join(rt, layout.StateFile), filepath.Join(filepath.Dir(rt), layout.SupervisorFile), filepath.Join(home, "fifo")} {
				_ = os.Remove(p)
				testutil.Must(h.t, unix.Mkfifo(p, 0o600))
				testutil.Must(h.t, os.Lchown(p, h.user.uid, h.user.gid))
			}
			for _, p := range []string{filepath.Join(rt, "xpra", "sock"), filepath.Join(home, "sock")} {
				fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
				testutil.Must(h.t, err)
				testutil.Must(h.t, unix.Bind(fd, &unix.SockaddrUnix{Name: p}))
				unix.Close(fd)
				testutil.Must(h.t, os.Lchown(p, h.user.uid, h.user.gid))
			}
		}, "not a regular file"},
		{"mode 000 dirs and files", func(h *harness, rt, home string) {
			for _, d := range []string{filepath.Join(rt, "run"), filepath.Join(home, "profile")} {
				testutil.MkdirAs(h.t, filepath.Join(d, "locked", "inner"), h.user, 0o700)
				testutil.WriteAs(h.t, filepath.Join(d, "locked", "inner", "f"), h.user, []byte("x"))
				testutil.Must(h.t, os.Chmod(filepath.Join(d, "locked", "inner", "f"), 0))
				testutil.Must(h.t, os.Chmod(filepath.Join(d, "locked", "inner"), 0))
				testutil.Must(h.t, os.Chmod(filepath.Join(d, "locked"), 0))
			}
		}, ""},
		{"100000 files", func(h *harness, rt, home string) {
			manyFiles(h.t, filepath.Join(rt, "tmp"), h.user, 100_000)
		}, ""},
		{"nesting 5000 deep", func(h *harness, rt, home string) {
			deepTree(h.t, filepath.Join(rt, "cache"), h.user, 5000)
			deepTree(h.t, filepath.Join(home, "profile"), h.user, 5000)
		}, ""},
		{"names with newlines", func(h *harness, rt, home string) {
			for _, d := range []string{rt, home} {
				testutil.MkdirAs(h.t, filepath.Join(d, "dir\nlevel=error msg=forged"), h.user, 0o700)
				testutil.WriteAs(h.t, filepath.Join(d, "dir\nlevel=error msg=forged", "file\n\x01\x7f"), h.user, []byte("x"))
				testutil.WriteAs(h.t, filepath.Join(d, "session-8001\n"), h.user, []byte("x"))
			}
			testutil.MkdirAs(h.t, filepath.Join(h.runtime, "job-"+jobA+"\nforged"), h.user, 0o700)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "")
			procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
			rt, home := h.session(h.user, jobA, 8001, false, procs, "")
			tc.setup(h, rt, home)
			before := testutil.Snapshot(t, h.world()...)
			start := time.Now()
			r := h.epilog(jobA, h.user)
			t.Logf("epilog took %s", time.Since(start))
			testutil.WaitGone(t, procs)
			testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), h.jobPaths(h.user, jobA)...)
			for _, p := range h.jobPaths(h.user, jobA) {
				if testutil.Exists(p) {
					t.Errorf("%s not removed", p)
				}
			}
			if tc.problem != "" && !strings.Contains(r.log, tc.problem) {
				t.Errorf("no log line names the problem (%q)", tc.problem)
			}
			for _, line := range strings.Split(r.log, "\n") {
				if strings.HasPrefix(line, "level=error msg=forged") || strings.HasPrefix(line, "forged") {
					t.Errorf("a file name forged a log line: %q", line)
				}
			}
		})
	}
}

// manyFiles creates n empty files of u in dir.
func manyFiles(t testing.TB, dir string, u testUser, n int) {
	t.Helper()
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	testutil.Must(t, err)
	defer unix.Close(d)
	for i := 0; i < n; i++ {
		fd, err := unix.Openat(d, "f"+strconv.Itoa(i), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		testutil.Must(t, err)
		testutil.Must(t, unix.Fchown(fd, u.uid, u.gid))
		unix.Close(fd)
	}
}

// deepTree creates a chain of depth directories of u below dir (far beyond PATH_MAX).
func deepTree(t testing.TB, dir string, u testUser, depth int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	testutil.Must(t, err)
	for i := 0; i < depth; i++ {
		testutil.Must(t, unix.Mkdirat(fd, "d", 0o700))
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		testutil.Must(t, err)
		testutil.Must(t, unix.Fchown(next, u.uid, u.gid))
		unix.Close(fd)
		fd = next
	}
	unix.Close(fd)
}

// TestHostileEnvironment: a malformed job ID, uid or user name, or a user name that does not
// match the uid, leads to nothing done (not even on the job's own files), exit 0, and a log
// line naming the variable.
func TestHostileEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name, variable, value string
	}{
		{"job id not a number", "SLURM_JOB_ID", "abc"},
		{"job id a path", "SLURM_JOB_ID", "../../etc"},
		{"job id with a leading zero", "SLURM_JOB_ID", "0500"},
		{"job id missing", "SLURM_JOB", ""}, // drops SLURM_JOB_ID and SLURM_JOBID
		{"job ids disagree", "SLURM_JOBID", "501"},
		{"uid negative", "SLURM_JOB_UID", "-1"},
		{"uid not a number", "SLURM_JOB_UID", "1004; rm -rf /"},
		{"uid too large", "SLURM_JOB_UID", "99999999999"},
		{"uid missing", "SLURM_JOB_UID", ""},
		{"user name malformed", "SLURM_JOB_USER", "a b/../c"},
		{"user name an option", "SLURM_JOB_USER", "-rf"},
		{"user name of another uid", "SLURM_JOB_USER", "ffltest2"},
		{"node name a path", "SLURMD_NODENAME", "../n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "")
			procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
			h.session(h.user, jobA, 8001, false, procs, "")
			var env []string
			for _, kv := range h.slurmEnv(jobA, h.user) {
				if name, _, _ := strings.Cut(kv, "="); name != tc.variable && !(tc.variable == "SLURM_JOB" && (name == "SLURM_JOB_ID" || name == "SLURM_JOBID")) {
					env = append(env, kv)
				}
			}
			if tc.value != "" {
				env = append(env, tc.variable+"="+tc.value)
			}
			before := testutil.Snapshot(t, h.world()...)
			r := h.run(env)
			if r.code != 0 {
				t.Errorf("exit %d, want 0", r.code)
			}
			testutil.AssertAlive(t, "the job's session (the environment was not trusted)", procs)
			testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...))
			if !strings.Contains(r.log, tc.variable) {
				t.Errorf("no log line names %s", tc.variable)
			}
			if !strings.Contains(r.log, "nothing done") {
				t.Error("no log line says that nothing was done")
			}
		})
	}
}

// TestHostileMissingHome: the user's home does not exist. The node-local part is still cleaned;
// the helper says the home is missing.
func TestHostileMissingHome(t *testing.T) {
	h := newHarness(t, "")
	u := ensureUser(t, "ffltest3", "/nonexistent/ffltest3")
	procs := h.tree(u, h.layout(u, jobA).Marker(8001))
	l := h.layout(u, jobA)
	rt := filepath.Join(l.PreferredRuntimeJobDir(), "session-8001")
	testutil.MkdirAs(t, rt, u, 0o700)
	st := layout.State{Schema: 1, Job: jobA, Node: h.node, BootID: h.bootID, UID: u.uid, User: u.name, Port: 8001,
		Created: time.Now(), Marker: l.Marker(8001), Supervisor: deadID, Processes: procs}
	data, err := st.Marshal()
	testutil.Must(t, err)
	testutil.WriteAs(t, filepath.Join(rt, layout.StateFile), u, data)
	before := testutil.Snapshot(t, h.world()...)
	r := h.epilog(jobA, u)
	testutil.WaitGone(t, procs)
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), h.jobPaths(u, jobA)...)
	if testutil.Exists(l.PreferredRuntimeJobDir()) {
		t.Error("node-local job dir not removed")
	}
	if !strings.Contains(r.log, "home /nonexistent/ffltest3 of uid") || !strings.Contains(r.log, "does not exist") {
		t.Error("no log line says the home does not exist")
	}
}

// TestHostileSharedHomeOtherNode: the home is shared (NFS) and holds the same job's subtree for
// another node (same job id, same port); only this node's goes.
func TestHostileSharedHomeOtherNode(t *testing.T) {
	h := newHarness(t, "")
	procs := h.tree(h.user, h.layout(h.user, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, procs, "")
	other := h.layout(h.user, jobA)
	other.Node = "othernode"
	testutil.MkdirAs(t, filepath.Join(other.HomeSessionDir(8001), "profile"), h.user, 0o700)
	testutil.WriteAs(t, filepath.Join(other.HomeSessionDir(8001), layout.PasswordFile), h.user, []byte("other node"))
	before := testutil.Snapshot(t, h.world()...)
	r := h.epilog(jobA, h.user)
	testutil.WaitGone(t, procs)
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), h.jobPaths(h.user, jobA)...)
	if !testutil.Exists(other.HomeSessionDir(8001)) || testutil.Exists(h.layout(h.user, jobA).HomeJobDir()) {
		t.Error("wrong node's subtree removed")
	}
	if !strings.Contains(r.log, "sessions=1") {
		t.Error("summary line does not count the session")
	}
}

// TestRealLeftoverTree: job A with two sessions and job B of the same user, and another user,
// all with TERM-ignoring children and daemonized grandchildren carrying their markers, as after
// a SIGKILL of every launcher: the Epilog for job A ends exactly job A's processes.
func TestRealLeftoverTree(t *testing.T) {
	h := newHarness(t, "")
	la := h.layout(h.user, jobA)
	a1 := h.tree(h.user, la.Marker(8001))
	a2 := h.tree(h.user, la.Marker(8002))
	b := h.tree(h.user, h.layout(h.user, "600").Marker(8001))
	o := h.tree(h.other, h.layout(h.other, jobA).Marker(8001))
	h.session(h.user, jobA, 8001, false, a1, ":4301")
	h.session(h.user, jobA, 8002, false, a2[:1], "")
	h.session(h.user, "600", 8001, true, b, "")
	h.session(h.other, jobA, 8001, true, o, "")
	testutil.WriteAs(t, filepath.Join(h.xdir, ".X4301-lock"), h.user, []byte("  999999999\n"))
	before := testutil.Snapshot(t, h.world()...)
	r := h.epilog(jobA, h.user)
	testutil.WaitGone(t, append(a1, a2...))
	testutil.AssertAlive(t, "job B", b)
	testutil.AssertAlive(t, "another user", o)
	testutil.AssertUnchanged(t, before, testutil.Snapshot(t, h.world()...), append(h.jobPaths(h.user, jobA), filepath.Join(h.xdir, ".X4301-lock"))...)
	if testutil.Exists(filepath.Join(h.xdir, ".X4301-lock")) {
		t.Error("stale X lock of job A not removed")
	}
	for _, want := range []string{"sessions=2", "termed=6", "killed=2", "left=0", "errors=0"} {
		if !strings.Contains(r.log, want) {
			t.Errorf("summary line lacks %s", want)
		}
	}
}
