package reclaim

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"
	"golang.org/x/sys/unix"
)

// HookLog configures the logger of ffl-epilog and ffl-prolog. Slurm discards a Prolog's and an
// Epilog's output, so what they say must go to syslog and/or a file to be seen at all; stderr
// is kept for manual runs.
type HookLog struct {
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

// New builds the logger. Problems opening syslog or the file do not stop it (the hook must run
// anyway); they are returned for the caller to log through what did open.
func (h HookLog) New() (*logrus.Logger, func(), []error) {
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
	out := &tee{ws: []io.Writer{stderr}}
	var closers []io.Closer
	if h.File != "" {
		f, err := openLogFile(h.File)
		if err != nil {
			errs = append(errs, err)
		} else {
			out.ws = append(out.ws, f)
			closers = append(closers, f)
		}
	}
	log.SetOutput(out)
	if h.Syslog {
		hook, err := lsyslog.NewSyslogHook("", "", syslog.LOG_INFO|syslog.LOG_DAEMON, h.Tag)
		if err != nil {
			errs = append(errs, fmt.Errorf("syslog: %w", err))
		} else {
			log.AddHook(hook)
			closers = append(closers, hook.Writer)
		}
	}
	closeAll := func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	return log, closeAll, errs
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

// tee writes to every writer, ignoring individual failures: slurmd may have closed stderr, and
// that must not keep a line from the file.
type tee struct {
	mu sync.Mutex
	ws []io.Writer
}

// Write implements io.Writer; it always reports success (see tee).
func (t *tee) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.ws {
		_, _ = w.Write(p)
	}
	return len(p), nil
}
