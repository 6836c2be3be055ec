package slurmtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scriptTimeout bounds one run of a harness script: a start waits for slurmctld's first
// scheduler pass, a stop for the Epilogs of cancelled jobs.
const scriptTimeout = 5 * time.Minute

// Script is one run of a shell script of tests/slurm (start-local-slurm.sh, multinode.sh, ...):
// its output is kept for the error, and a progress line says how it went and how long it took.
type Script struct {
	// Path is the script.
	Path string
	// Args are its arguments (the CONFDIR, and for multinode.sh the command before it).
	Args []string
	// Env is added to the caller's environment (the scripts' knobs).
	Env []string
	// WaitDelay, when set, bounds the wait for the output pipe after the script exited: a
	// daemon started without redirecting it must not hang the suite.
	WaitDelay time.Duration
	// Logf prints the progress line (nil: none).
	Logf func(format string, args ...any)
}

// Run runs the script, bounded by five minutes.
func (s Script) Run() error {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Path, s.Args...)
	cmd.Env = append(os.Environ(), s.Env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.WaitDelay = s.WaitDelay
	t0 := time.Now()
	err := cmd.Run()
	name := strings.TrimSpace(filepath.Base(s.Path) + " " + strings.Join(s.Args, " "))
	if s.Logf != nil {
		s.Logf("%s: %v (%v)", name, ErrOrOK(err), time.Since(t0).Round(time.Millisecond))
	}
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, buf.String())
	}
	return nil
}

// LocalKnobs is the environment of start-local-slurm.sh that both single-node suites start
// their cluster with: ffl's Prolog and Epilog, KillWait, proctrack/cgroup where it works, and
// an extra partition whose cores may be shared (OverSubscribe=FORCE), so that several jobs of
// two CPUs run at once on a small machine. A random first job id keeps this run's directory
// names apart from whatever an earlier, interrupted run left in the test users' homes.
func LocalKnobs(prolog, epilog string, killWait time.Duration, partition, node string) []string {
	return []string{
		"SLURM_PROLOG=" + prolog,
		"SLURM_EPILOG=" + epilog,
		"SLURM_KILLWAIT=" + strconv.Itoa(int(killWait/time.Second)),
		"SLURM_PROCTRACK=auto",
		"SLURM_FIRST_JOB_ID=" + FirstJobID(),
		"SLURM_CONF_EXTRA=PartitionName=" + partition + " Nodes=" + node + " OverSubscribe=FORCE:16 MaxTime=INFINITE State=UP",
		"SLURM_FORCE_RESTART=1",
	}
}

// FirstJobID is a random SLURM_FIRST_JOB_ID (10000-809999): job ids name directories in the
// users' homes, and a run must not meet an interrupted run's leftovers.
func FirstJobID() string { return strconv.Itoa(10000 + rand.IntN(800000)) }

// Client runs Slurm's client commands as root against one cluster, the one whose slurm.conf is
// in ConfDir: the suites' clusters are not the machine's /etc/slurm one, or not only.
type Client struct {
	ConfDir string
}

// Run runs a Slurm client command (squeue, scontrol, ...) against the cluster, as Output does.
func (c Client) Run(ctx context.Context, name string, args ...string) (string, error) {
	return Output(ctx, []string{"SLURM_CONF=" + c.Conf()}, name, args...)
}

// Conf is the cluster's slurm.conf, for the SLURM_CONF of commands run as a test user.
func (c Client) Conf() string { return filepath.Join(c.ConfDir, "slurm.conf") }

// InQueue reports whether squeue still lists the job (pending, running or completing: a job
// stays COMPLETING until its Epilog has finished). An squeue that fails for another reason
// than an unknown id counts as listing it, so that a scenario waits rather than passes.
func (c Client) InQueue(id string) bool {
	out, err := c.Run(context.Background(), "squeue", "-h", "-j", id, "-o", "%T")
	if err != nil {
		return !strings.Contains(out, "Invalid job id")
	}
	return strings.TrimSpace(out) != ""
}

// JobState returns the job's JobState and ExitCode from scontrol (which keeps them MinJobAge =
// 300 s after the end): what a failure message says about a job that did not do as expected.
func (c Client) JobState(id string) (state, exit string) {
	out, _ := c.Run(context.Background(), "scontrol", "show", "job", "-o", id)
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

// WaitGone waits until the job has left the queue (its Epilog has then run) and fails t, naming
// the job's state, when it has not after limit.
func (c Client) WaitGone(t testing.TB, id string, limit time.Duration) {
	t.Helper()
	if !WaitUntil(limit, func() bool { return !c.InQueue(id) }) {
		st, _ := c.JobState(id)
		t.Fatalf("job %s still in the queue after %v (%s)", id, limit, st)
	}
}

// Cancel runs scancel with extra options on the job and fails t when it fails; a job that has
// already ended is no error (a scenario may race its own end).
func (c Client) Cancel(t testing.TB, id string, opts ...string) {
	t.Helper()
	args := append(append([]string{}, opts...), id)
	if out, err := c.Run(context.Background(), "scancel", args...); err != nil && !strings.Contains(out, "already completing or completed") {
		t.Fatalf("scancel %s: %v", strings.Join(args, " "), err)
	}
}

// AssertNotDrained fails t when the single node of the cluster is drained (a Prolog or Epilog
// that exits non-zero drains it), and resumes the node so that the next scenario can run.
func (c Client) AssertNotDrained(t testing.TB, node string) {
	t.Helper()
	out, err := c.Run(context.Background(), "sinfo", "-h", "-N", "-o", "%T")
	if err != nil {
		t.Errorf("sinfo: %v", err)
		return
	}
	if strings.Contains(out, "drain") {
		reason, _ := c.Run(context.Background(), "sinfo", "-h", "-R")
		t.Errorf("node drained: %s (%s)", out, reason)
		if _, err := c.Run(context.Background(), "scontrol", "update", "nodename="+node, "state=resume"); err != nil {
			t.Logf("resume: %v", err)
		}
	}
}

// CleanupJob registers for the end of t what a scenario's job needs when the scenario did not
// end it: dump (the job's logs) when t failed, then scancel and a wait of up to limit for the
// job to leave the queue, so that a failed scenario does not leak into the next.
func (c Client) CleanupJob(t testing.TB, id string, limit time.Duration, dump func()) {
	t.Cleanup(func() {
		if t.Failed() {
			dump()
		}
		if c.InQueue(id) {
			_, _ = c.Run(context.Background(), "scancel", id)
			WaitUntil(limit, func() bool { return !c.InQueue(id) })
		}
	})
}
