package lifecycle

import (
	"errors"
	"fmt"
)

// Sentinel errors callers map to exit codes (docs/DESIGN.md).
var (
	// ErrBadInput is a request that can never succeed as given (port outside the range, ...).
	ErrBadInput = errors.New("bad input")
	// ErrMissing is a prerequisite that is not installed (xpra, firefox-esr).
	ErrMissing = errors.New("prerequisite missing")
	// ErrPortInUse is xpra's "Address already in use".
	ErrPortInUse = errors.New("port in use")
	// ErrNotFound is a session that this supervisor does not run.
	ErrNotFound = errors.New("no such session")
	// ErrStopping is a request made while the supervisor is shutting down.
	ErrStopping = errors.New("supervisor is stopping")
)

// StartError explains why xpra did not become ready, with the last lines of its output: the
// user sees the real reason (a missing font, a bad option) instead of "timeout".
type StartError struct {
	Port   int
	Reason string
	Tail   string
	Err    error
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("session on port %d: %s", e.Port, e.Reason)
	if e.Tail != "" {
		msg += "; xpra said: " + e.Tail
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Err }
