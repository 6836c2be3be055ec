package slurm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	env := []string{
		"PATH=" + testPath, "HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name, "LANG=C.UTF-8",
		"SLURM_CONF=" + filepath.Join(c.confDir, "slurm.conf"),
		"FFL_LAUNCH=" + c.launch, "FFL_CONFIG=" + c.config,
	}
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
	out, err := c.asUserEnv(context.Background(), u, env, "sbatch", sb...)
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
	t.Cleanup(func() {
		if t.Failed() {
			j.dumpLogs(t)
		}
		if j.inQueue() {
			_, _ = c.slurm(context.Background(), "scancel", j.ID)
			waitUntil(goneLimit, func() bool { return !j.inQueue() })
		}
	})
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
func (j *Job) inQueue() bool {
	out, err := j.c.slurm(context.Background(), "squeue", "-h", "-j", j.ID, "-o", "%T")
	if err != nil {
		return !strings.Contains(out, "Invalid job id")
	}
	return strings.TrimSpace(out) != ""
}

// infos returns the sessions the launcher announced so far (its --json lines).
func (j *Job) infos() []lifecycle.Info {
	f, err := os.Open(j.Out)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []lifecycle.Info
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var info lifecycle.Info
		if json.Unmarshal(line, &info) == nil && info.Port != 0 {
			out = append(out, info)
		}
	}
	return out
}

// waitReady waits for the job's first session and checks it answers its user with HTTP 200.
func (j *Job) waitReady(t *testing.T) lifecycle.Info {
	t.Helper()
	var info lifecycle.Info
	ok := waitUntil(readyLimit, func() bool {
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
	ok := waitUntil(10*time.Second, func() bool {
		owners = listeners(port)
		for _, pid := range owners {
			id, err := proc.Lookup(pid)
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err == nil && id.UID == j.User.UID && strings.Contains("\x00"+string(env), "\x00SLURM_JOB_ID="+j.ID+"\x00") {
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

func containsInt(list []int, n int) bool {
	for _, x := range list {
		if x == n {
			return true
		}
	}
	return false
}

// waitGone waits until the job has left the queue (its Epilog has then run).
func (j *Job) waitGone(t *testing.T, limit time.Duration) {
	t.Helper()
	if !waitUntil(limit, func() bool { return !j.inQueue() }) {
		st, _ := j.state()
		t.Fatalf("job %s still in the queue after %v (%s)", j.ID, limit, st)
	}
}

// state returns JobState and ExitCode from scontrol (kept MinJobAge = 300 s after the end).
func (j *Job) state() (state, exit string) {
	out, _ := j.c.slurm(context.Background(), "scontrol", "show", "job", "-o", j.ID)
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "JobState="); ok {
			state = v
		}
		if v, ok := strings.CutPrefix(f, "ExitCode="); ok {
			exit = v
		}
	}
	return state, exit
}

// cancel runs scancel with extra options (an already finished job is no error).
func (j *Job) cancel(t *testing.T, opts ...string) {
	t.Helper()
	args := append(append([]string{}, opts...), j.ID)
	if out, err := j.c.slurm(context.Background(), "scancel", args...); err != nil && !strings.Contains(out, "already completing or completed") {
		t.Fatalf("scancel %s: %v", strings.Join(args, " "), err)
	}
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
// time, the job user's uid), so that no grace path runs.
func (j *Job) killLauncher(t *testing.T) {
	t.Helper()
	rec, err := j.supervisor()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Process.UID != j.User.UID {
		t.Fatalf("job %s: supervisor record names uid %d, want %d", j.ID, rec.Process.UID, j.User.UID)
	}
	if err := proc.Signal(rec.Process, unix.SIGKILL); err != nil {
		t.Fatalf("SIGKILL launcher %v: %v", rec.Process, err)
	}
	t.Logf("job %s: SIGKILL to ffl-launch %v", j.ID, rec.Process)
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
	ok := waitUntil(epilogLimit, func() bool {
		for _, l := range j.c.epilogLines() {
			if l.fields["job"] == j.ID && strings.HasPrefix(l.fields["msg"], "epilog done") {
				found = l
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("job %s: no 'epilog done' line in %s", j.ID, j.c.epilogLog)
	}
	return found
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
	if !waitUntil(10*time.Second, func() bool { return len(j.markerProcs()) == 0 }) {
		t.Errorf("job %s: processes with marker %s left: %v", j.ID, j.Layout.JobMarkerPrefix(), describe(j.markerProcs()))
	}
	for _, p := range []string{j.Layout.HomeJobDir(), j.Layout.PreferredRuntimeJobDir(), j.Layout.FallbackRuntimeJobDir()} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("job %s: %s left (%v)", j.ID, p, err)
		}
	}
	for _, port := range ports {
		if !waitUntil(10*time.Second, func() bool { return portFree(port) }) {
			t.Errorf("job %s: port %d still in use", j.ID, port)
		}
	}
	c.assertNotDrained(t)
	return sum
}

// assertNotDrained: an Epilog or Prolog that exits non-zero drains the node.
func (c *Cluster) assertNotDrained(t *testing.T) {
	t.Helper()
	out, err := c.slurm(context.Background(), "sinfo", "-h", "-N", "-o", "%T")
	if err != nil {
		t.Errorf("sinfo: %v", err)
		return
	}
	if strings.Contains(out, "drain") {
		reason, _ := c.slurm(context.Background(), "sinfo", "-h", "-R")
		t.Errorf("node drained: %s (%s)", out, reason)
		if _, err := c.slurm(context.Background(), "scontrol", "update", "nodename="+c.node, "state=resume"); err != nil {
			t.Logf("resume: %v", err)
		}
	}
}

// assertRunning checks that a session of a live job is untouched: the job runs, the session
// answers its user with HTTP 200, its directories and state are there, its processes are alive.
func (c *Cluster) assertRunning(t *testing.T, j *Job, info lifecycle.Info) {
	t.Helper()
	if st, _ := j.state(); st != "RUNNING" {
		t.Errorf("job %s of %s: state %s, want RUNNING", j.ID, j.User.Name, st)
	}
	if !waitUntil(30*time.Second, func() bool { return httpStatus(j.User, info.URL) == http.StatusOK }) {
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
	if comms := commsOf(ids); !containsString(comms, "firefox-esr") || !containsString(comms, "xpra") {
		t.Errorf("job %s of %s: session processes %v lack xpra or firefox-esr", j.ID, j.User.Name, comms)
	}
}

// firefoxMain returns the session's main Firefox process (comm firefox-esr, parent not Firefox).
func firefoxMain(t *testing.T, j *Job, port int) proc.Identity {
	t.Helper()
	ids, _ := proc.FindByMarker(j.User.UID, layout.MarkerVar, j.Layout.Marker(port))
	var mains []proc.Identity
	for _, id := range ids {
		st, err := proc.ReadStat(id.PID)
		if err != nil || st.Comm != "firefox-esr" {
			continue
		}
		if pst, err := proc.ReadStat(st.PPID); err == nil && pst.Comm == "firefox-esr" {
			continue
		}
		mains = append(mains, id)
	}
	if len(mains) != 1 {
		t.Fatalf("job %s: want one main firefox-esr of session %d, found %v among %v", j.ID, port, mains, commsOf(ids))
	}
	return mains[0]
}

func commsOf(ids []proc.Identity) []string {
	var out []string
	for _, id := range ids {
		if st, err := proc.ReadStat(id.PID); err == nil {
			out = append(out, st.Comm)
		}
	}
	sort.Strings(out)
	return out
}

func describe(ids []proc.Identity) []string {
	var out []string
	for _, id := range ids {
		comm := "?"
		if st, err := proc.ReadStat(id.PID); err == nil {
			comm = st.Comm
		}
		out = append(out, fmt.Sprintf("%d(%s)", id.PID, comm))
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
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

// waitUntil polls cond every 100 ms until it holds or limit passes; it reports whether it held.
func waitUntil(limit time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
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

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
