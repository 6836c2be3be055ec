package slurm

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// TestMultiNode checks ffl's per-(node, job, port) layout on a real multi-node Slurm
// (multinode.sh): three nodes, each with its own /run, /tmp, loopback, process table and boot
// id, one shared /home, ffl-prolog and ffl-epilog on every node. Every scenario ends with the
// promise on all nodes: no process of its jobs, no directory of its jobs (node-local or in the
// home, for any node), their ports free, no node drained. `make multinode-test`.
func TestMultiNode(t *testing.T) {
	c := startMultiCluster(t)
	t0 := time.Now()
	scenarios := []struct {
		name string
		run  func(*testing.T, *MultiCluster)
	}{
		{"01_same_user_same_port_two_nodes", mnSamePortTwoNodes},
		{"02_one_job_two_nodes", mnOneJobTwoNodes},
		{"03_kill_9_launcher_on_one_node", mnKillLauncherOneNode},
		{"04_node_reboot", mnNodeReboot},
	}
	var runs []slurmtest.Scenario
	for _, sc := range scenarios {
		runs = append(runs, slurmtest.Scenario{
			Name: sc.name,
			Run:  func(t *testing.T) { sc.run(t, c) },
		})
	}
	t.Logf("multi-node scenarios (%d nodes, KillWait %v):\n%s", len(c.nodes), mnKillWait, slurmtest.RunScenarios(t, runs, "total (cluster up)", t0))
}

// 1. The same user, the same port, two jobs on two nodes at once: each node has its own
// loopback, so both sessions get the port; each answers on its own node; the two home subtrees
// sit side by side in the one home. Cancelling one leaves the other's session and home subtree
// intact; its Epilog names nothing of the other node.
func mnSamePortTwoNodes(t *testing.T, c *MultiCluster) {
	u := c.users["ffluser1"]
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	port := c.portMin + 10 + rand.IntN(80)
	args := []string{"--json", "--port", strconv.Itoa(port)}
	a := c.submit(t, mnSubmit{user: u, nodes: []*Node{n1}, args: args})
	b := c.submit(t, mnSubmit{user: u, nodes: []*Node{n2}, args: args})
	ia, ib := a.waitReady(t)[n1.Name], b.waitReady(t)[n2.Name]
	if ia.Port != port || ib.Port != port {
		t.Fatalf("asked both jobs for port %d on their own nodes: job %s got %d on %s, job %s got %d on %s", port, a.ID, ia.Port, n1.Name, b.ID, ib.Port, n2.Name)
	}
	if !n3.portFree(t, port) {
		t.Errorf("port %d listens on %s, where no job runs", port, n3.Name)
	}
	for _, p := range []string{a.layout(n1).HomeSessionDir(port), b.layout(n2).HomeSessionDir(port)} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("home subtree: %v", err)
		}
	}
	a.cancel(t)
	c.assertClean(t, a, map[string][]int{n1.Name: {port}}, mnClean{})
	b.assertRunning(t, n2, ib)
	assertOwnPartOnly(t, c, a)
	b.cancel(t)
	c.assertClean(t, b, map[string][]int{n2.Name: {port}}, mnClean{})
	assertOwnPartOnly(t, c, b)
}

// 2. One job on two nodes (`srun ffl-launch run`, one task per node): a session per node,
// both answering on their own node. scancel reaches both launchers; both nodes' Epilogs run and
// each touches only its own node's part. Two variants at once: the launchers' grace paths clean
// up (the Epilogs find little), and the launchers die at their grace step (FFL_FAILPOINT), so
// that each Epilog has its node's whole part to remove.
func mnOneJobTwoNodes(t *testing.T, c *MultiCluster) {
	variants := []struct {
		name  string
		nodes []*Node
		env   []string
	}{
		{"scancel", []*Node{c.nodes[0], c.nodes[1]}, nil},
		{"launchers_die_in_grace", []*Node{c.nodes[1], c.nodes[2]}, []string{"FFL_FAILPOINT=" + lifecycle.StepGrace}},
	}
	t.Run("variants", func(t *testing.T) {
		for _, v := range variants {
			t.Run(v.name, func(t *testing.T) {
				t.Parallel()
				j := c.submit(t, mnSubmit{user: c.users["ffluser2"], nodes: v.nodes, env: v.env})
				infos := j.waitReady(t)
				ports := map[string][]int{}
				for _, n := range v.nodes {
					j.assertRunning(t, n, infos[n.Name])
					ports[n.Name] = []int{infos[n.Name].Port}
				}
				t.Logf("job %s: sessions %s:%d and %s:%d", j.ID, v.nodes[0].Name, infos[v.nodes[0].Name].Port, v.nodes[1].Name, infos[v.nodes[1].Name].Port)
				j.cancel(t)
				sums := c.assertClean(t, j, ports, mnClean{})
				for _, n := range v.nodes {
					log := j.launcherLog(n.Name)
					if _, ok := findLog(log, "signal received"); !ok {
						t.Errorf("job %s: the launcher on %s never got scancel's SIGTERM", j.ID, n.Name)
					}
					_, graced := findLog(log, "grace path done")
					if v.env == nil && !graced {
						t.Errorf("job %s: the launcher on %s did not finish its grace path", j.ID, n.Name)
					}
					if v.env != nil {
						if graced {
							t.Errorf("job %s: the launcher on %s finished its grace path despite FFL_FAILPOINT", j.ID, n.Name)
						}
						// Its own session only: the other node's would make it 2.
						if sum := sums[n.Name]; sum.fields["fast"] != "false" || sum.fields["sessions"] != "1" {
							t.Errorf("job %s: the Epilog on %s after its launcher died: %s, want fast=false sessions=1", j.ID, n.Name, sum.raw)
						}
					}
				}
				assertOwnPartOnly(t, c, j)
			})
		}
	})
}

// 3. kill -9 of the launcher on one node of a two-node job: the other node's session runs on,
// untouched (srun keeps the job's other task); at the job's end the first node's Epilog ends
// and removes what the dead launcher left there, the other node's launcher cleans up its own,
// and neither side's cleanup names the other node.
func mnKillLauncherOneNode(t *testing.T, c *MultiCluster) {
	victim, other := c.nodes[1], c.nodes[2]
	j := c.submit(t, mnSubmit{user: c.users["ffluser1"], nodes: []*Node{victim, other}})
	infos := j.waitReady(t)
	launchers := j.launcherOn(t, victim)
	if len(launchers) != 1 {
		t.Fatalf("job %s: want one ffl-launch on %s, found %v", j.ID, victim.Name, slurmtest.Describe(launchers))
	}
	if err := proc.Signal(launchers[0], unix.SIGKILL); err != nil {
		t.Fatalf("SIGKILL ffl-launch %v on %s: %v", launchers[0], victim.Name, err)
	}
	t.Logf("job %s: SIGKILL to ffl-launch %v on %s", j.ID, launchers[0], victim.Name)
	if !slurmtest.WaitUntil(20*time.Second, func() bool { return len(j.launcherOn(t, victim)) == 0 }) {
		t.Fatalf("job %s: ffl-launch on %s survived SIGKILL", j.ID, victim.Name)
	}
	// What the launcher left on its node, as far as Slurm let it live (proctrack/cgroup ends a
	// node's step processes when its task is gone).
	time.Sleep(2 * time.Second)
	left, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.layout(victim).JobMarkerPrefix())
	victimRT := victim.path(t, j.layout(victim).PreferredRuntimeJobDir())
	_, rtErr := os.Lstat(victimRT)
	_, homeErr := os.Lstat(j.layout(victim).HomeJobDir())
	t.Logf("job %s on %s after the SIGKILL: %d session processes left, runtime dir: %v, home subtree: %v", j.ID, victim.Name, len(left), slurmtest.ErrOrOK(rtErr), slurmtest.ErrOrOK(homeErr))
	if rtErr != nil || homeErr != nil {
		t.Errorf("job %s: the dead launcher's directories on %s are gone before the job ended (who removed them?)", j.ID, victim.Name)
	}
	j.assertRunning(t, other, infos[other.Name])
	j.cancel(t)
	sums := c.assertClean(t, j, map[string][]int{victim.Name: {infos[victim.Name].Port}, other.Name: {infos[other.Name].Port}}, mnClean{})
	// The victim's Epilog removes its node's session (one: the other node's would make it 2);
	// the other node's launcher had cleaned up its own, so its Epilog finds none.
	if sum := sums[victim.Name]; sum.fields["fast"] != "false" || sum.fields["sessions"] != "1" {
		t.Errorf("job %s: the Epilog on %s after its launcher was SIGKILLed: %s, want fast=false sessions=1", j.ID, victim.Name, sum.raw)
	}
	if sum := sums[other.Name]; sum.fields["sessions"] != "0" {
		t.Errorf("job %s: the Epilog on %s found sessions its launcher should have removed: %s", j.ID, other.Name, sum.raw)
	}
	if _, ok := findLog(j.launcherLog(other.Name), "grace path done"); !ok {
		t.Errorf("job %s: the launcher on %s did not finish its grace path", j.ID, other.Name)
	}
	assertOwnPartOnly(t, c, j)
}

// 4. A node reboots: a power cut (all its processes die at once, its /run and /tmp with them),
// slurmctld declares it DOWN after SlurmdTimeout and ends its jobs as NODE_FAIL, then it boots
// (empty /run and /tmp, a new boot id) and returns to service. Meanwhile the same user has a
// session on another node. The home subtrees of the node's jobs stay behind. No other node
// removes them: not while their jobs could still be live (before the power cut, and while Slurm
// still counts them as running), not after (when they are stale by every rule): neither the
// other node's Prolog nor its sweep. On the rebooted node the user's first Prolog after the
// reboot (its seen record names the old boot) removes the user's subtree, and the sweep removes
// another user's who has no job there (the seen records make it visit the user). (A reboot
// takes minutes; the subtrees are backdated by two hours so that the test need not wait
// reclaim.RecordlessGrace or the sweep's --older-than.)
func mnNodeReboot(t *testing.T, c *MultiCluster) {
	u1, u2 := c.users["ffluser1"], c.users["ffluser2"]
	n1, n2 := c.nodes[0], c.nodes[1]
	j1 := c.submit(t, mnSubmit{user: u1, nodes: []*Node{n1}})
	j2 := c.submit(t, mnSubmit{user: u2, nodes: []*Node{n1}})
	j3 := c.submit(t, mnSubmit{user: u1, nodes: []*Node{n2}})
	i1, i2, i3 := j1.waitReady(t)[n1.Name], j2.waitReady(t)[n1.Name], j3.waitReady(t)[n2.Name]
	home1, home2 := j1.layout(n1).HomeJobDir(), j2.layout(n1).HomeJobDir()
	mustExist := func(when string, paths ...string) {
		t.Helper()
		for _, p := range paths {
			if _, err := os.Lstat(p); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
	}

	// While n1's jobs live, n2's Prolog (which sweeps ffluser1: j3 is there) and sweep leave
	// n1's subtrees alone.
	p1 := c.submit(t, mnSubmit{user: u1, nodes: []*Node{n2}, wrap: "sleep 600"})
	p1.waitRunning(t)
	if s := n2.hookSummary(t, p1.ID, "prolog done"); s.fields["swept"] != "true" {
		t.Errorf("job %s: the Prolog on %s did not sweep %s's sessions (j3 is there): %s", p1.ID, n2.Name, u1.Name, s.raw)
	}
	t.Logf("sweep on %s (live jobs on %s): %s", n2.Name, n1.Name, n2.run(t, c.epilog, "sweep", "--older-than", "0s", "--temp-older-than", "0s"))
	mustExist("other node's Prolog and sweep while the jobs live", home1, home2)
	j1.assertRunning(t, n1, i1)
	j2.assertRunning(t, n1, i2)
	j3.assertRunning(t, n2, i3)

	// The power cut: every process of n1 dies at once. Until slurmctld notices (SlurmdTimeout)
	// its jobs are RUNNING as far as Slurm knows: n2 must still leave their subtrees alone.
	oldInit := n1.mustInit(t)
	c.crash(t, n1)
	for _, j := range []*MJob{j1, j2} {
		if ids := j.jobProcs(t); len(ids) > 0 {
			t.Errorf("job %s: processes outlived the power cut of %s: %v", j.ID, n1.Name, slurmtest.Describe(ids))
		}
	}
	st1, _ := j1.state()
	t.Logf("sweep on %s (%s down, job %s %s to Slurm): %s", n2.Name, n1.Name, j1.ID, st1, n2.run(t, c.epilog, "sweep", "--older-than", "0s", "--temp-older-than", "0s"))
	mustExist("other node's sweep while the node is down", home1, home2)
	// slurmctld declares n1 DOWN after SlurmdTimeout and ends its jobs (JobRequeue=0).
	for _, j := range []*MJob{j1, j2} {
		j.waitGone(t)
		st, code := j.state()
		t.Logf("job %s after %s's power cut: %s (exit %s)", j.ID, n1.Name, st, code)
		if st != "NODE_FAIL" {
			t.Errorf("job %s: state %s after its node went down, want NODE_FAIL", j.ID, st)
		}
	}
	t.Logf("%s before the boot: %s", n1.Name, n1.state())
	c.boot(t, n1)
	if n1.mustInit(t) == oldInit {
		t.Fatalf("%s has the same PID 1 after the reboot", n1.Name)
	}
	for _, j := range []*MJob{j1, j2} {
		for _, p := range []string{n1.path(t, j.layout(n1).PreferredRuntimeJobDir()), n1.path(t, j.layout(n1).FallbackRuntimeJobDir())} {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("job %s: %s after the reboot (%v)", j.ID, p, err)
			}
		}
	}
	mustExist("after the reboot (the home keeps what the node had)", home1, home2)
	j3.assertRunning(t, n2, i3)

	// Stale now by every rule; still, the other node never removes them.
	c.backdate(t, u1, home1, 2*time.Hour)
	c.backdate(t, u2, home2, 2*time.Hour)
	t.Logf("sweep on %s (stale subtrees of %s): %s", n2.Name, n1.Name, n2.run(t, c.epilog, "sweep", "--older-than", "0s", "--temp-older-than", "0s"))
	p2 := c.submit(t, mnSubmit{user: u1, nodes: []*Node{n2}, wrap: "sleep 600"})
	p2.waitRunning(t)
	if s := n2.hookSummary(t, p2.ID, "prolog done"); s.fields["swept"] != "true" {
		t.Errorf("job %s: the Prolog on %s did not sweep: %s", p2.ID, n2.Name, s.raw)
	}
	mustExist("other node's Prolog and sweep after the reboot", home1, home2)

	// On n1: ffluser1's first Prolog after the reboot. /run was wiped, so nothing node-local
	// says the user had sessions here; the Prolog's seen record (on the node's disk) names the
	// boot before, so it sweeps the user's sessions and removes the stale subtree.
	k1 := c.submit(t, mnSubmit{user: u1, nodes: []*Node{n1}, wrap: "sleep 600"})
	k1.waitRunning(t)
	s1 := n1.hookSummary(t, k1.ID, "prolog done")
	if s1.fields["swept"] != "true" {
		t.Errorf("job %s: the first Prolog on %s after the reboot did not sweep: %s", k1.ID, n1.Name, s1.raw)
	}
	if _, err := os.Lstat(home1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale %s is still there after the first Prolog on %s after the reboot (job %s, swept=%s): %v", home1, n1.Name, k1.ID, s1.fields["swept"], err)
	}
	if !hasRemoval(n1, j1) {
		t.Errorf("no line in %s's log says it removed job %s", n1.Name, j1.ID)
	}
	k2 := c.submit(t, mnSubmit{user: u1, nodes: []*Node{n1}, wrap: "sleep 600"})
	k2.waitRunning(t)
	if s2 := n1.hookSummary(t, k2.ID, "prolog done"); s2.fields["swept"] == "true" {
		t.Logf("job %s: the second Prolog swept too (%s has node-local state now)", k2.ID, u1.Name)
	}

	// ... and the sweep on n1 removes ffluser2's, although ffluser2 has no job and no
	// node-local state there any more: the seen records make the sweep visit the user.
	out := n1.run(t, c.epilog, "sweep", "--older-than", "1h")
	t.Logf("sweep on %s: %s", n1.Name, out)
	if !strings.Contains(out, "job "+j2.ID+" on "+n1.Name) {
		t.Errorf("the sweep on %s does not say it removed job %s", n1.Name, j2.ID)
	}
	if _, err := os.Lstat(home2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale %s is still there after the sweep on %s (%v)", home2, n1.Name, err)
	}
	k3 := c.submit(t, mnSubmit{user: u2, nodes: []*Node{n1}, wrap: "sleep 600"})
	k3.waitRunning(t)

	// What the sweeps and Prologs must not have touched.
	j3.assertRunning(t, n2, i3)
	for _, k := range []*MJob{k1, k2, k3, p1, p2} {
		if st, _ := k.state(); st != "RUNNING" {
			t.Errorf("job %s: %s, want RUNNING", k.ID, st)
		}
	}
	for _, j := range []*MJob{j3, k1, k2, k3, p1, p2} {
		j.cancel(t)
	}
	c.assertClean(t, j3, map[string][]int{n2.Name: {i3.Port}}, mnClean{})
	for _, k := range []*MJob{k1, k2, k3, p1, p2} {
		c.assertClean(t, k, nil, mnClean{})
	}
	// j1 and j2 died with their node: slurmctld may send their Epilog to the rebooted node or
	// not; either way nothing of them is left anywhere.
	for _, j := range []*MJob{j1, j2} {
		c.assertClean(t, j, map[string][]int{n1.Name: {i1.Port, i2.Port}}, mnClean{epilogOptional: map[string]bool{n1.Name: true}})
	}
	for _, j := range []*MJob{j1, j2, j3} {
		assertOwnPartOnly(t, c, j)
	}
}

// assertOwnPartOnly: no Prolog/Epilog line of job j on a node names another node (the layout
// keys everything by node, so a node's cleanup has no business there).
func assertOwnPartOnly(t *testing.T, c *MultiCluster, j *MJob) {
	t.Helper()
	for _, n := range j.Nodes {
		for _, l := range n.jobLines(j) {
			for _, other := range c.nodes {
				if other != n && strings.Contains(l.raw, other.Name) {
					t.Errorf("job %s: %s's log names %s: %s", j.ID, n.Name, other.Name, l.raw)
				}
			}
		}
	}
}

// hasRemoval: node n's log says a sweep there (the Prolog's or ffl-epilog sweep) removed job j.
func hasRemoval(n *Node, j *MJob) bool {
	for _, l := range n.epilogLines() {
		if strings.HasPrefix(l.fields["msg"], "removed job "+j.ID+" on "+n.Name) {
			return true
		}
	}
	return false
}
