package slurm

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

// 12. JobContainerType=job_container/tmpfs (PrologFlags=Alloc,Contain): every job runs in a
// mount namespace of its own with a private /tmp and /dev/shm, so its X server's lock and socket
// live where neither the Prolog nor the Epilog (run by slurmd, outside the job) can see them.
// Two users' jobs start at once: each session answers its user and its X socket is in its
// own job's /tmp (seen through /proc/PID/root of its xpra), not the node's. One job is
// cancelled while the other runs (the other stays untouched); the other's launcher is
// SIGKILLed before its cancel, so the Epilog must clean up from the runtime dir alone. Nothing is
// left: no process, port, session dir, and no job dir under BasePath (Slurm's job_container
// removes it). The doctor, run against this slurm.conf, says the mode was tested.
func scenarioJobContainerTmpfs(t *testing.T, c *Cluster, by *bystanders) {
	by.stopAll(t) // a restart cancels running jobs: end the bystanders first, checked
	base := filepath.Join(c.dir, "job_container")
	if err := c.harness("reconfigure.sh", "SLURM_JOB_CONTAINER_BASEPATH="+base, "SLURM_PROLOG_FLAGS=Alloc,Contain"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.harness("reconfigure.sh", "SLURM_JOB_CONTAINER_BASEPATH=", "SLURM_PROLOG_FLAGS=Alloc"); err != nil {
			t.Errorf("switching back: %v", err)
		}
		by.ensure(t)
	}()

	out, err := slurmtest.Output(context.Background(), nil, c.epilog, "doctor", "--slurm-conf", filepath.Join(c.confDir, "slurm.conf"))
	if err != nil {
		t.Errorf("ffl-epilog doctor under job_container/tmpfs: %v\n%s", err, out)
	}
	if !doctorLine(out, "per-job namespace", " pass ", "job_container/tmpfs", "tested with ffl") {
		t.Errorf("doctor: no passing line saying job_container/tmpfs is tested:\n%s", out)
	}

	type session struct {
		j    *Job
		info lifecycle.Info
	}
	var ss []session
	for _, name := range []string{"ffluser1", "ffluser2"} {
		j := c.submit(t, submitOpts{user: c.users[name]})
		ss = append(ss, session{j: j})
	}
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	for i := range ss {
		s := &ss[i]
		s.info = s.j.waitReady(t)
		c.assertRunning(t, s.j, s.info)
		n, err := xdisplay.Parse(s.info.Display)
		if err != nil {
			t.Fatalf("job %s: %v", s.j.ID, err)
		}
		ids, _ := proc.FindByMarker(s.j.User.UID, layout.MarkerVar, s.j.Layout.Marker(s.info.Port))
		xpra := slices.IndexFunc(ids, func(id proc.Identity) bool {
			st, err := proc.ReadStat(id.PID)
			return err == nil && st.Comm == "xpra"
		})
		if xpra < 0 {
			t.Fatalf("job %s: no xpra among %v", s.j.ID, slurmtest.Comms(ids))
		}
		pid := strconv.Itoa(ids[xpra].PID)
		if mnt, _ := os.Readlink("/proc/" + pid + "/ns/mnt"); mnt == "" || mnt == hostMnt {
			t.Errorf("job %s: xpra %s runs in mount namespace %q, the node's is %q: job_container/tmpfs not in effect", s.j.ID, pid, mnt, hostMnt)
		}
		sock := filepath.Join("/proc", pid, "root", "tmp", xdisplay.SocketDirName, "X"+strconv.Itoa(n))
		if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("job %s: display %s has no socket in the job's private /tmp (%s): %v", s.j.ID, s.info.Display, sock, err)
		}
		t.Logf("job %s of %s: display %s, port %d, xpra %s in its own /tmp", s.j.ID, s.j.User.Name, s.info.Display, s.info.Port, pid)
	}
	if ss[0].info.Port == ss[1].info.Port {
		t.Errorf("jobs %s and %s share port %d", ss[0].j.ID, ss[1].j.ID, ss[0].info.Port)
	}

	ss[0].j.cancel(t)
	c.assertClean(t, ss[0].j, []int{ss[0].info.Port}, cleanOpts{})
	c.assertRunning(t, ss[1].j, ss[1].info)
	ss[1].j.killLauncher(t)
	ss[1].j.cancel(t)
	c.assertClean(t, ss[1].j, []int{ss[1].info.Port}, cleanOpts{})
	for _, s := range ss {
		if _, err := os.Lstat(filepath.Join(base, s.j.ID)); !os.IsNotExist(err) {
			t.Errorf("job %s: its private /tmp under %s is left (%v)", s.j.ID, base, err)
		}
	}
}

// doctorLine reports whether the doctor's output has a line that starts with check and
// contains every one of want.
func doctorLine(out, check string, want ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, check) && !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) }) {
			return true
		}
	}
	return false
}
