package proc

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Signal sends sig to id only if id.PID is still that process, and only if ffl may touch it at
// all. This is the one way ffl signals anything (DESIGN.md, "Signalling rule").
//
// Order of operations, and why it is race-free: pidfd_open(id.PID) pins whatever process holds
// the PID now (call it P). Then stat and status are read from /proc and compared with id: start
// time (a mismatch means the PID was reused: ErrGone), real uid (0 or != id.UID: ErrRefused),
// state (zombie: ErrGone). Finally pidfd_send_signal delivers to P and only P. If P is still
// alive at that point it was alive during the /proc read, so the read described P and P is id; if
// P has exited meanwhile the kernel answers ESRCH (ErrGone), even if the PID is already reused.
//
// Refused up front (ErrRefused): PID <= 1, the caller's own PID, a recorded uid of 0. A PID that
// names a thread rather than a process is not the recorded process: ErrGone.
//
// Where pidfd_open does not exist (ENOSYS, kernels before 5.3, or EPERM from a seccomp filter
// that hides it) Signal falls back to check-then-kill(2). That leaves the classic window between
// check and kill in which the PID could be recycled; it is the best such systems allow.
func Signal(id Identity, sig unix.Signal) error {
	return signaller{fs: FS{}, pidfdOpen: unix.PidfdOpen, kill: unix.Kill, self: os.Getpid()}.signal(id, sig)
}

// signaller holds Signal's dependencies so tests can simulate a kernel without pidfd_open.
type signaller struct {
	fs        FS
	pidfdOpen func(pid, flags int) (int, error)
	kill      func(pid int, sig unix.Signal) error
	self      int
}

func (s signaller) signal(id Identity, sig unix.Signal) error {
	switch {
	case id.PID <= 1:
		return fmt.Errorf("signal %s: pid %d: %w", sigName(sig), id.PID, ErrRefused)
	case id.PID == s.self:
		return fmt.Errorf("signal %s: pid %d is this process: %w", sigName(sig), id.PID, ErrRefused)
	case id.UID == 0:
		return fmt.Errorf("signal %s: %s: uid 0: %w", sigName(sig), id, ErrRefused)
	case id.UID < 0:
		return fmt.Errorf("signal %s: %s: bad uid: %w", sigName(sig), id, ErrRefused)
	}
	fd, err := s.pidfdOpen(id.PID, 0)
	switch {
	case err == nil:
		defer unix.Close(fd)
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("signal %s: %s: %w", sigName(sig), id, ErrGone)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// With flags 0 and pid > 0: the PID names a thread, not a process (EINVAL in pidfd_open(2),
		// ENOENT on recent kernels), so the recorded process is not there.
		return fmt.Errorf("signal %s: %s: pid is a thread: %w", sigName(sig), id, ErrGone)
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
		return s.checkThenKill(id, sig)
	default:
		return fmt.Errorf("signal %s: %s: pidfd_open: %w", sigName(sig), id, err)
	}
	// The pidfd is open: this check describes the pinned process if it is still alive.
	if err := s.verify(id); err != nil {
		return fmt.Errorf("signal %s: %w", sigName(sig), err)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %s: %s: exited: %w", sigName(sig), id, ErrGone)
		}
		return fmt.Errorf("signal %s: %s: pidfd_send_signal: %w", sigName(sig), id, err)
	}
	return nil
}

func (s signaller) checkThenKill(id Identity, sig unix.Signal) error {
	if err := s.verify(id); err != nil {
		return fmt.Errorf("signal %s: %w", sigName(sig), err)
	}
	if err := s.kill(id.PID, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %s: %s: exited: %w", sigName(sig), id, ErrGone)
		}
		return fmt.Errorf("signal %s: %s: kill: %w", sigName(sig), id, err)
	}
	return nil
}

// verify re-reads id.PID from /proc and checks it is still id, not root's, and not a zombie.
func (s signaller) verify(id Identity) error {
	st, uid, err := s.fs.inspect(id.PID)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	switch {
	case st.StartTime != id.StartTime:
		return fmt.Errorf("%s: pid now belongs to a process started at %d: %w", id, st.StartTime, ErrGone)
	case uid == 0:
		return fmt.Errorf("%s: process runs as uid 0: %w", id, ErrRefused)
	case uid != id.UID:
		return fmt.Errorf("%s: process runs as uid %d: %w", id, uid, ErrRefused)
	case st.Zombie():
		return fmt.Errorf("%s: zombie: %w", id, ErrGone)
	}
	return nil
}

// sigName names a signal for messages ("SIGTERM"), falling back to its number.
func sigName(sig unix.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}
