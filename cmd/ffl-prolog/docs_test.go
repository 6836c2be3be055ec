package main

import (
	"path/filepath"
	"testing"

	"github.com/ffl-hpc/ffl/internal/clidoc"
	"github.com/ffl-hpc/ffl/pkg/config"
)

// manPage is ffl-prolog(8): the options come from newApp(), the prose from here.
func manPage() clidoc.Page {
	return clidoc.Page{App: newApp(), Section: 8,
		Description: `**ffl-prolog** is ffl's optional Slurm Prolog (**Prolog=/usr/sbin/ffl-prolog** in slurm.conf,
with **PrologFlags=Alloc**). Run by slurmd as root on each node before a job, it creates the
root-owned runtime\_dir (0755) and the job's **runtime\_dir/job-ID** (the job's uid and gid,
0700), makes sure /tmp/.X11-unix exists as root's 1777 (an Xvfb started by a user would otherwise
create it as that user), and, when the user has node-local ffl state of other jobs, sweeps the
user's stale sessions (as the user, the new job excluded).

Without it **ffl-launch**(1) falls back to temp\_dir (/tmp/ffl-UID/job-ID/). Each run adds its
counts to epilog.metrics\_file when its directory exists (see **ffl.toml**(5)).`,
		Sections: []clidoc.Section{
			{Title: "EXIT STATUS", Body: `Always **0**: a failing Prolog would drain the node and requeue the job. Problems are logged
(syslog, epilog.log\_file).`},
			{Title: "FILES", Body: `**` + config.DefaultPath + `**
: Configuration (**ffl.toml**(5)); an unusable file is logged and the defaults are used.`},
			{Title: "SEE ALSO", Body: `**ffl-epilog**(8), **ffl-launch**(1), **ffl.toml**(5), **slurm.conf**(5)`},
		}}
}

// TestGeneratedDocs: docs/man/ffl-prolog.8 and contrib/bash-completion/ffl-prolog are what
// newApp() generates (FFL_UPDATE_DOCS=1, i.e. make docs, rewrites them).
func TestGeneratedDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	if err := clidoc.CheckFile(filepath.Join(root, "docs", "man", "ffl-prolog.8"), manPage().Roff()); err != nil {
		t.Error(err)
	}
	if err := clidoc.CheckFile(filepath.Join(root, "contrib", "bash-completion", "ffl-prolog"), []byte(clidoc.Bash(newApp()))); err != nil {
		t.Error(err)
	}
}
