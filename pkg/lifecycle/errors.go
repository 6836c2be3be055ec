package lifecycle

import (
	"errors"
	"fmt"

	"github.com/ffl-hpc/ffl/pkg/prereq"
)

// Sentinel errors callers map to exit codes (docs/DESIGN.md).
var (
	// ErrBadInput is a request that can never succeed as given (port outside the range, ...).
	ErrBadInput = errors.New("bad input")
	// ErrMissing is a prerequisite that is not installed (xpra, firefox-esr, what xpra needs to
	// draw); the same sentinel as prereq's, so either side's error maps to exit code 3.
	ErrMissing = prereq.ErrMissing
	// ErrPortInUse is a port somebody else holds.
	ErrPortInUse = errors.New("port in use")
	// ErrNotFound is a session that this supervisor does not run.
	ErrNotFound = errors.New("no such session")
	// ErrStopping is a request made while the supervisor is shutting down.
	ErrStopping = errors.New("supervisor is stopping")
)

// StartError explains why a session did not become ready, with the last lines of xpra's and
// Firefox's output: the user sees the real reason (a missing font, a bad option, a crash)
// instead of "timeout".
type StartError struct {
	Port   int
	Reason string
	Tail   string
	Err    error
}

func (e *StartError) Error() string {
	msg := fmt.Sprintf("session on port %d: %s", e.Port, e.Reason)
	if e.Tail != "" {
		msg += "; last lines: " + e.Tail
	}
	return msg
}

func (e *StartError) Unwrap() error { return e.Err }
