package slurm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// The multi-node cluster (multinode.sh): one slurmctld and three slurmd, each node in its own
// network, mount, UTS, PID and time namespace, all sharing the host's /home. The scenarios look
// at a node from the host: its files through /proc/<its PID 1>/root, its sockets through
// /proc/<its PID 1>/net, its processes in the host's process table (with host PIDs).
const (
	// mnConfDirDefault is the cluster's CONFDIR unless SLURM_MN_CONFDIR names another.
	mnConfDirDefault = "/var/tmp/ffl-multinode"
	// mnRuntimeDir is ffl's default runtime_dir: each node's /run is its own tmpfs, so the
	// default cannot meet a real installation's.
	mnRuntimeDir = "/run/ffl"
	// mnKillWait is the cluster's KillWait (the launcher's cleanup_timeout, 3 s, is inside it).
	mnKillWait = 5 * time.Second
	// mnSlurmdTimeout is the cluster's SlurmdTimeout: slurmctld declares a crashed node DOWN,
	// and its jobs NODE_FAIL, 10-20 s after the crash.
	mnSlurmdTimeout = 10 * time.Second
)

// MultiCluster is the running multi-node cluster of TestMultiNode and what its scenarios share.
type MultiCluster struct {
	root    string // module root
	dir     string // root-owned 0755: bin/, ffl.toml, epilog-<node>.log, two-node script
	confDir string
	ctl     slurmtest.Client // Slurm's clients against confDir
	launch  string           // ffl-launch
	epilog  string           // ffl-epilog (the sweep runs it on a node)
	script  string           // contrib/sbatch/firefox.sbatch
	twoNode string           // a batch script that runs `srun ffl-launch run` on each of its nodes
	nodes   []*Node
	portMin int
	portMax int
	users   map[string]User
	work    map[string]string // user -> job working dir in the (shared) home
	started bool
}

// Node is one node of the multi-node cluster.
type Node struct {
	c    *MultiCluster
	Name string
}

// startMultiCluster builds ffl, starts the cluster with ffl-prolog and ffl-epilog as Prolog and
// Epilog, and stops it (and removes what it made) when t ends, also when t fails.
func startMultiCluster(t *testing.T) *MultiCluster {
	t.Helper()
	missing := missingPrerequisites()
	for _, b := range []string{"ip", "nsenter", "unshare", "curl"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = strings.TrimPrefix(missing+", "+b, ", ")
		}
	}
	requireNothingMissing(t, missing)
	t0 := time.Now()
	c, err := setupMultiCluster()
	if c != nil {
		t.Cleanup(func() {
			if err := c.teardown(t.Failed()); err != nil {
				t.Errorf("multi-node teardown: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("multi-node cluster: %v", err)
	}
	t.Logf("multi-node cluster up (%d nodes, KillWait %v, ports %d-%d) in %v", len(c.nodes), mnKillWait, c.portMin, c.portMax, time.Since(t0).Round(time.Millisecond))
	return c
}

func setupMultiCluster() (*MultiCluster, error) {
	root, err := slurmtest.ModuleRoot()
	if err != nil {
		return nil, err
	}
	confDir := slurmtest.EnvOr("SLURM_MN_CONFDIR", mnConfDirDefault)
	// Root-owned and 0755 in a sticky /var/tmp: slurmd runs the Prolog/Epilog from here as root.
	dir, err := slurmtest.WorkDir("ffl-multinode-")
	if err != nil {
		return nil, err
	}
	c := &MultiCluster{
		root: root, dir: dir, confDir: confDir, ctl: slurmtest.Client{ConfDir: confDir},
		launch: filepath.Join(dir, "bin", "ffl-launch"), epilog: filepath.Join(dir, "bin", "ffl-epilog"),
		script: filepath.Join(root, "contrib", "sbatch", "firefox.sbatch"), twoNode: filepath.Join(dir, "two-nodes.sbatch"),
		users: map[string]User{}, work: map[string]string{},
	}

	tb := time.Now()
	if err := slurmtest.BuildFFL(root, filepath.Join(dir, "bin")); err != nil {
		return c, err
	}
	logf("multi-node: built ffl into %s/bin in %v", dir, time.Since(tb).Round(time.Millisecond))

	// Every node's /etc/ffl/ffl.toml (multinode.sh replaces @NODE@): the launcher, the Prolog
	// and the Epilog read it as in production; each node logs to its own file. The nodes'
	// loopbacks are empty, so any port range is free there.
	c.portMin = 20000 + rand.IntN(40000)
	c.portMax = c.portMin + 99
	cfg := slurmtest.FFLConfig("# installed on every node of the multi-node test cluster", "", c.portMin, c.portMax, "", filepath.Join(dir, "epilog-@NODE@.log"))
	if err := os.WriteFile(filepath.Join(dir, "ffl.toml"), []byte(cfg), 0o644); err != nil {
		return c, err
	}
	// srun makes ffl-launch the top process of each node's task, so each gets scancel's
	// SIGTERM; each node's launcher writes its own output file.
	two := `#!/bin/bash
#SBATCH --job-name=firefox-2n
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --output=mn-%j.log
set -euo pipefail
exec srun --output="mn-%j-%N.log" "$FFL_LAUNCH" run "$@"
`
	if err := os.WriteFile(c.twoNode, []byte(two), 0o755); err != nil {
		return c, err
	}

	if c.users, err = slurmtest.Users(context.Background(), root, "ffluser1", "ffluser2"); err != nil {
		return c, err
	}
	if c.work, err = slurmtest.WorkDirs(context.Background(), c.users, filepath.Base(dir)); err != nil {
		return c, err
	}

	c.started = true
	// A random first job id keeps this run's directory names apart from an interrupted run's.
	err = c.harness("start",
		"MN_NODES=3", "MN_FFL_TOML="+filepath.Join(dir, "ffl.toml"),
		"SLURM_PROLOG="+filepath.Join(dir, "bin", "ffl-prolog"), "SLURM_EPILOG="+c.epilog,
		"SLURM_KILLWAIT="+strconv.Itoa(int(mnKillWait/time.Second)),
		"SLURM_SLURMD_TIMEOUT="+strconv.Itoa(int(mnSlurmdTimeout/time.Second)),
		"SLURM_FIRST_JOB_ID="+slurmtest.FirstJobID())
	if err != nil {
		return c, err
	}
	env, err := os.ReadFile(filepath.Join(confDir, "cluster.env"))
	if err != nil {
		return c, err
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "NODES="); ok {
			unq, err := strconv.Unquote(`"` + strings.ReplaceAll(v, `\ `, " ") + `"`)
			if err != nil {
				return c, fmt.Errorf("cluster.env: %q: %w", line, err)
			}
			for _, n := range strings.Fields(unq) {
				c.nodes = append(c.nodes, &Node{c: c, Name: n})
			}
		}
	}
	if len(c.nodes) != 3 {
		return c, fmt.Errorf("cluster.env names nodes %v, want 3", c.nodes)
	}
	return c, nil
}

// harness runs multinode.sh COMMAND CONFDIR [ARGS...] with extra environment.
func (c *MultiCluster) harness(command string, env ...string) error {
	return c.harnessArgs(command, nil, env...)
}

func (c *MultiCluster) harnessArgs(command string, args []string, env ...string) error {
	return slurmtest.Script{
		Path: filepath.Join(c.root, "tests", "slurm", "multinode.sh"),
		Args: append([]string{command, c.confDir}, args...), Env: env, Logf: logf,
	}.Run()
}

// teardown stops the cluster and removes what setup made; keep leaves the work dir (binaries,
// configuration, the nodes' Prolog/Epilog logs) for a look after a failure.
func (c *MultiCluster) teardown(keep bool) error {
	var errs []error
	if c.started {
		if err := c.harness("stop"); err != nil {
			errs = append(errs, err)
		}
	}
	for name, w := range c.work {
		u := c.users[name]
		if _, err := c.asUser(context.Background(), u, "rm", "-rf", w); err != nil {
			errs = append(errs, err)
		}
		// The launchers leave <state>/sessions/<node> (empty) behind, by design; these nodes
		// exist only here. rmdir: anything still in them stays (the scenarios report it).
		for _, n := range c.nodes {
			_, _ = c.asUser(context.Background(), u, "rmdir", filepath.Join(u.Home, ".firefox-launcher", "sessions", n.Name))
		}
	}
	if keep {
		logf("multi-node: kept %s (binaries, ffl.toml, epilog-<node>.log) and %s/log", c.dir, c.confDir)
	} else if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c *MultiCluster) node(name string) *Node {
	for _, n := range c.nodes {
		if n.Name == name {
			return n
		}
	}
	panic("no node " + name)
}

// asUser runs a command as u with a minimal environment and returns its combined output.
func (c *MultiCluster) asUser(ctx context.Context, u User, name string, args ...string) (string, error) {
	return slurmtest.RunAs(ctx, u, slurmtest.UserEnv(u), name, args...)
}

// slurm runs a Slurm client command as root against this cluster.
func (c *MultiCluster) slurm(ctx context.Context, name string, args ...string) (string, error) {
	return c.ctl.Run(ctx, name, args...)
}

// crash is a node's power cut: every process of the node dies at once; its /run, /tmp and
// /dev/shm go with it; the shared home keeps what it had. slurmctld notices after
// SlurmdTimeout.
func (c *MultiCluster) crash(t *testing.T, n *Node) {
	t.Helper()
	if err := c.harnessArgs("crash", []string{n.Name}); err != nil {
		t.Fatal(err)
	}
}

// boot starts a crashed node: empty /run, /tmp and /dev/shm, a new boot id, uptime from 0; it
// returns once slurmctld has the node back.
func (c *MultiCluster) boot(t *testing.T, n *Node) {
	t.Helper()
	if err := c.harnessArgs("boot", []string{n.Name}); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------- one node, seen from the host

// initPID returns the host PID of the node's PID 1 (node-init.sh), checked against the start
// time multinode.sh recorded: a node that rebooted has another one.
func (n *Node) initPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(n.c.confDir, "run", "node-"+n.Name+".pid"))
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", n.Name, err)
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, fmt.Errorf("node %s: pid file says %q", n.Name, data)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, fmt.Errorf("node %s: pid file says %q", n.Name, data)
	}
	st, err := proc.ReadStat(pid)
	if err != nil || st.Comm != "node-init.sh" || strconv.FormatUint(st.StartTime, 10) != f[1] {
		return 0, fmt.Errorf("node %s: its PID 1 (host pid %d) is not running (%v)", n.Name, pid, err)
	}
	return pid, nil
}

func (n *Node) mustInit(t *testing.T) int {
	t.Helper()
	pid, err := n.initPID()
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// path returns where the node's p is seen from the host (through its PID 1's root).
func (n *Node) path(t *testing.T, p string) string {
	return fmt.Sprintf("/proc/%d/root%s", n.mustInit(t), p)
}

// nsLink returns the node's namespace of the given kind ("net", "pid", ...).
func (n *Node) nsLink(t *testing.T, kind string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", n.mustInit(t), kind))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// run runs a command as root on the node, in all its namespaces. The time namespace matters:
// start times in /proc/PID/stat are shifted by it, so ffl on the node compares the start times
// its records hold only with what processes of the node's time namespace read.
func (n *Node) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	full := append([]string{"--target", strconv.Itoa(n.mustInit(t)), "--mount", "--uts", "--net", "--pid", "--time", "--wd=/", "--", name}, args...)
	out, err := slurmtest.Output(context.Background(), nil, "nsenter", full...)
	if err != nil {
		t.Fatalf("on %s: %v", n.Name, err)
	}
	return out
}

// httpStatusAs fetches http://127.0.0.1:port/ on the node as user u: a process with the user's
// uid and gid in the node's network namespace, the way the user's browser reaches the session
// through `ssh -L` on a real node (a session admits only its own user's connections).
func (n *Node) httpStatusAs(t *testing.T, u User, port int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "--target", strconv.Itoa(n.mustInit(t)), "--net",
		"--setuid", strconv.Itoa(u.UID), "--setgid", strconv.Itoa(u.GID), "--",
		"env", "-i", "PATH="+slurmtest.UserPath, "HOME="+u.Home,
		"curl", "-q", "--noproxy", "*", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10",
		fmt.Sprintf("http://127.0.0.1:%d/", port))
	cmd.Dir = "/"
	out, _ := cmd.Output() // curl exits non-zero on a refused connection; the code says 000
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0
	}
	return code
}

// listeners returns the host PIDs holding a listening TCP socket on port in the node's network
// namespace.
func (n *Node) listeners(t *testing.T, port int) []int {
	t.Helper()
	return socketListeners(fmt.Sprintf("/proc/%d/net", n.mustInit(t)), port, n.nsLink(t, "net"))
}

// portFree: nothing listens on port in the node's network namespace.
func (n *Node) portFree(t *testing.T, port int) bool {
	t.Helper()
	return len(listenInodes(fmt.Sprintf("/proc/%d/net", n.mustInit(t)), port)) == 0
}

// inNode reports whether host PID pid lives in the node's PID namespace.
func (n *Node) inNode(t *testing.T, pid int) bool {
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	return err == nil && l == n.nsLink(t, "pid")
}

// epilogLines parses the node's Prolog/Epilog log file.
func (n *Node) epilogLines() []logLine {
	data, _ := os.ReadFile(filepath.Join(n.c.dir, "epilog-"+n.Name+".log"))
	return parseLogLines(string(data))
}

// hookSummary waits for the node's "prolog done" or "epilog done" line (msg prefix) of job id.
func (n *Node) hookSummary(t *testing.T, id, msg string) logLine {
	t.Helper()
	var found logLine
	if !slurmtest.WaitUntil(epilogLimit, func() bool {
		for _, l := range n.epilogLines() {
			if l.fields["job"] == id && strings.HasPrefix(l.fields["msg"], msg) {
				found = l
				return true
			}
		}
		return false
	}) {
		t.Fatalf("job %s: no %q line in %s's log", id, msg, n.Name)
	}
	return found
}

// state returns the node's state as sinfo prints it (idle, mixed, drained, down, ...).
func (n *Node) state() string {
	out, _ := n.c.slurm(context.Background(), "sinfo", "-h", "-n", n.Name, "-o", "%T")
	return strings.TrimSpace(out)
}

// ---------------------------------------------------------------- jobs

// MJob is one batch job on the multi-node cluster, on one or more nodes.
type MJob struct {
	c     *MultiCluster
	ID    string
	User  User
	Nodes []*Node
	outs  map[string]string // node -> the output file holding that node's launcher log
	ffl   bool              // the job runs ffl-launch (false: a plain job, for its Prolog)
}

// mnSubmit says how to submit a job.
type mnSubmit struct {
	user  User
	nodes []*Node  // -w; one node: firefox.sbatch, two: the srun script
	args  []string // ffl-launch run arguments (default --json)
	env   []string
	flags []string
	wrap  string // a plain job (sbatch --wrap) instead of ffl
}

// submit runs sbatch as the user from the user's working dir; a job still in the queue when t
// ends is cancelled, and on failure its logs are printed.
func (c *MultiCluster) submit(t *testing.T, o mnSubmit) *MJob {
	t.Helper()
	u := o.user
	env := append(slurmtest.UserEnv(u), "SLURM_CONF="+c.ctl.Conf(), "FFL_LAUNCH="+c.launch)
	env = append(env, o.env...)
	var names []string
	for _, n := range o.nodes {
		names = append(names, n.Name)
	}
	sb := []string{"--parsable", "--chdir=" + c.work[u.Name], "--nodelist=" + strings.Join(names, ",")}
	sb = append(sb, o.flags...)
	j := &MJob{c: c, User: u, Nodes: o.nodes, outs: map[string]string{}, ffl: o.wrap == ""}
	switch {
	case o.wrap != "":
		sb = append(sb, "--nodes="+strconv.Itoa(len(o.nodes)), "--output=plain-%j.log", "--wrap="+o.wrap)
	case len(o.nodes) == 1:
		sb = append(sb, c.script)
	default:
		sb = append(sb, "--nodes="+strconv.Itoa(len(o.nodes)), c.twoNode)
	}
	if j.ffl {
		args := o.args
		if args == nil {
			args = []string{"--json"}
		}
		sb = append(sb, args...)
	}
	out, err := slurmtest.RunAs(context.Background(), u, env, "sbatch", sb...)
	if err != nil {
		t.Fatalf("sbatch as %s: %v", u.Name, err)
	}
	j.ID, _, _ = strings.Cut(strings.TrimSpace(out), ";")
	if _, err := strconv.Atoi(j.ID); err != nil {
		t.Fatalf("sbatch printed %q, not a job id", out)
	}
	for _, n := range o.nodes {
		switch {
		case !j.ffl:
		case len(o.nodes) == 1:
			j.outs[n.Name] = filepath.Join(c.work[u.Name], "firefox-"+j.ID+".log")
		default:
			j.outs[n.Name] = filepath.Join(c.work[u.Name], "mn-"+j.ID+"-"+n.Name+".log")
		}
	}
	t.Logf("submitted job %s as %s on %s: sbatch %s", j.ID, u.Name, strings.Join(names, ","), strings.Join(sb[1:], " "))
	c.ctl.CleanupJob(t, j.ID, goneLimit, func() { j.dumpLogs(t) })
	return j
}

func (j *MJob) dumpLogs(t *testing.T) {
	for node, out := range j.outs {
		b, _ := os.ReadFile(out)
		t.Logf("launcher log of job %s on %s (%s):\n%s", j.ID, node, out, b)
	}
	for _, n := range j.c.nodes {
		var lines []string
		for _, l := range n.epilogLines() {
			if l.fields["job"] == j.ID || strings.Contains(l.raw, "job "+j.ID+" ") {
				lines = append(lines, l.raw)
			}
		}
		if len(lines) > 0 {
			t.Logf("Prolog/Epilog lines of job %s on %s:\n%s", j.ID, n.Name, strings.Join(lines, "\n"))
		}
	}
}

// layout is where the job's files live on node n (its home part is in the shared home).
func (j *MJob) layout(n *Node) layout.Layout {
	return layout.Layout{
		StateDir: filepath.Join(j.User.Home, ".firefox-launcher"), RuntimeDir: mnRuntimeDir, TempDir: "/tmp",
		UID: j.User.UID, Node: n.Name, JobKey: j.ID,
	}
}

func (j *MJob) inQueue() bool { return j.c.ctl.InQueue(j.ID) }

// state returns JobState and ExitCode from scontrol.
func (j *MJob) state() (state, exit string) { return j.c.ctl.JobState(j.ID) }

func (j *MJob) waitGone(t *testing.T) {
	t.Helper()
	j.c.ctl.WaitGone(t, j.ID, goneLimit)
}

func (j *MJob) waitRunning(t *testing.T) {
	t.Helper()
	if !slurmtest.WaitUntil(readyLimit, func() bool { st, _ := j.state(); return st == "RUNNING" }) {
		st, _ := j.state()
		t.Fatalf("job %s: state %s, want RUNNING", j.ID, st)
	}
}

func (j *MJob) cancel(t *testing.T, opts ...string) {
	t.Helper()
	j.c.ctl.Cancel(t, j.ID, opts...)
}

// infos returns the sessions the job's launcher on node announced (its --json lines).
func (j *MJob) infos(node string) []lifecycle.Info { return slurmtest.LauncherInfos(j.outs[node]) }

func (j *MJob) launcherLog(node string) []logLine {
	data, _ := os.ReadFile(j.outs[node])
	return parseLogLines(string(data))
}

// waitReady waits for the first session of the job's launcher on every node of the job and
// checks each: announced for this job and node, answering its user on its own node, served by
// that very session's process.
func (j *MJob) waitReady(t *testing.T) map[string]lifecycle.Info {
	t.Helper()
	got := map[string]lifecycle.Info{}
	ok := slurmtest.WaitUntil(readyLimit, func() bool {
		for _, n := range j.Nodes {
			if infos := j.infos(n.Name); len(infos) > 0 {
				got[n.Name] = infos[0]
			}
		}
		return len(got) == len(j.Nodes) || !j.inQueue()
	})
	if !ok || len(got) != len(j.Nodes) {
		st, code := j.state()
		t.Fatalf("job %s: sessions on %d of %d nodes (job %s, exit %s)", j.ID, len(got), len(j.Nodes), st, code)
	}
	for _, n := range j.Nodes {
		info := got[n.Name]
		if info.Job != j.ID || info.Node != n.Name {
			t.Fatalf("job %s on %s: the launcher announced job %q on node %q", j.ID, n.Name, info.Job, info.Node)
		}
		if code := n.httpStatusAs(t, j.User, info.Port); code != http.StatusOK {
			t.Fatalf("job %s on %s: GET http://127.0.0.1:%d/ as %s = %d, want 200", j.ID, n.Name, info.Port, j.User.Name, code)
		}
		j.assertOwnsPort(t, n, info.Port)
	}
	return got
}

// assertOwnsPort: the listener on port in node n's network is a process of this job's session
// on n (its marker) or this job's launcher on n (which binds the port itself when it relays to
// xpra), not another node's or job's.
func (j *MJob) assertOwnsPort(t *testing.T, n *Node, port int) {
	t.Helper()
	marker := j.layout(n).Marker(port)
	var owners []int
	ok := slurmtest.WaitUntil(10*time.Second, func() bool {
		owners = n.listeners(t, port)
		ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, marker)
		ids = append(ids, j.launcherOn(t, n)...)
		for _, id := range ids {
			if slices.Contains(owners, id.PID) && n.inNode(t, id.PID) {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Errorf("job %s on %s: port %d is held by %v, none of them a process of session %s", j.ID, n.Name, port, slurmtest.Describe(pidIdentities(owners)), marker)
	}
}

func pidIdentities(pids []int) []proc.Identity {
	var ids []proc.Identity
	for _, p := range pids {
		ids = append(ids, proc.Identity{PID: p})
	}
	return ids
}

// launcherOn returns the job's ffl-launch on node n: a process in n's PID namespace with the
// job's uid, comm ffl-launch and SLURM_JOB_ID=<job> in its environment.
func (j *MJob) launcherOn(t *testing.T, n *Node) []proc.Identity {
	t.Helper()
	ids, _ := proc.Scan(func(st proc.Stat, uid int) bool { return st.Comm == "ffl-launch" && uid == j.User.UID })
	var out []proc.Identity
	for _, id := range ids {
		if !slurmtest.InJob(id.PID, j.ID) {
			continue
		}
		if n == nil || n.inNode(t, id.PID) {
			out = append(out, id)
		}
	}
	return out
}

// jobProcs returns every live process of the job on any node: its sessions' (marker
// "<job>/<any node>/") and its launchers.
func (j *MJob) jobProcs(t *testing.T) []proc.Identity {
	t.Helper()
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.ID+"/")
	return append(ids, j.launcherOn(t, nil)...)
}

// assertRunning: a live job's session on node n is untouched: the job runs, the session
// answers its user on n, its directories are there, xpra and Firefox run on n.
func (j *MJob) assertRunning(t *testing.T, n *Node, info lifecycle.Info) {
	t.Helper()
	if st, _ := j.state(); st != "RUNNING" {
		t.Errorf("job %s: state %s, want RUNNING", j.ID, st)
	}
	if !slurmtest.WaitUntil(30*time.Second, func() bool { return n.httpStatusAs(t, j.User, info.Port) == http.StatusOK }) {
		t.Errorf("job %s on %s: port %d does not answer %s with 200", j.ID, n.Name, info.Port, j.User.Name)
	}
	l := j.layout(n)
	for _, p := range []string{
		l.HomeSessionDir(info.Port),
		n.path(t, filepath.Join(l.PreferredRuntimeJobDir(), layout.SessionDirName(info.Port), layout.StateFile)),
		n.path(t, filepath.Join(l.PreferredRuntimeJobDir(), layout.SupervisorFile)),
	} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("job %s on %s: %v", j.ID, n.Name, err)
		}
	}
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, l.Marker(info.Port))
	var here, elsewhere []proc.Identity
	for _, id := range ids {
		switch {
		case n.inNode(t, id.PID):
			here = append(here, id)
		case id.Alive():
			elsewhere = append(elsewhere, id) // a process that ended between the two looks is neither
		}
	}
	if comms := slurmtest.Comms(here); !slices.Contains(comms, "firefox-esr") || !slices.Contains(comms, "xpra") {
		t.Errorf("job %s on %s: session processes %v lack xpra or firefox-esr", j.ID, n.Name, comms)
	}
	if len(elsewhere) > 0 {
		t.Errorf("job %s: %d processes with marker %s, %d of them outside %s: %v", j.ID, len(ids), l.Marker(info.Port), len(elsewhere), n.Name, slurmtest.Describe(elsewhere))
	}
}

// mnClean relaxes assertClean for jobs whose node rebooted under them.
type mnClean struct {
	// epilogOptional: node -> slurmctld may or may not have had the node run the job's
	// Epilog; one that ran must still have reported no problem.
	epilogOptional map[string]bool
}

// assertClean is the promise, once the job has left the queue: every node's Epilog of the job
// ran and reported no problem, no process of the job lives on any node, no directory of the job
// exists on any node or in the home (for any node), its ports are free on their nodes, and no
// node is drained. ports maps node -> ports the job's sessions had there. It returns the Epilog
// summaries by node.
func (c *MultiCluster) assertClean(t *testing.T, j *MJob, ports map[string][]int, o mnClean) map[string]logLine {
	t.Helper()
	j.waitGone(t)
	sums := map[string]logLine{}
	for _, n := range j.Nodes {
		if o.epilogOptional[n.Name] {
			for _, l := range n.epilogLines() {
				if l.fields["job"] == j.ID && strings.HasPrefix(l.fields["msg"], "epilog done") {
					sums[n.Name] = l
				}
			}
			sum, ran := sums[n.Name]
			t.Logf("job %s: an Epilog ran on %s: %v %s", j.ID, n.Name, ran, sum.summary())
			if ran && sum.fields["errors"] != "0" {
				t.Errorf("job %s: the Epilog on %s reported problems: %s", j.ID, n.Name, sum.raw)
			}
			continue
		}
		sum := n.hookSummary(t, j.ID, "epilog done")
		sums[n.Name] = sum
		t.Logf("job %s epilog on %s: %s", j.ID, n.Name, sum.summary())
		if sum.fields["errors"] != "0" {
			t.Errorf("job %s: the Epilog on %s reported problems: %s", j.ID, n.Name, sum.raw)
		}
	}
	if !slurmtest.WaitUntil(10*time.Second, func() bool { return len(j.jobProcs(t)) == 0 }) {
		t.Errorf("job %s: processes left: %v", j.ID, slurmtest.Describe(j.jobProcs(t)))
	}
	for _, n := range c.nodes {
		l := j.layout(n)
		paths := []string{l.HomeJobDir()}
		if _, err := n.initPID(); err == nil {
			paths = append(paths, n.path(t, l.PreferredRuntimeJobDir()), n.path(t, l.FallbackRuntimeJobDir()))
		}
		for _, p := range paths {
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("job %s: %s (%s) left (%v)", j.ID, p, n.Name, err)
			}
		}
	}
	for node, ps := range ports {
		for _, port := range ps {
			if !slurmtest.WaitUntil(10*time.Second, func() bool { return c.node(node).portFree(t, port) }) {
				t.Errorf("job %s: port %d still in use on %s", j.ID, port, node)
			}
		}
	}
	c.assertNotDrained(t)
	return sums
}

// assertNotDrained: a failing Prolog or Epilog drains its node; a node that is down did not
// come back. Either is reported and undone for the next scenario.
func (c *MultiCluster) assertNotDrained(t *testing.T) {
	t.Helper()
	for _, n := range c.nodes {
		st := n.state()
		if strings.Contains(st, "drain") || strings.Contains(st, "down") || strings.Contains(st, "fail") || st == "" {
			reason, _ := c.slurm(context.Background(), "sinfo", "-h", "-R", "-n", n.Name)
			t.Errorf("node %s is %q (%s)", n.Name, st, reason)
			if _, err := c.slurm(context.Background(), "scontrol", "update", "nodename="+n.Name, "state=resume"); err != nil {
				t.Logf("resume %s: %v", n.Name, err)
			}
		}
	}
}

// jobLines returns the lines of node n's log about job j: its Prolog/Epilog lines, the
// "removed job <id> on <node>" lines and any line naming one of its directories.
func (n *Node) jobLines(j *MJob) []logLine {
	var out []logLine
	for _, l := range n.epilogLines() {
		if l.fields["job"] == j.ID || strings.Contains(l.fields["msg"], "job "+j.ID+" ") || strings.Contains(l.raw, "job-"+j.ID) {
			out = append(out, l)
		}
	}
	return out
}

// backdate sets the mtime of everything under dir (as its user) to age ago: the time a real
// reboot takes, so that what the node left counts as abandoned (reclaim.RecordlessGrace,
// --older-than) without the test waiting for it.
func (c *MultiCluster) backdate(t *testing.T, u User, dir string, age time.Duration) {
	t.Helper()
	stamp := time.Now().Add(-age).Format("200601021504.05")
	if out, err := c.asUser(context.Background(), u, "find", dir, "-exec", "touch", "-h", "-t", stamp, "{}", "+"); err != nil {
		t.Fatalf("backdate %s: %v: %s", dir, err, out)
	}
}
