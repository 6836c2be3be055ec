package hook

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/faketree/ftest"
	"github.com/ffl-hpc/ffl/internal/reclaimtest"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

// childEnv makes the test binary act as a hook run whose last step never ends (see TestMain).
const childEnv = "FFL_HOOK_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "stuck" {
		log, _ := Log{Tag: "test"}.New()
		run := &Run{}
		run.Phase("home")
		run.Arm(200*time.Millisecond, log, func(phase string) {
			log.WithField("unfinished", phase).Info("epilog done")
		})
		select {} // a step stuck in the kernel, as far as this process can tell
	}
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		_ = reclaim.ServeHelper(os.Args[2], os.Stdout, nil)
		os.Exit(0)
	}
	os.Exit(ftest.RunAsRoot(m, "hook-faketree-", &faketreeBin))
}

// helperArg makes the test binary act as the privilege-dropped helper (see TestMain): the
// helper re-executes /proc/self/exe, which in a test is the test binary.
const helperArg = "hook-test-helper"

var testHelper = reclaim.Helper{Args: []string{helperArg}}

// faketreeBin is built once by TestMain (when running as root).
var faketreeBin string

// newFixture is reclaimtest's fixture with this binary's faketree (root only: skips otherwise).
func newFixture(t *testing.T) *reclaimtest.Fixture { return reclaimtest.New(t, faketreeBin) }

// TestWatchdog: a run stuck past its timeout is ended by the watchdog at timeout + margin, with
// exit status 0 and a summary line naming the step in progress.
func TestWatchdog(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=stuck")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err != nil {
		t.Errorf("exit: %v (want status 0)", err)
	}
	if !strings.Contains(stderr.String(), "epilog done") || !strings.Contains(stderr.String(), "unfinished=home") {
		t.Errorf("no summary naming the unfinished step: %q", stderr.String())
	}
	if took > 5*time.Second {
		t.Errorf("the watchdog ended the run after %s", took)
	}
}

// blockingWriter never returns from Write until released.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	w.got++
	w.mu.Unlock()
	return len(p), nil
}

// TestLogNeverBlocks: a destination that does not take lines (a full syslog queue, a hung
// file system) costs dropped lines, never time.
func TestLogNeverBlocks(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	log, _ := Log{Tag: "test", Stderr: w}.New()
	t0 := time.Now()
	for i := 0; i < sinkQueue+100; i++ {
		log.Info("line")
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("logging to a stuck destination took %s", d)
	}
	dropped := log.Flush(time.Now().Add(100 * time.Millisecond))
	if dropped < 99 {
		t.Errorf("%d lines dropped, want at least 99", dropped)
	}
	close(w.release)
	log.Flush(time.Now().Add(2 * time.Second))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.got == 0 {
		t.Error("nothing written after the destination recovered")
	}
}

// TestLogCopiesLines: lines reach the destination intact although logrus reuses its buffer.
func TestLogCopiesLines(t *testing.T) {
	var buf syncBuffer
	log, _ := Log{Tag: "test", Stderr: &buf}.New()
	for i := 0; i < 100; i++ {
		log.WithField("i", i).Info("line")
	}
	log.Flush(time.Now().Add(2 * time.Second))
	out := buf.String()
	for _, want := range []string{"i=0\n", "i=42\n", "i=99\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("%q missing from %q", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*syncBuffer)(nil)

// TestJobFromEnv: without NSS on the fast read; a missing SLURM_JOB_GID asks NSS at once.
func TestJobFromEnv(t *testing.T) {
	env := map[string]string{"SLURM_JOB_ID": "12", "SLURM_JOB_UID": "4242", "SLURM_JOB_GID": "4242",
		"SLURM_JOB_USER": "nobody-such-ffl", "SLURMD_NODENAME": "n1"}
	job, resolve, err := JobFromEnv(func(k string) string { return env[k] })
	if err != nil || job.UID != 4242 || job.ID != "12" || resolve == nil {
		t.Errorf("fast read: %+v, resolve %v, %v", job, resolve != nil, err)
	}
	delete(env, "SLURM_JOB_GID")
	if _, resolve, err := JobFromEnv(func(k string) string { return env[k] }); resolve != nil && err == nil {
		t.Error("without SLURM_JOB_GID: still a deferred resolve")
	}
}

// slowWriter takes each write after a delay, as a disk that throttles its writers does.
type slowWriter struct {
	delay time.Duration
	buf   syncBuffer
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return w.buf.Write(p)
}

// TestCloseKeepsTheSummary: lines a slow destination holds up longer than the watchdog's flush
// (FlushTimeout) are still written when the run ends by itself; a run's bound cuts the wait.
func TestCloseKeepsTheSummary(t *testing.T) {
	w := &slowWriter{delay: 150 * time.Millisecond}
	log, _ := Log{Tag: "test", Stderr: w}.New()
	for i := 0; i < 3; i++ { // 450 ms of writes, more than FlushTimeout
		log.WithField("i", i).Info("line")
	}
	log.Info("epilog done")
	log.Close()
	if out := w.buf.String(); !strings.Contains(out, "epilog done") {
		t.Errorf("the summary line was lost: %q", out)
	}
}

func TestCloseDeadline(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		bound time.Time
		wait  time.Duration
		want  time.Time
	}{
		{"no watchdog", time.Time{}, ExitFlushTimeout, now.Add(ExitFlushTimeout)},
		{"the watchdog later", now.Add(time.Minute), ExitFlushTimeout, now.Add(ExitFlushTimeout)},
		{"the watchdog sooner", now.Add(300 * time.Millisecond), ExitFlushTimeout, now.Add(300 * time.Millisecond)},
		{"the watchdog past", now.Add(-time.Second), ExitFlushTimeout, now.Add(-time.Second)},
		{"syslog's short wait", now.Add(time.Minute), FlushTimeout, now.Add(FlushTimeout)},
	} {
		if got := closeDeadline(now, tc.bound, tc.wait); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got.Sub(now), tc.want.Sub(now))
		}
	}
}

// TestCloseSyslogShortWait: a destination any user can stop (syslog's /dev/log) gets only
// FlushTimeout at the end of a run, not ExitFlushTimeout: a user cannot make every Epilog wait.
func TestCloseSyslogShortWait(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	defer close(w.release)
	log, _ := Log{Tag: "test", Stderr: io.Discard}.New()
	s := newSink(w)
	s.userFillable = true
	log.sinks = append(log.sinks, s)
	s.put(func(w io.Writer) { _, _ = w.Write([]byte("epilog done\n")) })
	t0 := time.Now()
	log.Close()
	// FlushTimeout is 0.2 s and ExitFlushTimeout 2 s: the margin tells the two apart on a busy
	// machine.
	if d := time.Since(t0); d >= ExitFlushTimeout-500*time.Millisecond {
		t.Errorf("Close waited %s for a stuck syslog; want about %s", d, FlushTimeout)
	}
}
