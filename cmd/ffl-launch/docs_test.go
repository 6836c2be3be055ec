package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ffl-hpc/ffl/internal/clidoc"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// manPage is ffl-launch(1): the options and commands come from newApp(), the prose from here.
func manPage() clidoc.Page {
	app := newApp()
	return clidoc.Page{App: app, Section: 1,
		Description: `**ffl-launch** gives a Slurm job Firefox browsers: each session is Firefox inside an Xpra
server on the job's node, reached through Xpra's HTML5 client on a TCP port of the node
(127.0.0.1 by default). When the job ends, in any way, nothing of its sessions is left: no
process, no port, no directory.

**ffl-launch run** is the job's supervisor. Run it as the job's task (**exec ffl-launch run** in
the batch script, or **srun ffl-launch run -- CMD**): Slurm sends SIGTERM only to that process,
and the supervisor then stops every session within cleanup_timeout. **start**, **stop** and
**list** talk to the supervisor of the job through its socket; **proxy** is the command of a
jupyter-server-proxy entry; **clean** removes this user's stale sessions on the node; **doctor**
checks that a session can draw here.

There is no password: the supervisor holds the session's port itself and relays a connection to
xpra (which listens only on a unix socket in the session's 0700 directory) only when the kernel
says the client socket belongs to the session's user. From your machine:
**ssh -N -L PORT:127.0.0.1:PORT NODE**, then open http://localhost:PORT/. A session is "ready"
when Firefox's first window is mapped and painted.`,
		Sections: []clidoc.Section{
			{Title: "EXIT STATUS", Body: fmt.Sprintf(`**%d**
: Success.

**%d**
: A runtime failure: a session did not start (Firefox crashed or never showed a window; the
message quotes xpra's and Firefox's last lines).

**%d**
: Bad input: a flag, the configuration, a SLURM\_\* variable, a port in use or outside the range,
an unwritable state directory, a start page that cannot be loaded from the node.

**%d**
: A prerequisite is missing (xpra, firefox-esr, python3-pil: the message names the Debian
package); **doctor** found a broken check.

**%d**
: No supervisor of yours (a control socket served by another uid is refused), or no such
session.

**%d+N**
: **run** ended by signal N (143 for SIGTERM); with a wrapped command, its status.`,
				exitOK, exitFailure, exitBadInput, exitMissing, exitNoSession, exitSignalBase)},
			{Title: "ENVIRONMENT", Body: `**` + config.EnvConfig + `**
: Configuration file instead of ` + config.DefaultPath + ` (see **ffl.toml**(5)).

**` + config.EnvCleanupTimeout + `**
: Seconds the grace path may take (overrides cleanup_timeout); keep it below Slurm's KillWait.

**` + config.EnvDebug + `**
: 1 for debug logging.

**` + lifecycle.EnvControlSocket + `**
: The supervisor's socket, exported by **run** to the wrapped command; **start**, **stop**,
**list** and **proxy** use it (inside the job they find it without), and talk to it only when
the kernel says its server runs as your uid.

**` + lifecycle.EnvProxyPort + `**
: Exported by **run** to the wrapped command: the port held for its jupyter-server-proxy entry.

**SLURM\_JOB\_ID**, **SLURM\_JOB\_UID**, **SLURMD\_NODENAME**, ...
: The job the sessions belong to, as Slurm sets them for the job's task.`},
			{Title: "FILES", Body: `**` + config.DefaultPath + `**
: Site configuration (**ffl.toml**(5)).

**~/.firefox-launcher/sessions/NODE/job-ID/session-PORT/**
: A session's Firefox profile and configuration (state\_dir).

**/run/ffl/job-ID/session-PORT/**
: State file, xpra's socket, logs (runtime\_dir, made by **ffl-prolog**(8); else
/tmp/ffl-UID/job-ID/).

**/usr/share/ffl/firefox.sbatch**
: A batch script running one session for the job's duration; the JupyterHub and Jupyter
server configuration beside it.`},
			{Title: "EXAMPLES", Body: `    sbatch /usr/share/ffl/firefox.sbatch
    cat firefox-JOBID.log          # node, port and the ssh -L line, once Firefox is visible
    scancel JOBID                  # nothing is left behind

    srun ffl-launch run -- jupyterhub-singleuser    # JupyterHub's batchspawner
    ffl-launch start --json        # one more session, from inside the job`},
			{Title: "SEE ALSO", Body: `**ffl.toml**(5), **ffl-epilog**(8), **ffl-prolog**(8), **sbatch**(1), **xpra**(1)`},
		}}
}

// TestGeneratedDocs: docs/man/ffl-launch.1 and contrib/bash-completion/ffl-launch are what
// newApp() generates (FFL_UPDATE_DOCS=1, i.e. make docs, rewrites them).
func TestGeneratedDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	p := manPage()
	if err := clidoc.CheckFile(filepath.Join(root, "docs", "man", "ffl-launch.1"), p.Roff()); err != nil {
		t.Error(err)
	}
	if err := clidoc.CheckFile(filepath.Join(root, "contrib", "bash-completion", "ffl-launch"), []byte(clidoc.Bash(newApp()))); err != nil {
		t.Error(err)
	}
}

// TestCompletion runs the generated script in a real bash with Debian's bash-completion and
// checks what <TAB> offers at a few points of a command line.
func TestCompletion(t *testing.T) {
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		t.Skip("bash-completion not installed (make deps)")
	}
	script := filepath.Join(t.TempDir(), "ffl-launch")
	if err := os.WriteFile(script, []byte(clidoc.Bash(newApp())), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.toml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line string // the command line up to the cursor
		want string // COMPREPLY, space-separated
	}{
		{"ffl-launch ", "run start stop list clean proxy doctor --config --debug --log-format --help --version"},
		{"ffl-launch st", "start stop"},
		{"ffl-launch --debug ru", "run"},
		{"ffl-launch --config x.toml ", "run start stop list clean proxy doctor --config --debug --log-format --help --version"},
		{"ffl-launch run --", "--port --sessions --url --json --proxy-port --help"},
		{"ffl-launch run --port ", ""},
		{"ffl-launch --config " + dir + "/si", dir + "/site.toml"},
		{"ffl-launch doctor --slurm-conf " + dir + "/s", dir + "/site.toml"},
		{"ffl-launch list --j", "--json"},
		{"ffl-launch run -- trues", "truesleep"},
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "truesleep"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			prog := `source ` + lib + `; source "$1"; COMP_LINE=$2; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<<"$COMP_LINE"; [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _ffl_launch; echo "${COMPREPLY[*]}"`
			cmd := exec.Command("bash", "-c", prog, "bash", script, tt.line)
			cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin")
			// stderr: compopt complains outside a real <TAB>; only COMPREPLY matters.
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bash: %v", err)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("completions of %q = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}
