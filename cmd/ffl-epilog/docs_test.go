package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/clidoc"
	"github.com/ffl-hpc/ffl/pkg/config"
)

// manPage is ffl-epilog(8): the options and commands come from newApp(), the prose from here.
func manPage() clidoc.Page {
	return clidoc.Page{App: newApp(), Section: 8,
		Description: `**ffl-epilog** is ffl's Slurm Epilog. slurmd runs it as root on every node after every job
(**Epilog=/usr/sbin/ffl-epilog** in slurm.conf, no arguments: the job comes from SLURM\_JOB\_ID,
SLURM\_JOB\_UID and the rest of the Epilog's environment). It ends the processes of the job's ffl
sessions (those of the job's uid whose environment carries the job's FFL\_SESSION marker: SIGTERM,
then SIGKILL) and removes their files: the node-local runtime dirs, the session trees in the
user's home (as the user, in a re-executed helper killed at the deadline) and stale X lock
files. A job that used no ffl session costs a few lstat calls.

It never drains a node for a user's mess: every problem is logged (syslog and/or
epilog.log\_file, since slurmd discards its output) and the exit status is 0. It returns within
epilog.timeout plus at most 1 s whatever a user does (keep it below PrologEpilogTimeout): reads
of other processes' memory run in a child killed at its deadline, the helper is read with
deadlines and killed at its own, and a watchdog ends the run at the timeout plus 400 ms.
epilog.fail\_on\_unkillable is ignored: any user could make a process survive SIGKILL.

**ffl-epilog sweep** (run daily by ffl-sweep.timer) removes every user's stale sessions on the
node: those no Epilog saw (a crash, a reboot, an Epilog that was not configured). **ffl-epilog
doctor** checks the node's side of ffl and reads what the node's slurmd runs, with the rules of
its Slurm release (22.05 to 26.05): the slurm.conf slurmd was started with (configless: its
cache), Include files, every Prolog and Epilog line and the files their patterns match, the
timeouts of each hook, KillWait, and cgroup.conf, job\_container.conf and namespace.yaml beside
it; for each per-job isolation mode it finds it says what ffl needs and that ffl is untested
there.

Each run adds its counts to epilog.metrics\_file, a node\_exporter textfile-collector file,
when its directory exists (see **ffl.toml**(5)).`,
		Sections: []clidoc.Section{
			{Title: "EXIT STATUS", Body: fmt.Sprintf(`**%d**
: Always for the Epilog run by Slurm: a bad environment, an unknown user, a missing home,
garbage or hostile files, symlinks, processes that survive SIGKILL, timeouts, attacks are
logged, never turned into a drained node. An Epilog that Slurm started with the job user's
credentials (PrologFlags=RunInJob before Slurm 26.05 can) does nothing and says so.

**%d**
: A manual run with bad flags (**--job** without **--user**, an unknown user, ...), or a
manual run or **sweep** not as root.

**%d**
: **doctor** found a problem.`, exitOK, exitUsage, exitBroken)},
			{Title: "FILES", Body: `**` + config.DefaultPath + `**
: Configuration (**ffl.toml**(5)); an unusable file is logged and the defaults are used.

**` + config.DefaultMetricsFile + `**
: The metrics file (epilog.metrics\_file), written only where the directory exists.

**/lib/systemd/system/ffl-sweep.timer**, **ffl-sweep.service**
: The daily sweep (enabled by the Debian package).`},
			{Title: "SEE ALSO", Body: `**ffl-prolog**(8), **ffl-launch**(1), **ffl.toml**(5), **slurm.conf**(5)`},
		}}
}

// TestGeneratedDocs: docs/man/ffl-epilog.8 and contrib/bash-completion/ffl-epilog are what
// newApp() generates (FFL_UPDATE_DOCS=1, i.e. make docs, rewrites them).
func TestGeneratedDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	if err := clidoc.CheckFile(filepath.Join(root, "docs", "man", "ffl-epilog.8"), manPage().Roff()); err != nil {
		t.Error(err)
	}
	if err := clidoc.CheckFile(filepath.Join(root, "contrib", "bash-completion", "ffl-epilog"), []byte(clidoc.Bash(newApp()))); err != nil {
		t.Error(err)
	}
}
