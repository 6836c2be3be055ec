package slurm

import (
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// 13. SignalChildrenProcesses=yes in cgroup.conf (Slurm 23.11+): scancel and the time limit
// send SIGTERM to xpra and Firefox at the same moment as to ffl-launch.
func scenarioSignalChildren(t *testing.T, c *Cluster, by *bystanders) {
	if !slurmAtLeast(c.version, 23, 11) {
		t.Skipf("%s: SignalChildrenProcesses is new in Slurm 23.11", c.version)
	}
	c.endsUnderMode(t, by, []string{"SLURM_CGROUP_CONF_EXTRA=SignalChildrenProcesses=yes"}, []string{"SLURM_CGROUP_CONF_EXTRA="})
}

// 14. PrologFlags=RunInJob (Slurm 24.05+): the Prolog and Epilog run inside the job's extern
// step, in its cgroup (and, with a job container, its namespace).
func scenarioRunInJob(t *testing.T, c *Cluster, by *bystanders) {
	if !slurmAtLeast(c.version, 24, 5) {
		t.Skipf("%s: PrologFlags=RunInJob is new in Slurm 24.05", c.version)
	}
	c.endsUnderMode(t, by, []string{"SLURM_PROLOG_FLAGS=Alloc,Contain,RunInJob"}, []string{"SLURM_PROLOG_FLAGS=Alloc"})
}

// 17. Scenario 14 with its scancel only (the time limit costs a minute more): where CI runs
// 14 on one Slurm, 17 shows RunInJob's scancel on another.
func scenarioRunInJobScancel(t *testing.T, c *Cluster, by *bystanders) {
	if !slurmAtLeast(c.version, 24, 5) {
		t.Skipf("%s: PrologFlags=RunInJob is new in Slurm 24.05", c.version)
	}
	c.endsUnderMode(t, by, []string{"SLURM_PROLOG_FLAGS=Alloc,Contain,RunInJob"}, []string{"SLURM_PROLOG_FLAGS=Alloc"}, "scancel")
}

// endsUnderMode switches the cluster to knobs, then ends two users' sessions at once, one by
// scancel, one by its time limit (the script without --signal: the first notice is the SIGTERM
// at the limit), and checks that each ran its grace path and left nothing (process, port,
// session dir; node not drained). It switches back with restore. only names the ends to run
// ("scancel", "time_limit"; none: both).
func (c *Cluster) endsUnderMode(t *testing.T, by *bystanders, knobs, restore []string, only ...string) {
	t.Helper()
	by.stopAll(t) // a restart cancels running jobs: end the bystanders first, checked
	if err := c.harness("reconfigure.sh", knobs...); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.harness("reconfigure.sh", restore...); err != nil {
			t.Errorf("switching back: %v", err)
		}
		by.ensure(t)
	}()
	t.Logf("%s, proctrack/%s, %v", c.version, c.proctrack, knobs)
	noSignal := noSignalScript(t, c)
	cases := []struct {
		name, user, want string
		opts             submitOpts
	}{
		{"scancel", "ffluser1", "CANCELLED", submitOpts{}},
		{"time_limit", "ffluser2", "TIMEOUT", submitOpts{script: noSignal, flags: []string{"--time=1"}}},
	}
	t.Run("ends", func(t *testing.T) {
		for _, tc := range cases {
			if len(only) > 0 && !slices.Contains(only, tc.name) {
				continue
			}
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				o := tc.opts
				o.user = c.users[tc.user]
				j := c.submit(t, o)
				info := j.waitReady(t)
				if tc.name == "scancel" {
					j.cancel(t)
				}
				j.waitGone(t, 4*time.Minute)
				c.assertClean(t, j, []int{info.Port}, cleanOpts{})
				if st, _ := j.state(); st != tc.want {
					t.Errorf("job %s (%s): state %s, want %s", j.ID, tc.name, st, tc.want)
				}
				if d, err := gracePath(j); err != nil {
					t.Error(err)
				} else {
					t.Logf("job %s (%s): grace path %v", j.ID, tc.name, d)
				}
			})
		}
	})
}

var slurmVersionRE = regexp.MustCompile(`(\d+)\.(\d+)`)

// slurmAtLeast reports whether `scontrol --version`'s answer ("slurm 24.11.5",
// "slurm-wlm 22.05.8") is at least major.minor.
func slurmAtLeast(version string, major, minor int) bool {
	m := slurmVersionRE.FindStringSubmatch(version)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return ma > major || (ma == major && mi >= minor)
}
