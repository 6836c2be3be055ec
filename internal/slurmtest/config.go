package slurmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// InstallConfig puts data at path (the Prolog's and Epilog's /etc/ffl/ffl.toml: slurmd gives
// them no environment but SLURM_*, so no FFL_CONFIG) for the duration of a run and returns how
// to put back what was there. backups[0] is where this suite keeps the original meanwhile; a
// file left by an interrupted run (its first line starts with tagPrefix) is undone first, from
// the first of backups that exists, else removed. A suite whose tagPrefix matches only its own
// tag and that names only its own backup undoes only its own leftovers; one that names every
// suite's undoes any of them.
func InstallConfig(path string, data []byte, tagPrefix string, backups ...string) (restore func() error, err error) {
	if len(backups) == 0 {
		return nil, fmt.Errorf("install %s: no backup path given", path)
	}
	dir := filepath.Dir(path)
	_, statErr := os.Stat(dir)
	madeDir := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("install %s: %w", path, err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.HasPrefix(old, []byte(tagPrefix)) {
		if err := undoLeftover(path, backups); err != nil {
			return nil, fmt.Errorf("install %s: undoing an interrupted run's copy: %w", path, err)
		}
	}
	backup := backups[0]
	hadOriginal := false
	if _, err := os.Lstat(path); err == nil {
		hadOriginal = true
		if err := os.Rename(path, backup); err != nil {
			return nil, fmt.Errorf("install %s: keeping the original: %w", path, err)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, fmt.Errorf("install %s: %w", path, err)
	}
	return func() error {
		if hadOriginal {
			if err := os.Rename(backup, path); err != nil {
				return fmt.Errorf("restore %s: %w", path, err)
			}
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("restore %s: %w", path, err)
		}
		if madeDir {
			_ = os.Remove(dir) // only if empty
		}
		return nil
	}, nil
}

// undoLeftover puts back the first of backups that exists over path, or removes path when none
// does.
func undoLeftover(path string, backups []string) error {
	for _, b := range backups {
		if _, err := os.Stat(b); err == nil {
			return os.Rename(b, path)
		}
	}
	return os.Remove(path)
}

// FFLConfig is the ffl.toml the suites run with: header (the suite's tag, so that an
// interrupted run's copy is recognised), runtime_dir unless runtimeDir is "" (ffl's default),
// the port range, a cleanup timeout inside the clusters' KillWait, a start timeout generous
// for a shared two-core machine, extra top-level lines (each ending in a newline), and the
// Epilog logging to epilogLog, a file the scenarios read, instead of syslog.
func FFLConfig(header, runtimeDir string, portMin, portMax int, extra, epilogLog string) string {
	s := header + "\n"
	if runtimeDir != "" {
		s += fmt.Sprintf("runtime_dir = %q\n", runtimeDir)
	}
	s += fmt.Sprintf("port_min = %d\nport_max = %d\ncleanup_timeout = \"3s\"\nstart_timeout = \"90s\"\n", portMin, portMax)
	return s + extra + fmt.Sprintf("\n[epilog]\nlog_file = %q\nsyslog = false\ntimeout = \"20s\"\n", epilogLog)
}
