package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ffl-hpc/ffl/pkg/proc"
)

// StateSchema is the version of the session state file. A reader refuses other versions rather
// than guess: a wrong guess here means signalling the wrong process.
const StateSchema = 1

// MaxStateSize caps what a reader takes from a (user-writable) state or supervisor file.
const MaxStateSize = 64 << 10

// MaxProcesses caps the process list of one state file.
const MaxProcesses = 4096

// ErrBadState wraps every reason a state file is refused.
var ErrBadState = errors.New("invalid state file")

// State is the session state file: who the session belongs to and every process ffl started or
// found for it, as identities (pid + start time + uid), so that a later cleanup can end exactly
// those processes and no recycled PID.
type State struct {
	Schema     int             `json:"schema"`
	Job        string          `json:"job"`
	Node       string          `json:"node"`
	BootID     string          `json:"boot_id"`
	UID        int             `json:"uid"`
	User       string          `json:"user"`
	Port       int             `json:"port"`
	Display    string          `json:"display,omitempty"`
	Created    time.Time       `json:"created"`
	Marker     string          `json:"marker"`
	SessionDir string          `json:"session_dir"`
	RuntimeDir string          `json:"runtime_dir"`
	Supervisor proc.Identity   `json:"supervisor"`
	Processes  []proc.Identity `json:"processes"`
	// PIDNS is the PID namespace (inode of /proc/self/ns/pid) the launcher read Supervisor's
	// and Processes' PIDs in: under Slurm's namespace/linux with CLONE_NEWPID they are the
	// job's namespace's PIDs, not the node's (proc.Resolve). 0: not recorded (older ffl).
	PIDNS uint64 `json:"pid_ns,omitempty"`
}

// Supervisor is the launcher's record in the job's runtime dir: enough to decide locally, without
// asking slurmctld, whether the job's supervisor is still alive on this boot.
type Supervisor struct {
	Schema  int           `json:"schema"`
	Job     string        `json:"job"`
	Node    string        `json:"node"`
	BootID  string        `json:"boot_id"`
	Process proc.Identity `json:"process"`
	Socket  string        `json:"socket"`
	Started time.Time     `json:"started"`
	// PIDNS is the PID namespace Process's PID belongs to (see State.PIDNS).
	PIDNS uint64 `json:"pid_ns,omitempty"`
}

// Marshal encodes the state file.
func (s State) Marshal() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// Marshal encodes the supervisor record.
func (s Supervisor) Marshal() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// ParseState decodes a state file strictly: size cap, no unknown fields, one JSON value, known
// schema, and fields that make sense. It never trusts the content beyond that: callers still check
// every identity against /proc and the job's uid before acting on it.
func ParseState(data []byte) (State, error) {
	var s State
	if err := decodeStrict(data, &s); err != nil {
		return State{}, err
	}
	if s.Schema != StateSchema {
		return State{}, fmt.Errorf("%w: schema %d (want %d)", ErrBadState, s.Schema, StateSchema)
	}
	if err := ValidComponent(s.Job); err != nil {
		return State{}, fmt.Errorf("%w: job: %v", ErrBadState, err)
	}
	if err := ValidComponent(s.Node); err != nil {
		return State{}, fmt.Errorf("%w: node: %v", ErrBadState, err)
	}
	if s.Port < 1 || s.Port > MaxPort {
		return State{}, fmt.Errorf("%w: port %d", ErrBadState, s.Port)
	}
	if s.UID < 0 {
		return State{}, fmt.Errorf("%w: uid %d", ErrBadState, s.UID)
	}
	if len(s.Processes) > MaxProcesses {
		return State{}, fmt.Errorf("%w: %d processes (max %d)", ErrBadState, len(s.Processes), MaxProcesses)
	}
	return s, nil
}

// ParseSupervisor decodes a supervisor record with the same strictness as ParseState.
func ParseSupervisor(data []byte) (Supervisor, error) {
	var s Supervisor
	if err := decodeStrict(data, &s); err != nil {
		return Supervisor{}, err
	}
	if s.Schema != StateSchema {
		return Supervisor{}, fmt.Errorf("%w: schema %d (want %d)", ErrBadState, s.Schema, StateSchema)
	}
	if err := ValidComponent(s.Job); err != nil {
		return Supervisor{}, fmt.Errorf("%w: job: %v", ErrBadState, err)
	}
	if err := ValidComponent(s.Node); err != nil {
		return Supervisor{}, fmt.Errorf("%w: node: %v", ErrBadState, err)
	}
	return s, nil
}

func decodeStrict(data []byte, v any) error {
	if len(data) > MaxStateSize {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrBadState, len(data), MaxStateSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadState, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: trailing data", ErrBadState)
	}
	return nil
}
