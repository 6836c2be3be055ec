package hook

import (
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/reclaim"
)

// NotRoot says why what ("the Epilog", "the Prolog") does nothing when it does not run as
// root (euid), or "" when it does.
//
// Slurm runs the Prolog and Epilog as root. Before Slurm 26.05, with PrologFlags=RunInJob, the
// job's extern slurmstepd can start the Epilog with the job user's credentials: at the step's
// end a worker thread shuts down X11 forwarding (also for a job without X11) between
// drop_privileges and reclaim_privileges, which use seteuid, and glibc applies seteuid to every
// thread of the process; when the main thread forks the Epilog in that window, run_command
// makes the child's real uid its effective one, and the Epilog runs entirely as the user. That
// fits what tests/slurm scenario 17 showed twice on Slurm 24.11: the extern step ran the
// Epilog, which exited 0, and the root-owned log file got no line of it, as when ffl-epilog runs
// as the user. Slurm 26.05 moved the drop into a child process (SchedMD ticket 24439).
//
// Such a run has no power over what root must remove (the root-owned runtime root, other
// users' files) and cannot write the root-owned log file, and any half of the cleanup it could
// do as the user would be work the next root run repeats. So it does nothing and says so on
// what it can reach (stderr, which slurmd logs at SlurmdDebug=debug2, and syslog); a manual
// `ffl-epilog --job ID --user NAME`, `ffl-epilog sweep`, or ffl-prolog at the user's next job on
// the node removes what the job left (docs/EPILOG.md, "Not root").
func NotRoot(what string, euid, egid int) string {
	if euid == 0 {
		return ""
	}
	return fmt.Sprintf("%s not running as root but as uid %d, gid %d: nothing done. Slurm started it with the job user's credentials "+
		"(with PrologFlags=RunInJob, Slurm before 26.05 can: a race with the extern step's X11 shutdown); "+
		"`ffl-epilog --job ID --user NAME` or `ffl-epilog sweep` as root, or ffl-prolog at the user's next job here, removes what the job left (docs/EPILOG.md, \"Not root\")",
		what, euid, egid)
}

// RefuseNotRoot logs problem (NotRoot's), with the job's fields, and the run's summary line s
// with nothing done: every step of phases unfinished, one problem.
func (e *Env) RefuseNotRoot(s Summary, phases []string, problem string) {
	e.Log.WithFields(logrus.Fields{"job": s.Fields["job"], "user": s.Fields["user"], "uid": s.Fields["uid"]}).Error(problem)
	s.Report = reclaim.Report{Unfinished: append([]string(nil), phases...), Problems: []string{problem}}
	e.Summarize(s)
}
