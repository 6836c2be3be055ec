package hook

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Bounds of the log sinks: a hook's log write must never be what keeps it past its timeout.
const (
	// sinkQueue is how many lines a sink holds while its writer is slow; more are dropped
	// (and counted) rather than waited for.
	sinkQueue = 4096
	// FlushTimeout bounds the watchdog's wait for the sinks before it ends a run.
	FlushTimeout = 200 * time.Millisecond
	// ExitFlushTimeout bounds the wait for the file and stderr sinks when a run ends by itself
	// (Close), and the run's own bound (Arm) bounds it too. It is longer than FlushTimeout so that
	// the summary line survives a write the kernel holds up: a write to a busy disk is throttled
	// by up to 200 ms per call (balance_dirty_pages), and a run ends with several lines queued. A
	// log file on a hung file system costs a run at most this. The syslog sink keeps
	// FlushTimeout: any user can fill /dev/log's queue, and must not make every Epilog slower.
	ExitFlushTimeout = 2 * time.Second
)

// Log configures the logger of ffl-epilog and ffl-prolog. Slurm discards a Prolog's and an
// Epilog's output, so what they say must go to syslog and/or a file to be seen at all; stderr
// is kept for manual runs. Every sink is written by its own goroutine through a bounded queue:
// a syslog daemon that does not read (a user can fill /dev/log's queue) or a log file on a hung
// file system drops lines instead of blocking the cleanup.
type Log struct {
	// Tag names the program in syslog ("ffl-epilog").
	Tag string
	// Syslog sends every line to the local syslog (facility daemon).
	Syslog bool
	// File, if set, is appended to (created 0640 if missing; a symlink, FIFO or device is refused).
	File string
	// Debug enables debug lines.
	Debug bool
	// Stderr is where lines go besides syslog and the file (default os.Stderr).
	Stderr io.Writer
}

// Logger is a hook's logger and its sinks.
type Logger struct {
	*logrus.Logger
	sinks []*sink
	// bound is when the run's watchdog ends the process (Arm; zero: none): Close never waits
	// past it.
	bound time.Time
}

// Flush waits until every sink has written what it was given, or until deadline, and says how
// many lines were dropped.
func (l *Logger) Flush(deadline time.Time) (dropped int) {
	for _, s := range l.sinks {
		dropped += s.flush(deadline)
	}
	return dropped
}

// Close flushes (ExitFlushTimeout, syslog FlushTimeout, never past the run's bound) and closes
// the sinks' files.
func (l *Logger) Close() {
	now := time.Now()
	for _, s := range l.sinks {
		wait := ExitFlushTimeout
		if s.userFillable {
			wait = FlushTimeout
		}
		s.flush(closeDeadline(now, l.bound, wait))
	}
	for _, s := range l.sinks {
		if c, ok := s.w.(io.Closer); ok && s.w != os.Stderr {
			_ = c.Close()
		}
	}
}

// New builds the logger. Problems opening syslog or the file do not stop it (the hook must run
// anyway); they are returned for the caller to log through what did open.
func (h Log) New() (*Logger, []error) {
	var errs []error
	log := logrus.New()
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: "2006-01-02T15:04:05.000Z07:00", DisableColors: true})
	if h.Debug {
		log.SetLevel(logrus.DebugLevel)
	}
	stderr := h.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	out := &Logger{Logger: log}
	tee := &tee{}
	add := func(w io.Writer) *sink {
		s := newSink(w)
		out.sinks = append(out.sinks, s)
		return s
	}
	tee.ws = append(tee.ws, add(stderr))
	if h.File != "" {
		f, err := openLogFile(h.File)
		if err != nil {
			errs = append(errs, err)
		} else {
			tee.ws = append(tee.ws, add(f))
		}
	}
	log.SetOutput(tee)
	if h.Syslog {
		w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, h.Tag)
		if err != nil {
			errs = append(errs, fmt.Errorf("syslog: %w", err))
		} else {
			s := add(w)
			s.userFillable = true
			log.AddHook(&syslogHook{s: s, w: w})
		}
	}
	return out, errs
}

// closeDeadline is until when Close, at now, waits for a sink it gives wait: cut to the run's
// bound when there is one (the watchdog then flushes and exits anyway).
func closeDeadline(now, bound time.Time, wait time.Duration) time.Time {
	d := now.Add(wait)
	if !bound.IsZero() && bound.Before(d) {
		return bound
	}
	return d
}

// openLogFile opens an admin-configured log file for appending without following a symlink in
// its last component and without blocking on a FIFO, and refuses anything but a regular file.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("log file %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	return f, nil
}

// tee hands every line to every sink; it never blocks and always reports success.
type tee struct{ ws []*sink }

// Write implements io.Writer.
func (t *tee) Write(p []byte) (int, error) {
	line := append([]byte(nil), p...) // logrus reuses p after Write returns
	for _, w := range t.ws {
		w.put(func(w io.Writer) { _, _ = w.Write(line) })
	}
	return len(p), nil
}

// sink writes to w from its own goroutine, through a bounded queue.
type sink struct {
	w io.Writer
	// userFillable: any user can make this destination stop taking lines (syslog's /dev/log).
	userFillable bool
	mu           sync.Mutex
	queue        chan func(io.Writer)
	pending      sync.WaitGroup
	dropped      int
}

func newSink(w io.Writer) *sink {
	s := &sink{w: w, queue: make(chan func(io.Writer), sinkQueue)}
	go func() {
		for fn := range s.queue {
			fn(s.w)
			s.pending.Done()
		}
	}()
	return s
}

// put queues a write; a full queue drops it.
func (s *sink) put(write func(io.Writer)) {
	s.pending.Add(1)
	select {
	case s.queue <- write:
	default:
		s.pending.Done()
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
	}
}

func (s *sink) flush(deadline time.Time) int {
	done := make(chan struct{})
	go func() { s.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// syslogHook sends each entry to syslog with its level, through a sink.
type syslogHook struct {
	s *sink
	w *syslog.Writer
}

// Levels implements logrus.Hook.
func (h *syslogHook) Levels() []logrus.Level { return logrus.AllLevels }

// Fire implements logrus.Hook: it formats the entry now and queues the write.
func (h *syslogHook) Fire(e *logrus.Entry) error {
	line, err := e.String()
	if err != nil {
		return err
	}
	w := h.w
	var send func(string) error
	switch e.Level {
	case logrus.PanicLevel:
		send = w.Crit
	case logrus.FatalLevel:
		send = w.Crit
	case logrus.ErrorLevel:
		send = w.Err
	case logrus.WarnLevel:
		send = w.Warning
	case logrus.InfoLevel:
		send = w.Info
	default:
		send = w.Debug
	}
	h.s.put(func(io.Writer) { _ = send(line) })
	return nil
}
