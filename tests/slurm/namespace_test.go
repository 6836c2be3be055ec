package slurm

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// 15. NamespaceType=namespace/linux with clone_ns_flags [CLONE_NEWPID] (Slurm 25.11+;
// PrologFlags=Contain, a namespace.yaml beside slurm.conf with a base_path per node): every
// job runs in a PID namespace of its own (with its own /proc), so the PIDs ffl-launch writes
// into its records are the job's, while the Prolog and Epilog (run by slurmd in the node's
// namespace) see the same processes under other PIDs.
//
// Two users' jobs start at once: each session answers its user (and not the other), the two
// displays differ, each xpra runs in a PID namespace that is not the node's, and the launchers'
// records name their namespace. A second job of the first user starts and ends beside the
// first (its Prolog and Epilog look at the first job's records from the node's namespace, where
// the recorded PIDs name other processes or none): the first session stays untouched. A
// process of the first user whose node PID is the PID the first launcher recorded (made so
// when that PID is free on the node; otherwise the process that holds it) is never signalled.
// Then one job is cancelled (its launcher's grace path runs) while the other stays untouched,
// and the other's launcher is SIGKILLed, then its job cancelled: the Epilog cleans up. Nothing
// is left (process, port, session dir, the job's dir under base_path), the node is not
// drained, and the doctor says PID namespaces are tested.
func scenarioNamespacePID(t *testing.T, c *Cluster, by *bystanders) {
	c.namespacePID(t, by, nsMode{})
}

// 16. Scenario 15's mode with PrologFlags=RunInJob (the extern step's slurmstepd runs the
// Prolog and Epilog in the job's cgroup, without joining its namespaces): two users' jobs at
// once, one cancelled, the other's launcher SIGKILLed and its job cancelled; nothing left, the
// other untouched.
func scenarioNamespacePIDRunInJob(t *testing.T, c *Cluster, by *bystanders) {
	c.namespacePID(t, by, nsMode{runInJob: true})
}

// 18. Scenario 15's mode with clone_ns_flags [CLONE_NEWPID, CLONE_NEWUSER] (no user_ns_script:
// Slurm maps every uid and gid to itself): 16's ends.
func scenarioNamespacePIDUser(t *testing.T, c *Cluster, by *bystanders) {
	c.namespacePID(t, by, nsMode{userNS: true})
}

// nsMode is what scenarios 15, 16 and 18 vary.
type nsMode struct {
	runInJob bool // PrologFlags=RunInJob
	userNS   bool // CLONE_NEWUSER too
}

// namespacePID is scenario 15 (the zero mode), 16 and 18 (without the second job and the
// decoy, which 15 covers: the hooks that would meet them run in the node's namespace there).
func (c *Cluster) namespacePID(t *testing.T, by *bystanders, mode nsMode) {
	runInJob := mode.runInJob
	if !slurmAtLeast(c.version, 25, 11) {
		t.Skipf("%s: NamespaceType=namespace/linux is new in Slurm 25.11", c.version)
	}
	by.stopAll(t) // a restart cancels running jobs: end the bystanders first, checked
	base := filepath.Join(c.dir, "namespace")
	flags := "Alloc,Contain"
	if runInJob {
		flags += ",RunInJob"
	}
	nsFlags := "CLONE_NEWPID"
	if mode.userNS {
		nsFlags += ",CLONE_NEWUSER"
	}
	if err := c.harness("reconfigure.sh", "SLURM_NAMESPACE_BASEPATH="+base, "SLURM_NAMESPACE_FLAGS="+nsFlags, "SLURM_PROLOG_FLAGS="+flags); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.harness("reconfigure.sh", "SLURM_NAMESPACE_BASEPATH=", "SLURM_NAMESPACE_FLAGS=", "SLURM_PROLOG_FLAGS=Alloc"); err != nil {
			t.Errorf("switching back: %v", err)
		}
		by.ensure(t)
	}()

	out, err := slurmtest.Output(context.Background(), nil, c.epilog, "doctor", "--slurm-conf", filepath.Join(c.confDir, "slurm.conf"))
	if err != nil {
		t.Errorf("ffl-epilog doctor under namespace/linux (PrologFlags=%s): %v\n%s", flags, err, out)
	}
	if !doctorLine(out, "PID namespace", " pass ", "CLONE_NEWPID", "tested with ffl") {
		t.Errorf("doctor: no passing line saying PID namespaces are tested:\n%s", out)
	}
	if runInJob && !doctorLine(out, "PrologFlags=RunInJob", " pass ", "namespace/linux", "tested with ffl") {
		t.Errorf("doctor: no passing line saying RunInJob with namespace/linux is tested:\n%s", out)
	}
	if mode.userNS && !doctorLine(out, "user namespace", " pass ", "CLONE_NEWUSER", "tested with ffl") {
		t.Errorf("doctor: no passing line saying user namespaces are tested:\n%s", out)
	}

	nodeNS, err := proc.SelfPIDNamespace()
	if err != nil {
		t.Fatal(err)
	}
	type session struct {
		j    *Job
		info lifecycle.Info
		rec  layout.Supervisor
	}
	var ss []session
	for _, name := range []string{"ffluser1", "ffluser2"} {
		ss = append(ss, session{j: c.submit(t, submitOpts{user: c.users[name]})})
	}
	for i := range ss {
		s := &ss[i]
		s.info = s.j.waitReady(t)
		c.assertRunning(t, s.j, s.info)
		other := ss[1-i].j.User
		if code := httpStatus(other, s.info.URL); code == http.StatusOK {
			t.Errorf("job %s of %s: %s answers %s with 200", s.j.ID, s.j.User.Name, s.info.URL, other.Name)
		}
		xpra := sessionXpra(t, s.j, s.info)
		if ns, err := proc.PIDNamespaceOf(xpra.PID); err != nil || ns == nodeNS {
			t.Errorf("job %s: xpra %v runs in PID namespace %d (%v), the node's is %d: CLONE_NEWPID not in effect", s.j.ID, xpra, ns, err, nodeNS)
		}
		if mode.userNS {
			own, _ := os.Readlink("/proc/self/ns/user")
			if u, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(xpra.PID), "ns", "user")); err != nil || u == own {
				t.Errorf("job %s: xpra %v runs in user namespace %q (%v), the node's is %q: CLONE_NEWUSER not in effect", s.j.ID, xpra, u, err, own)
			}
		}
		rec, err := s.j.supervisor()
		if err != nil {
			t.Fatal(err)
		}
		s.rec = rec
		launcher, res, err := proc.Resolve(context.Background(), s.rec.Process, s.rec.PIDNS)
		if res != proc.NSFound || s.rec.PIDNS == nodeNS {
			t.Errorf("job %s: supervisor record %v of PID namespace %d: %v (%v); want a live launcher in the job's namespace", s.j.ID, s.rec.Process, s.rec.PIDNS, res, err)
		}
		t.Logf("job %s of %s: display %s, port %d, xpra node pid %d, launcher recorded as pid %d of PID namespace %d, node pid %d",
			s.j.ID, s.j.User.Name, s.info.Display, s.info.Port, xpra.PID, s.rec.Process.PID, s.rec.PIDNS, launcher.PID)
	}
	if ss[0].info.Display == ss[1].info.Display {
		t.Errorf("jobs %s and %s share display %s", ss[0].j.ID, ss[1].j.ID, ss[0].info.Display)
	}
	if ss[0].info.Port == ss[1].info.Port {
		t.Errorf("jobs %s and %s share port %d", ss[0].j.ID, ss[1].j.ID, ss[0].info.Port)
	}

	var decoy proc.Identity
	var second *Job
	if mode == (nsMode{}) {
		// The number the first launcher recorded, on the node: a process of its user made to
		// hold it, or whatever holds it already. Either must outlive every hook below.
		decoy = pidDecoy(t, ss[0].j.User, ss[0].rec.Process.PID)

		// The first user's second job: its Prolog sweeps that user's sessions on the node and
		// its Epilog ends its own, both from the node's namespace, beside the first job's
		// records.
		second = c.submit(t, submitOpts{user: ss[0].j.User})
		info := second.waitReady(t)
		second.cancel(t)
		c.assertClean(t, second, []int{info.Port}, cleanOpts{})
		c.assertRunning(t, ss[0].j, ss[0].info)
	}

	ss[0].j.cancel(t)
	c.assertClean(t, ss[0].j, []int{ss[0].info.Port}, cleanOpts{})
	if d, err := gracePath(ss[0].j); err != nil {
		t.Error(err)
	} else {
		t.Logf("job %s (scancel): grace path %v", ss[0].j.ID, d)
	}
	c.assertRunning(t, ss[1].j, ss[1].info)
	ss[1].j.killLauncher(t)
	ss[1].j.cancel(t)
	c.assertClean(t, ss[1].j, []int{ss[1].info.Port}, cleanOpts{})
	if decoy.PID > 0 && !decoy.Alive() {
		t.Errorf("%v, the node's holder of the PID job %s's launcher recorded, did not survive the hooks", decoy, ss[0].j.ID)
	}
	if second != nil {
		ss = append(ss, session{j: second})
	}
	for _, s := range ss {
		if _, err := os.Lstat(filepath.Join(base, c.node, s.j.ID)); !os.IsNotExist(err) {
			t.Errorf("job %s: its dir under base_path %s is left (%v)", s.j.ID, filepath.Join(base, c.node), err)
		}
	}
}

// sessionXpra returns the xpra of a session, as the node sees it.
func sessionXpra(t *testing.T, j *Job, info lifecycle.Info) proc.Identity {
	t.Helper()
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.Layout.Marker(info.Port))
	i := slices.IndexFunc(ids, func(id proc.Identity) bool {
		st, err := proc.ReadStat(id.PID)
		return err == nil && st.Comm == "xpra"
	})
	if i < 0 {
		t.Fatalf("job %s: no xpra among %v", j.ID, slurmtest.Comms(ids))
	}
	return ids[i]
}

// pidDecoy returns the node's process with PID pid: when none has it, a `sleep` of user u made
// to get it (the kernel's next PID set through ns_last_pid), stopped when the test ends. It
// returns the zero Identity (and says why) when the PID cannot be had.
func pidDecoy(t *testing.T, u User, pid int) proc.Identity {
	t.Helper()
	if id, err := proc.Lookup(pid); err == nil {
		t.Logf("node pid %d (the number the launcher recorded) is held by %v already: it is the decoy", pid, id)
		return id
	}
	for try := 0; try < 20; try++ {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Logf("no decoy at node pid %d: %v", pid, err)
			return proc.Identity{}
		}
		cmd := exec.Command("/bin/sleep", "600")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		if err := cmd.Start(); err != nil {
			t.Fatalf("decoy: %v", err)
		}
		if cmd.Process.Pid != pid {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			continue // another process took the PID first
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		id, err := proc.Lookup(pid)
		if err != nil {
			t.Fatalf("decoy: %v", err)
		}
		t.Logf("decoy: %v, a sleep of %s at the node pid the launcher recorded", id, u.Name)
		return id
	}
	t.Logf("no decoy at node pid %d: another process took it every time", pid)
	return proc.Identity{}
}
