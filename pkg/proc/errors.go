package proc

import "errors"

var (
	// ErrGone means the process is not there any more: its PID is unused, belongs to a zombie
	// (exited, only waiting to be reaped), or now belongs to a different process (start time
	// changed). Cleanup paths treat it as success: there is nothing left to end.
	ErrGone = errors.New("process gone")

	// ErrRefused means the request was refused on principle: PID <= 1, the caller itself, a
	// process of uid 0, or a process whose real uid is not the one recorded. ffl never signals
	// such processes, whatever a (possibly forged) state file says.
	ErrRefused = errors.New("refused")
)
