package runtimedir

import (
	"fmt"
	"os"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// MaxJobs bounds the job-<key> names read from one directory of job dirs (the runtime root, a
// temp parent, a home node dir): a user can fill the ones it may write.
const MaxJobs = 4096

// ReadSupervisor reads the supervisor record of the job dir dir (size-capped, parsed strictly
// by layout.ParseSupervisor, never following a symlink). It is the one reader of the record:
// the launcher asks whether a supervisor of its job already runs, the cleanup whether the
// job's supervisor is gone. A missing record is an error for which safefs.IsNotExist is true.
func ReadSupervisor(dir *os.File) (layout.Supervisor, error) {
	data, err := safefs.ReadFileCapped(dir, layout.SupervisorFile, layout.MaxStateSize)
	if err != nil {
		return layout.Supervisor{}, err
	}
	sup, err := layout.ParseSupervisor(data)
	if err != nil {
		return layout.Supervisor{}, fmt.Errorf("supervisor record: %w", err)
	}
	return sup, nil
}

// JobDir is a job-<key> entry of a directory of job dirs, as lstat saw it (never followed).
type JobDir struct {
	Name, Key string
	Info      safefs.Info
}

// JobDirs is the one listing of a directory of job dirs (the runtime root, <temp>/ffl-<uid>, a
// private parent, <state>/sessions/<node>): its job-<key> entries, each lstat'ed, at most
// MaxJobs names read (more reports the rest). Other names, and entries gone before their
// lstat, are skipped; callers check Info's owner and type before they trust an entry.
func JobDirs(dir *os.File) (dirs []JobDir, more bool, err error) {
	names, more, err := safefs.ReadDirNames(dir, MaxJobs)
	for _, name := range names {
		key, perr := layout.ParseJobDirName(name)
		if perr != nil {
			continue
		}
		if fi, serr := safefs.LstatAt(dir, name); serr == nil {
			dirs = append(dirs, JobDir{Name: name, Key: key, Info: fi})
		}
	}
	return dirs, more, err
}

// HasOtherJobs reports whether user l.UID has node-local ffl state here of a job other than
// l.JobKey: a runtime job dir (or a runtime root too crowded to tell), or anything in
// <temp>/ffl-<uid> (or a squat of it, behind which the user's private parents may be). It
// decides whether the Prolog looks for stale sessions at all: lstat-level work, no NSS, no home.
func HasOtherJobs(l layout.Layout) bool {
	if rt, err := safefs.OpenTrusted(l.RuntimeDir); err == nil {
		dirs, more, _ := JobDirs(rt)
		rt.Close()
		if more {
			return true
		}
		for _, d := range dirs {
			if d.Key != l.JobKey && d.Info.UID == l.UID {
				return true
			}
		}
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		return false
	}
	defer tmp.Close()
	fi, err := safefs.LstatAt(tmp, layout.UserTempName(l.UID))
	return (err == nil && fi.UID == l.UID) || Squatted(tmp, l.UID)
}
