package slurm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// Generous deadlines: the machine is shared and has two cores; nothing asserts on speed.
const (
	readyLimit  = 150 * time.Second // a session's JSON line after submission
	goneLimit   = 120 * time.Second // a job out of the queue after it was ended
	epilogLimit = 30 * time.Second  // its Epilog's summary line after it left the queue
)

// Job is one batch job of the suite.
type Job struct {
	c      *Cluster
	ID     string
	User   User
	Out    string // the job's output file: the launcher's log and JSON lines
	Layout layout.Layout
}

// submitOpts says how to submit a job; the zero value (plus a user) is firefox.sbatch --json.
type submitOpts struct {
	user   User
	flags  []string // sbatch options, before the script (they override its #SBATCH lines)
	env    []string // extra environment of the job (sbatch exports the submitter's)
	script string   // default: contrib/sbatch/firefox.sbatch
	args   []string // after the script, for ffl-launch run (default --json)
	// noCleanup: the caller ends the job (bystanders outlive the subtest that started them).
	noCleanup bool
}

// submit runs `sbatch --parsable` as the user from the user's working dir. At the end of the
// test a job still in the queue is cancelled (a failed scenario must not leak into the next),
// and on failure the launcher's log and the Epilog's lines of the job are printed.
func (c *Cluster) submit(t *testing.T, o submitOpts) *Job {
	t.Helper()
	u := o.user
	env := append(slurmtest.UserEnv(u), "SLURM_CONF="+c.ctl.Conf(), "FFL_LAUNCH="+c.launch, "FFL_CONFIG="+c.config)
	env = append(env, o.env...)
	script := o.script
	if script == "" {
		script = c.script
	}
	args := o.args
	if args == nil {
		args = []string{"--json"}
	}
	sb := append([]string{"--parsable", "--partition=" + partition, "--chdir=" + c.work[u.Name]}, o.flags...)
	sb = append(sb, script)
	sb = append(sb, args...)
	out, err := slurmtest.RunAs(context.Background(), u, env, "sbatch", sb...)
	if err != nil {
		t.Fatalf("sbatch as %s: %v", u.Name, err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if _, err := strconv.Atoi(id); err != nil {
		t.Fatalf("sbatch printed %q, not a job id", out)
	}
	j := &Job{
		c: c, ID: id, User: u, Out: filepath.Join(c.work[u.Name], "firefox-"+id+".log"),
		Layout: layout.Layout{
			StateDir: filepath.Join(u.Home, ".firefox-launcher"), RuntimeDir: runtimeRoot, TempDir: "/tmp",
			UID: u.UID, Node: c.node, JobKey: id,
		},
	}
	t.Logf("submitted job %s as %s: sbatch %s", id, u.Name, strings.Join(sb[3:], " "))
	if o.noCleanup {
		return j
	}
	c.ctl.CleanupJob(t, j.ID, goneLimit, func() { j.dumpLogs(t) })
	return j
}

func (j *Job) dumpLogs(t *testing.T) {
	b, _ := os.ReadFile(j.Out)
	t.Logf("launcher log of job %s (%s):\n%s", j.ID, j.Out, b)
	var lines []string
	for _, l := range j.c.epilogLines() {
		if l.fields["job"] == j.ID {
			lines = append(lines, l.raw)
		}
	}
	t.Logf("Prolog/Epilog lines of job %s (%s):\n%s", j.ID, j.c.epilogLog, strings.Join(lines, "\n"))
}

// inQueue reports whether squeue still lists the job (pending, running or completing: a job
// stays COMPLETING until its Epilog has finished).
func (j *Job) inQueue() bool { return j.c.ctl.InQueue(j.ID) }

// infos returns the sessions the launcher announced so far (its --json lines).
func (j *Job) infos() []lifecycle.Info { return slurmtest.LauncherInfos(j.Out) }

// waitReady waits for the job's first session and checks it answers its user with HTTP 200.
func (j *Job) waitReady(t *testing.T) lifecycle.Info {
	t.Helper()
	var info lifecycle.Info
	ok := slurmtest.WaitUntil(readyLimit, func() bool {
		if infos := j.infos(); len(infos) > 0 {
			info = infos[0]
			return true
		}
		return !j.inQueue()
	})
	if !ok || info.Port == 0 {
		st, code := j.state()
		t.Fatalf("job %s: no session ready (job %s, exit %s)", j.ID, st, code)
	}
	if info.Job != j.ID || info.Node != j.c.node {
		t.Fatalf("job %s: the launcher announced job %q on node %q", j.ID, info.Job, info.Node)
	}
	if code := httpStatus(j.User, info.URL); code != http.StatusOK {
		t.Fatalf("job %s: GET %s as %s = %d, want 200", j.ID, info.URL, j.User.Name, code)
	}
	j.assertOwnsPort(t, info.Port)
	return info
}

// assertOwnsPort checks that the TCP listener on port belongs to this job's own launcher (its
// supervisor holds every session's port and relays to the session's xpra), not to someone else's
// server answering the same HTTP probe.
func (j *Job) assertOwnsPort(t *testing.T, port int) {
	t.Helper()
	var owners []int
	ok := slurmtest.WaitUntil(10*time.Second, func() bool {
		owners = listeners(port)
		for _, pid := range owners {
			id, err := proc.Lookup(pid)
			if err == nil && id.UID == j.User.UID && slurmtest.InJob(pid, j.ID) {
				return true
			}
		}
		return false
	})
	if !ok {
		var who []string
		for _, pid := range owners {
			st, _ := proc.ReadStat(pid)
			id, _ := proc.Lookup(pid)
			who = append(who, fmt.Sprintf("pid %d (%s, uid %d)", pid, st.Comm, id.UID))
		}
		t.Errorf("job %s announced port %d, but its listener is not the job's own launcher: %v", j.ID, port, who)
	}
}

// listeners returns the PIDs holding a listening TCP socket on port (any address, IPv4 or 6).
func listeners(port int) []int { return socketListeners("/proc/net", port, "") }

// socketListeners returns the PIDs holding a listening TCP socket on port in the network
// namespace whose tcp and tcp6 tables are in netDir ("/proc/net", or /proc/PID/net for PID's
// namespace); netns, when set, skips processes of other network namespaces (cheaper, and a
// socket inode is only meaningful in its own namespace's table).
func socketListeners(netDir string, port int, netns string) []int {
	inodes := listenInodes(netDir, port)
	if len(inodes) == 0 {
		return nil
	}
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if netns != "" {
			if l, err := os.Readlink(filepath.Join("/proc", d.Name(), "ns", "net")); err != nil || l != netns {
				continue
			}
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", d.Name(), "fd"))
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join("/proc", d.Name(), "fd", fd.Name())); err == nil && inodes[link] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// listenInodes returns the "socket:[inode]" names of the listening TCP sockets on port in
// netDir's tcp and tcp6 tables.
func listenInodes(netDir string, port int) map[string]bool {
	inodes := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(filepath.Join(netDir, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || fl[3] != "0A" { // 0A = LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fl[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes["socket:["+fl[9]+"]"] = true
			}
		}
	}
	return inodes
}

// waitGone waits until the job has left the queue (its Epilog has then run).
func (j *Job) waitGone(t *testing.T, limit time.Duration) {
	t.Helper()
	j.c.ctl.WaitGone(t, j.ID, limit)
}

// state returns JobState and ExitCode from scontrol (kept MinJobAge = 300 s after the end).
func (j *Job) state() (state, exit string) { return j.c.ctl.JobState(j.ID) }

// cancel runs scancel with extra options (an already finished job is no error).
func (j *Job) cancel(t *testing.T, opts ...string) {
	t.Helper()
	j.c.ctl.Cancel(t, j.ID, opts...)
}

// supervisor reads the launcher's record from the job's runtime dir.
func (j *Job) supervisor() (layout.Supervisor, error) {
	var rec layout.Supervisor
	for _, d := range j.Layout.RuntimeJobDirs() {
		data, err := os.ReadFile(filepath.Join(d, layout.SupervisorFile))
		if err != nil {
			continue
		}
		return layout.ParseSupervisor(data)
	}
	return rec, fmt.Errorf("job %s: no %s in %v", j.ID, layout.SupervisorFile, j.Layout.RuntimeJobDirs())
}

// killLauncher sends SIGKILL to the job's ffl-launch (identified by its record: pid, start
// time, the job user's uid, in the PID namespace the record names), so that no grace path runs.
func (j *Job) killLauncher(t *testing.T) {
	t.Helper()
	rec, err := j.supervisor()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Process.UID != j.User.UID {
		t.Fatalf("job %s: supervisor record names uid %d, want %d", j.ID, rec.Process.UID, j.User.UID)
	}
	id, res, err := proc.Resolve(context.Background(), rec.Process, rec.PIDNS)
	if res != proc.NSSame && res != proc.NSFound {
		t.Fatalf("job %s: launcher %v of PID namespace %d: %v (%v)", j.ID, rec.Process, rec.PIDNS, res, err)
	}
	if err := proc.Signal(id, unix.SIGKILL); err != nil {
		t.Fatalf("SIGKILL launcher %v: %v", id, err)
	}
	t.Logf("job %s: SIGKILL to ffl-launch %v (recorded as %v, %v)", j.ID, id, rec.Process, res)
}

// launcherLog returns the launcher's log lines (logrus text) of the job's output file.
func (j *Job) launcherLog() []logLine {
	data, _ := os.ReadFile(j.Out)
	return parseLogLines(string(data))
}

// epilogSummary waits for the Epilog's summary line of the job in the Epilog's log file.
func (j *Job) epilogSummary(t *testing.T) logLine {
	t.Helper()
	var found logLine
	ok := slurmtest.WaitUntil(epilogLimit, func() bool {
		for _, l := range j.c.epilogLines() {
			if l.fields["job"] == j.ID && strings.HasPrefix(l.fields["msg"], "epilog done") {
				found = l
				return true
			}
		}
		return false
	})
	if !ok {
		data, _ := os.ReadFile(filepath.Join(j.c.confDir, "log", "slurmd.log"))
		if line, asUser := epilogAsUser(string(data), j.ID); asUser {
			return j.remedyEpilogAsUser(t, line)
		}
		st, code := j.state()
		t.Fatalf("job %s (%s, exit %s): no 'epilog done' line in %s %v after it left the queue; slurmd's lines on it (on the Epilog, and the last ones): %q",
			j.ID, st, code, j.c.epilogLog, epilogLimit, j.c.slurmdLines(j.ID, 4))
	}
	return found
}

// epilogAsUser finds, in slurmd's log (SlurmdDebug=debug2 logs the Epilog's output, a line of
// its own per line of output), the line where the Epilog of job id said it did not run as root
// (pkg/hook, NotRoot; the line has the job's field).
func epilogAsUser(log, id string) (string, bool) {
	for _, l := range jobLines(log, id, 0) {
		if strings.Contains(l, "the Epilog not running as root") {
			return l, true
		}
	}
	return "", false
}

// remedyEpilogAsUser handles an Epilog that Slurm started with the job user's credentials, a
// race of slurmstepd before 26.05 under PrologFlags=RunInJob (docs/EPILOG.md, "Not root"): it
// fails the test on a Slurm that has the fix, else does what the Epilog's line tells the admin,
// `ffl-epilog --job ID --user NAME` as root, and returns that run's summary line, on which the
// caller's checks of a clean node go on.
func (j *Job) remedyEpilogAsUser(t *testing.T, line string) logLine {
	t.Helper()
	if slurmAtLeast(j.c.version, 26, 5) {
		t.Fatalf("job %s: %s ran the Epilog as the job's user, a race fixed in 26.05: %s", j.ID, j.c.version, line)
	}
	t.Logf("job %s: %s ran the Epilog as the job's user (RunInJob before 26.05, docs/EPILOG.md \"Not root\"); slurmd logged its output: %s", j.ID, j.c.version, line)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, j.c.epilog, "--job", j.ID, "--user", j.User.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("job %s: the remedy, ffl-epilog --job %s --user %s as root: %v: %s", j.ID, j.ID, j.User.Name, err, out)
	}
	for _, l := range j.c.epilogLines() {
		if l.fields["job"] == j.ID && strings.HasPrefix(l.fields["msg"], "epilog done") {
			return l
		}
	}
	t.Fatalf("job %s: the remedy left no 'epilog done' line in %s: %s", j.ID, j.c.epilogLog, out)
	return logLine{}
}

// slurmdLines returns, of slurmd's log lines (its steps' included) that name job id, those that
// mention the Epilog and the last n: what a failure says about how Slurm ended the job and ran
// its Epilog. At SlurmdDebug=debug2 (tests/slurm/versions.sh) the Epilog's lines include
// prep/script's "epilog success rc:0 output:...", the Epilog's own output.
func (c *Cluster) slurmdLines(id string, n int) []string {
	data, _ := os.ReadFile(filepath.Join(c.confDir, "log", "slurmd.log"))
	return jobLines(string(data), id, n)
}

// jobLines is slurmdLines on the log's text.
func jobLines(log, id string, n int) []string {
	var named []string
	for _, l := range strings.Split(log, "\n") {
		if namesJob(l, id) {
			named = append(named, l)
		}
	}
	var lines []string
	for i, l := range named {
		if i >= len(named)-n || strings.Contains(strings.ToLower(l), "epilog") {
			lines = append(lines, l)
		}
	}
	return lines
}

// namesJob reports whether line holds id as a whole number (not a part of a longer one).
func namesJob(line, id string) bool {
	for i := 0; ; {
		k := strings.Index(line[i:], id)
		if k < 0 {
			return false
		}
		k += i
		end := k + len(id)
		digit := func(p int) bool { return p >= 0 && p < len(line) && line[p] >= '0' && line[p] <= '9' }
		if !digit(k-1) && !digit(end) {
			return true
		}
		i = k + 1
	}
}

// epilogLines parses the Prolog/Epilog log file.
func (c *Cluster) epilogLines() []logLine {
	data, _ := os.ReadFile(c.epilogLog)
	return parseLogLines(string(data))
}

// markerProcs returns the live processes of the job's sessions (marker prefix "<job>/<node>/").
func (j *Job) markerProcs() []proc.Identity {
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.Layout.JobMarkerPrefix())
	return ids
}

// cleanOpts relaxes assertClean for scenarios that provoke Epilog problems on purpose.
type cleanOpts struct {
	epilogErrorsOK bool
}

// assertClean is the promise, checked after the job has left the queue: the Epilog ran and
// exited 0 (the node is not drained), no process carries the job's marker, no session or
// runtime directory of the job exists, its ports are free, and the bystanders are untouched.
// It returns the Epilog's summary line.
func (c *Cluster) assertClean(t *testing.T, j *Job, ports []int, o cleanOpts) logLine {
	t.Helper()
	j.waitGone(t, goneLimit)
	sum := j.epilogSummary(t)
	t.Logf("job %s epilog: %s", j.ID, sum.summary())
	if !o.epilogErrorsOK && sum.fields["errors"] != "0" {
		t.Errorf("job %s: the Epilog reported problems: %s", j.ID, sum.raw)
	}
	if !slurmtest.WaitUntil(10*time.Second, func() bool { return len(j.markerProcs()) == 0 }) {
		t.Errorf("job %s: processes with marker %s left: %v", j.ID, j.Layout.JobMarkerPrefix(), slurmtest.Describe(j.markerProcs()))
	}
	slurmtest.AssertNoneLeft(t, j.ID, j.Layout.HomeJobDir(), j.Layout.PreferredRuntimeJobDir(), j.Layout.FallbackRuntimeJobDir())
	slurmtest.AssertPortsFree(t, j.ID, ports)
	c.assertNotDrained(t)
	return sum
}

// assertNotDrained: an Epilog or Prolog that exits non-zero drains the node.
func (c *Cluster) assertNotDrained(t *testing.T) {
	t.Helper()
	c.ctl.AssertNotDrained(t, c.node)
}

// assertRunning checks that a session of a live job is untouched: the job runs, the session
// answers its user with HTTP 200, its directories and state are there, its processes are alive.
func (c *Cluster) assertRunning(t *testing.T, j *Job, info lifecycle.Info) {
	t.Helper()
	if st, _ := j.state(); st != "RUNNING" {
		t.Errorf("job %s of %s: state %s, want RUNNING", j.ID, j.User.Name, st)
	}
	if !slurmtest.WaitUntil(30*time.Second, func() bool { return httpStatus(j.User, info.URL) == http.StatusOK }) {
		t.Errorf("job %s of %s: %s does not answer 200", j.ID, j.User.Name, info.URL)
	}
	for _, p := range []string{
		j.Layout.HomeSessionDir(info.Port), filepath.Join(j.Layout.HomeSessionDir(info.Port), "profile"),
		filepath.Join(j.Layout.PreferredRuntimeJobDir(), layout.SessionDirName(info.Port), layout.StateFile),
		filepath.Join(j.Layout.PreferredRuntimeJobDir(), layout.SupervisorFile),
	} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("job %s of %s: %v", j.ID, j.User.Name, err)
		}
	}
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.Layout.Marker(info.Port))
	if comms := slurmtest.Comms(ids); !slices.Contains(comms, "firefox-esr") || !slices.Contains(comms, "xpra") {
		t.Errorf("job %s of %s: session processes %v lack xpra or firefox-esr", j.ID, j.User.Name, comms)
	}
}

// firefoxMain returns the session's main Firefox process (comm firefox-esr, parent not Firefox).
func firefoxMain(t *testing.T, j *Job, port int) proc.Identity {
	t.Helper()
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.Layout.Marker(port))
	mains := slurmtest.FirefoxMains(ids)
	if len(mains) != 1 {
		t.Fatalf("job %s: want one main firefox-esr of session %d, found %v among %v", j.ID, port, mains, slurmtest.Comms(ids))
	}
	return mains[0]
}

// httpStatus fetches url as user u (a session admits only its own user's connections): the
// status, or 0 when the connection gave no HTTP answer.
func httpStatus(u User, url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", url)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	out, _ := cmd.Output()
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return code
}

// fileSnapshot is what must not change about a root-owned file a hostile user points at.
type fileSnapshot struct {
	mode     os.FileMode
	uid, gid uint32
	size     int64
	mtime    time.Time
	data     string
}

func snapshot(t *testing.T, path string) fileSnapshot {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	s := fileSnapshot{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, size: fi.Size(), mtime: fi.ModTime()}
	if fi.Mode().IsRegular() {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		s.data = string(b)
	} else if fi.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		s.data = strings.Join(names, "\n")
	}
	return s
}
