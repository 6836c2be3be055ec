package slurmenv

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits shared by the validators. They are exported so that other packages
// (layout, cmd) can state the same bounds in their own messages.
const (
	// MaxJobIDLen bounds a job ID: 20 decimal digits hold any uint64, and Slurm's
	// job IDs are uint32, so anything longer is not a job ID.
	MaxJobIDLen = 20
	// MaxNameLen bounds user and node names. Linux user names are at most 32
	// bytes in practice and host names 64; 64 keeps paths built from them short.
	MaxNameLen = 64
	// MaxID is the exclusive upper bound of a uid or gid we accept (2^31):
	// values above it are either bogus or (uid_t)-1 style sentinels.
	MaxID = 1 << 31
	// LocalPrefix starts the job key of a run outside Slurm: "local-<pid>".
	LocalPrefix = "local-"
)

// ValidJobID reports whether s is a Slurm job ID in canonical form: 1 to 20
// decimal digits, no sign, no leading zero, not 0 (Slurm numbers jobs from 1).
// Job IDs become path components (job-<id>) and marker prefixes, so anything
// looser would let an environment variable steer a root process's paths.
func ValidJobID(s string) error {
	if s == "" {
		return errors.New(`empty (expected the decimal Slurm job ID, like "123")`)
	}
	if len(s) > MaxJobIDLen {
		return fmt.Errorf("longer than %d digits (not a Slurm job ID)", MaxJobIDLen)
	}
	if !allDigits(s) {
		return errors.New(`not a decimal number (expected the Slurm job ID, like "123")`)
	}
	if s[0] == '0' {
		return errors.New("Slurm job IDs start at 1 and have no leading zeros")
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		return errors.New("too large for a Slurm job ID")
	}
	return nil
}

// ValidJobKey reports whether s is a job key: a Slurm job ID (see ValidJobID)
// or "local-<pid>" with a canonical positive decimal pid, the key of a run
// outside Slurm. Whatever passes is a single, safe path component.
func ValidJobKey(s string) error {
	if pid, ok := strings.CutPrefix(s, LocalPrefix); ok {
		if _, err := parseCanonical(pid, MaxID); err != nil || pid == "0" {
			return fmt.Errorf(`%q: the pid after %q must be a positive decimal number, like "local-4711"`, s, LocalPrefix)
		}
		return nil
	}
	return ValidJobID(s)
}

// ValidUserName reports whether s is a portable user name: 1 to 64 bytes of
// ASCII letters, digits, '.', '_', '-' and '@', not starting with '-', not "."
// and without "..". This is stricter than NSS (which accepts almost anything)
// on purpose: the name is logged, passed on command lines and may appear in
// paths, so it must never be able to act as an option, a path separator or a
// parent-directory reference. Names ending in '$' (Samba machine accounts)
// are rejected: they never run interactive jobs.
func ValidUserName(s string) error {
	return validName(s, "a user name", func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' || c == '@' },
		"letters, digits, '.', '_', '-' and '@'")
}

// ValidNodeName reports whether s is a safe node name: 1 to 64 bytes of ASCII
// letters, digits, '.', '_' and '-', not starting with '-', not "." and
// without "..". The node name is a path component of the session tree in the
// (possibly shared) home directory and part of every session marker.
func ValidNodeName(s string) error {
	return validName(s, "a node name", func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' },
		"letters, digits, '.', '_' and '-'")
}

// validName holds the rules ValidUserName and ValidNodeName share.
func validName(s, what string, allowed func(byte) bool, allowedDesc string) error {
	if s == "" {
		return fmt.Errorf("empty (expected %s)", what)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("longer than %d bytes (expected %s)", MaxNameLen, what)
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return fmt.Errorf("contains %q (%s may contain only %s)", s[i:i+1], what, allowedDesc)
		}
	}
	if s[0] == '-' {
		return fmt.Errorf("starts with '-' (%s must not look like a command-line option)", what)
	}
	if s == "." || strings.Contains(s, "..") {
		return fmt.Errorf(`is "." or contains ".." (%s must not be a directory reference)`, what)
	}
	return nil
}

// validDecimal checks an optional numeric Slurm variable (step ID, array task
// ID): canonical decimal, at most MaxJobIDLen digits. 0 is allowed.
func validDecimal(s string) error {
	if _, err := parseCanonical(s, 0); err != nil {
		return err
	}
	return nil
}

// validStepID checks SLURM_STEP_ID: a canonical decimal, or one of Slurm's special steps as
// Slurm 26.05 writes them, a small negative number (the batch step is "-5"; 22.05 wrote the
// same id unsigned, 4294967291). ffl only logs it.
func validStepID(s string) error {
	if rest, neg := strings.CutPrefix(s, "-"); neg {
		if _, err := parseCanonical(rest, 256); err != nil || rest == "0" {
			return errors.New("not a step ID (a decimal number, or a special step's small negative one)")
		}
		return nil
	}
	return validDecimal(s)
}

// validWord checks an informational Slurm value (cluster name, script
// context) that we only log: a safe name, so it cannot inject lines or
// control characters into logs.
func validWord(s string) error {
	return validName(s, "a Slurm name", func(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' },
		"letters, digits, '.', '_' and '-'")
}

// parseCanonical parses a canonical non-negative decimal ("0" or no leading
// zero, digits only, at most MaxJobIDLen digits). If limit is non-zero the
// value must be below it.
func parseCanonical(s string, limit uint64) (uint64, error) {
	if s == "" {
		return 0, errors.New("empty (expected a decimal number)")
	}
	if len(s) > MaxJobIDLen || !allDigits(s) {
		return 0, errors.New("not a decimal number")
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("has a leading zero (expected the canonical decimal form)")
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || (limit != 0 && n >= limit) {
		if limit != 0 {
			return 0, fmt.Errorf("out of range (expected 0 to %d)", limit-1)
		}
		return 0, errors.New("out of range")
	}
	return n, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
