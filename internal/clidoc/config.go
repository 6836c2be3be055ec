package clidoc

import (
	"fmt"
	"strings"

	"github.com/ffl-hpc/ffl/pkg/config"
)

// ConfigManPage renders the markdown of ffl.toml(5) from pkg/config's key table (go-md2man turns
// it into roff): every key with its default and doc, so the page cannot drift from the parser.
func ConfigManPage() (string, error) {
	var b strings.Builder
	b.WriteString(`% ffl.toml 5 "" "ffl" "ffl manual"

# NAME

ffl.toml - configuration of ffl (Firefox Launcher for Slurm)

# SYNOPSIS

**` + config.DefaultPath + `**

# DESCRIPTION

One TOML file configures all of ffl on a node: **ffl-launch**(1), run by users inside their
Slurm jobs, and **ffl-epilog**(8) and **ffl-prolog**(8), run as root by slurmd. Install the same
file on every node. A missing ` + config.DefaultPath + ` means the defaults below; **--config** or
**$` + config.EnvConfig + `** name another file, which must then exist (the Epilog and the Prolog get no
environment from slurmd but SLURM_*, so they read ` + config.DefaultPath + `).

Parsing is strict: an unknown key, a key in the wrong case, a value of the wrong type or out of
range is a one-line error naming the file, the key, the value and the fix. **ffl-launch**
refuses to start (exit 2); the Epilog and the Prolog log it and use the defaults, because the
cleanup must run anyway.

Durations are strings like "3s", "1m30s", "168h", or whole seconds (3). Paths must be clean and
absolute.
`)
	for _, s := range config.Sections() {
		if s.Table == "" {
			b.WriteString("\n# KEYS\n")
		} else {
			b.WriteString("\n# [" + s.Table + "] KEYS\n\n" + s.Doc + "\n")
		}
		for _, k := range s.Keys {
			def, err := config.DefaultTOML(k.Key)
			if err != nil {
				return "", err
			}
			name := k.Key[strings.LastIndexByte(k.Key, '.')+1:]
			fmt.Fprintf(&b, "\n**%s** = %s\n: %s", name, mdEscape(def), mdEscape(k.Doc))
			if k.Env != "" {
				b.WriteString(" Environment: **" + mdEscape(k.Env) + "**.")
			}
			b.WriteString("\n")
		}
	}
	b.WriteString(`
# ENVIRONMENT

**` + config.EnvConfig + `**
: The configuration file to read instead of ` + config.DefaultPath + ` (must exist).

**` + config.EnvCleanupTimeout + `**
: Overrides cleanup_timeout, in seconds (decimals allowed). A value above Slurm's default
KillWait (30 s) is accepted with a warning.

**` + config.EnvDebug + `**
: 1, true, yes or on: debug logging (0, false, no, off: none).

# FILES

**` + config.DefaultPath + `**
: This file. The package installs it with every key commented out (the defaults); dpkg keeps
your edits on upgrades.

**/usr/share/ffl/**
: firefox.sbatch, the JupyterHub and Jupyter server configuration, the slurm.conf snippet
(/usr/local/share/ffl/ after **make install**).

# EXAMPLE

    port_min = 9000
    port_max = 9499
    cleanup_timeout = "5s"

    [epilog]
    log_file = "/var/log/ffl-epilog.log"
    timeout = "20s"

# SEE ALSO

**ffl-launch**(1), **ffl-epilog**(8), **ffl-prolog**(8), **slurm.conf**(5)
`)
	return b.String(), nil
}

// mdEscape keeps markdown from reading "*", "_", "<" or "[" in a doc as markup.
func mdEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "<", `\<`, "[", `\[`, "]", `\]`, "`", "\\`")
	return r.Replace(s)
}
