package proc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
)

// Stat is the part of /proc/PID/stat ffl uses: the tree links (PPID, process group, session)
// to find descendants, the state to tell zombies from live processes, and the start time that,
// with the PID and uid, makes an Identity.
type Stat struct {
	PID, PPID, PGID, SID int
	// Comm is the command name exactly as the kernel prints it (at most 64 bytes in practice);
	// it may contain spaces, parentheses and newlines ("Web Content", "(sd-pam)").
	Comm string
	// State is the one-letter state (R, S, D, Z, T, t, X, I, ...); 'Z' is a zombie.
	State byte
	// StartTime is field 22: clock ticks after boot at which the process started.
	StartTime uint64
}

// Zombie reports whether the process has exited and only waits to be reaped ('Z', or 'X' caught
// in the instant of being reaped). A zombie cannot be signalled and counts as gone everywhere.
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// statFieldsAfterComm is how many fields ParseStat requires after the command name: state (3)
// through starttime (22). Kernels print about 50; older and newer kernels differ past field 22.
const statFieldsAfterComm = 20

// ParseStat parses one /proc/PID/stat line strictly.
//
// The command name lies between the FIRST '(' and the LAST ')' (as runc's parseStat does): the
// kernel prints it unescaped, so it may contain spaces, '(' and ')' and even a newline, but
// nothing after it contains ')'. Splitting the whole line on spaces would let a process named
// "x) Z 1 1" fake its state and parent. Everything else must be what the kernel prints: a
// positive decimal PID, one space, "(comm)", one space, a one-letter state, then at least up to
// field 22 space-separated integers, and at most one trailing newline.
func ParseStat(data []byte) (Stat, error) {
	var st Stat
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return st, errors.New("parse stat: no (comm)")
	}
	if open < 2 || data[open-1] != ' ' {
		return st, errors.New("parse stat: no pid before (comm)")
	}
	pid, err := parseDecimal(data[:open-1])
	if err != nil || pid <= 0 {
		return st, fmt.Errorf("parse stat: bad pid %q", data[:open-1])
	}
	comm := data[open+1 : end]
	if bytes.IndexByte(comm, 0) >= 0 {
		return st, errors.New("parse stat: NUL in comm")
	}
	rest := bytes.TrimSuffix(data[end+1:], []byte("\n"))
	if len(rest) == 0 || rest[0] != ' ' {
		return st, errors.New("parse stat: no fields after comm")
	}
	fields := bytes.Split(rest[1:], []byte(" "))
	if len(fields) < statFieldsAfterComm {
		return st, fmt.Errorf("parse stat: %d fields after comm, want at least %d", len(fields), statFieldsAfterComm)
	}
	state := fields[0]
	if len(state) != 1 || !isLetter(state[0]) {
		return st, fmt.Errorf("parse stat: bad state %q", state)
	}
	for i, f := range fields[1:] {
		if !isInteger(f) {
			return st, fmt.Errorf("parse stat: field %d is %q, not an integer", i+4, f)
		}
	}
	// fields[i] is field i+3 of proc(5).
	ppid, err := parseDecimal(fields[1])
	if err != nil {
		return st, fmt.Errorf("parse stat: ppid: %w", err)
	}
	pgid, err := parseDecimal(fields[2])
	if err != nil {
		return st, fmt.Errorf("parse stat: pgrp: %w", err)
	}
	sid, err := parseDecimal(fields[3])
	if err != nil {
		return st, fmt.Errorf("parse stat: session: %w", err)
	}
	start, err := parseDec(fields[19], math.MaxUint64)
	if err != nil {
		return st, fmt.Errorf("parse stat: starttime: %w", err)
	}
	return Stat{
		PID: pid, PPID: ppid, PGID: pgid, SID: sid,
		Comm: string(comm), State: state[0], StartTime: start,
	}, nil
}

// parseStatus returns the thread group id ("Tgid:" line: the process a task belongs to) and the
// real uid (first number of the "Uid:\treal\teffective\tsaved\tfs" line) of /proc/PID/status.
// The kernel escapes newlines in the Name line, so a command name cannot fake either line; the
// first of each is the real one. Both lines must be present and complete (newline-terminated),
// Tgid holding one number and Uid exactly four.
func parseStatus(data []byte) (tgid, uid int, err error) {
	tgid, uid = -1, -1
	for len(data) > 0 && (tgid < 0 || uid < 0) {
		nl := bytes.IndexByte(data, '\n')
		if nl < 0 {
			break // an incomplete last line is never trusted
		}
		line := data[:nl]
		data = data[nl+1:]
		if val, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok && tgid < 0 {
			f := bytes.Fields(val)
			if len(f) != 1 {
				return 0, 0, fmt.Errorf("parse status: Tgid line has %d fields, want 1", len(f))
			}
			if tgid, err = parseDecimal(f[0]); err != nil {
				return 0, 0, fmt.Errorf("parse status: Tgid: %w", err)
			}
		}
		if val, ok := bytes.CutPrefix(line, []byte("Uid:")); ok && uid < 0 {
			ids := bytes.Fields(val)
			if len(ids) != 4 {
				return 0, 0, fmt.Errorf("parse status: Uid line has %d fields, want 4", len(ids))
			}
			for _, id := range ids {
				if _, err := parseDec(id, math.MaxUint32); err != nil {
					return 0, 0, fmt.Errorf("parse status: Uid: %w", err)
				}
			}
			r, _ := parseDec(ids[0], math.MaxUint32)
			uid = int(r)
		}
	}
	if tgid < 0 || uid < 0 {
		return 0, 0, errors.New("parse status: no complete Tgid and Uid lines")
	}
	return tgid, uid, nil
}

// environHas reports whether the NUL-separated environment block env holds an entry
// NAME=VALUE whose VALUE starts with valuePrefix. The name must match exactly: "XFFL_SESSION=..."
// is not "FFL_SESSION=...". A block cut at the read cap may end in a partial entry; a match on
// it is still a match of the real entry, whose prefix it is.
func environHas(env []byte, name, valuePrefix string) bool {
	want := len(name) + 1 + len(valuePrefix)
	for len(env) > 0 {
		entry := env
		if i := bytes.IndexByte(env, 0); i >= 0 {
			entry, env = env[:i], env[i+1:]
		} else {
			env = nil
		}
		if len(entry) < want || entry[len(name)] != '=' {
			continue
		}
		if string(entry[:len(name)]) == name && string(entry[len(name)+1:want]) == valuePrefix {
			return true
		}
	}
	return false
}

// parseDecimal parses a PID-sized decimal: see parseDec.
func parseDecimal(b []byte) (int, error) {
	n, err := parseDec(b, 1<<31-1)
	return int(n), err
}

// parseDec parses a decimal no greater than max, strictly as the kernel prints numbers: digits
// only, no sign, no spaces, no leading zeros (except "0" itself).
func parseDec(b []byte, max uint64) (uint64, error) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, fmt.Errorf("bad decimal %q", b)
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad decimal %q", b)
		}
		d := uint64(c - '0')
		if n > (max-d)/10 {
			return 0, fmt.Errorf("decimal %q out of range", b)
		}
		n = n*10 + d
	}
	return n, nil
}

// isInteger reports whether b is an optionally negative run of decimal digits; /proc/PID/stat
// prints every field after the state that way (some, like rsslim, exceed int64).
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }
