package lifecycle

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/execenv"
	"github.com/ffl-hpc/ffl/pkg/front"
	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// WarningTitle starts the title of the window a session shows before it ends.
const WarningTitle = "ffl: this Firefox session ends"

// JobEnd answers when the job reaches its time limit (false when unknown or unlimited).
type JobEnd func(ctx context.Context, job string) (time.Time, bool)

// SqueueJobEnd asks squeue (found in path, run through run: see squeue) for the job's end
// time (%e: local time, no zone).
func SqueueJobEnd(run prereq.Runner, path string) JobEnd {
	return func(ctx context.Context, job string) (time.Time, bool) {
		if _, err := strconv.ParseUint(job, 10, 64); err != nil {
			return time.Time{}, false
		}
		bin, err := prereq.LookPath("squeue", path)
		if err != nil {
			return time.Time{}, false
		}
		out, err := squeue(ctx, run, bin, path, job, "%e", false)
		if err != nil {
			return time.Time{}, false
		}
		end, err := time.ParseInLocation("2006-01-02T15:04:05", strings.TrimSpace(string(out)), time.Local)
		if err != nil {
			return time.Time{}, false // "Unknown", "N/A": no limit known
		}
		return end, true
	}
}

// squeue runs `squeue -h -j JOB -o FORMAT` (10 s at most) and returns its output (stderr too
// when withStderr). In the supervisor, run is its Reaper: a squeue the Reaper does not own may
// be reaped by it before its Wait, which then fails with ECHILD and the answer is lost. nil
// runs it with os/exec alone.
func squeue(ctx context.Context, run prereq.Runner, bin, path, job, format string, withStderr bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := execenv.CommandContext(ctx, "", squeueEnv(path), bin, "-h", "-j", job, "-o", format)
	var out bytes.Buffer
	cmd.Stdout = &out
	if withStderr {
		cmd.Stderr = &out
	}
	var err error
	if run == nil {
		err = cmd.Run()
	} else if err = run.Start(cmd); err == nil {
		err = run.Wait(cmd)
	}
	return out.Bytes(), err
}

// runner is the Reaper as a prereq.Runner: nil without one (a nil *proc.Reaper in the interface
// would not be nil).
func runner(r *proc.Reaper) prereq.Runner {
	if r == nil {
		return nil
	}
	return r
}

// squeueEnv is squeue's whole environment: PATH, the C locale (its output is parsed), and
// SLURM_CONF when the job has one (slurmd sets it for jobs of a cluster whose slurm.conf is not
// in the default place); an odd value is left out.
func squeueEnv(path string) []string {
	env := []string{"PATH=" + path, "LANG=C", "LC_ALL=C"}
	if c := os.Getenv("SLURM_CONF"); filepath.IsAbs(c) && filepath.Clean(c) == c && !hasControl(c) {
		env = append(env, "SLURM_CONF="+c)
	}
	return env
}

// warningText is what a session shows before it ends: when, why, and where the user's files are.
func warningText(end time.Time, why, downloads string) (title, body string) {
	when := "soon"
	if !end.IsZero() {
		when = "at " + end.Format("15:04") + " (in about " + roundMinutes(time.Until(end)) + ")"
	}
	title = WarningTitle + " " + when
	if downloads != "" {
		title += ". Downloads: " + downloads
	}
	var b strings.Builder
	fmt.Fprintf(&b, "This Firefox session ends %s: %s.\n\n", when, why)
	if downloads != "" {
		fmt.Fprintf(&b, "Your downloads are kept in %s\n(a download still running then is kept as NAME.partial).\n\n", downloads)
	}
	b.WriteString("Pages, forms and tabs open in Firefox are gone when it ends.")
	return title, b.String()
}

func roundMinutes(d time.Duration) string {
	m := int(d.Round(time.Minute).Minutes())
	switch {
	case m <= 1:
		return "a minute"
	default:
		return strconv.Itoa(m) + " minutes"
	}
}

// endWarning is the warning shown, kept for the sessions that become ready after it.
type endWarning struct{ title, body string }

// WarnAll shows the end warning in every ready session, and in every session that becomes
// ready from now on (a session still starting has no display to show it on yet).
func (m *Manager) WarnAll(end time.Time, why string) {
	title, body := warningText(end, why, m.s.DownloadDir)
	m.mu.Lock()
	m.warning = &endWarning{title, body}
	list := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		list = append(list, s)
	}
	m.mu.Unlock()
	for _, s := range list {
		if s.front.State() != front.Ready {
			continue // warned by startOne when ready
		}
		s.showEndWarning(title, body)
	}
}

func (s *Session) showEndWarning(title, body string) {
	if err := s.showWindow(title, body); err != nil {
		s.log.WithError(err).Warn("end warning not shown")
		return
	}
	s.log.Info("end warning shown")
}

// warnIfDue shows a warning already given to the other sessions in s, just made ready.
func (m *Manager) warnIfDue(s *Session) {
	m.mu.Lock()
	w := m.warning
	m.mu.Unlock()
	if w == nil {
		return
	}
	s.showEndWarning(w.title, w.body)
}

// showWindow shows a message window over Firefox on the session's display (xmessage,
// x11-utils): xpra forwards it to the HTML5 client like any window. It is a session process
// (the marker first in its environment, its identity recorded), so every cleanup ends it with
// the session.
func (s *Session) showWindow(title, body string) error {
	st := s.st
	s.stateMu.Lock()
	display := s.state.Display
	s.stateMu.Unlock()
	if display == "" {
		return fmt.Errorf("session %d has no display yet", s.port)
	}
	bin, err := prereq.LookPath("xmessage", st.Path)
	if err != nil {
		return fmt.Errorf("xmessage not found: install the Debian package x11-utils")
	}
	cmd := execenv.Command(filepath.Join(s.paths.Home, "home"), append(xpraEnv(s.paths, st.User, st.Path, st.Lang, s.marker), "DISPLAY="+display),
		bin, "-center", "-title", title, "-buttons", "OK:0", "-default", "OK", body)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.startCmd(cmd); err != nil {
		return fmt.Errorf("start xmessage: %w", err)
	}
	if id, err := proc.Lookup(cmd.Process.Pid); err == nil {
		s.recordProcesses([]proc.Identity{id})
	}
	go func() {
		_ = cmd.Wait()
		if st.Reaper != nil {
			st.Reaper.Disown(cmd.Process.Pid)
		}
	}()
	s.log.WithFields(logrus.Fields{"pid": cmd.Process.Pid, "title": title}).Debug("message shown over Firefox")
	return nil
}
