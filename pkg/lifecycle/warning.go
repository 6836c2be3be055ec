package lifecycle

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// WarningTitle starts the title of the window a session shows before it ends.
const WarningTitle = "ffl: this Firefox session ends"

// JobEnd answers when the job reaches its time limit (false when unknown or unlimited).
type JobEnd func(ctx context.Context, job string) (time.Time, bool)

// SqueueJobEnd asks squeue (found in path) for the job's end time (%e: local time, no zone).
func SqueueJobEnd(path string) JobEnd {
	return func(ctx context.Context, job string) (time.Time, bool) {
		if _, err := strconv.ParseUint(job, 10, 64); err != nil {
			return time.Time{}, false
		}
		bin, err := prereq.LookPath("squeue", path)
		if err != nil {
			return time.Time{}, false
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-h", "-j", job, "-o", "%e")
		cmd.Env = []string{"PATH=" + path, "LANG=C"}
		out, err := cmd.Output()
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

// WarnAll shows the end warning in every ready session.
func (m *Manager) WarnAll(end time.Time, why string) {
	m.mu.Lock()
	list := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		list = append(list, s)
	}
	m.mu.Unlock()
	title, body := warningText(end, why, m.s.DownloadDir)
	for _, s := range list {
		if err := s.warn(title, body); err != nil {
			s.log.WithError(err).Warn("end warning not shown")
		}
	}
}

// warn shows a window over Firefox on the session's display (xmessage, x11-utils): xpra
// forwards it to the HTML5 client like any window. It is a session process (the marker first
// in its environment, its identity recorded), so every cleanup ends it with the session.
func (s *Session) warn(title, body string) error {
	st := s.m.s
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
	cmd := exec.Command(bin, "-center", "-title", title, "-buttons", "OK:0", "-default", "OK", body)
	cmd.Env = append(xpraEnv(s.paths, st.User, st.Path, st.Lang, s.marker), "DISPLAY="+display)
	cmd.Dir = filepath.Join(s.paths.Home, "home")
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
	s.log.WithFields(logrus.Fields{"pid": cmd.Process.Pid, layout.MarkerVar: s.marker}).Info("end warning shown")
	return nil
}
