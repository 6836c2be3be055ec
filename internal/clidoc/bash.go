package clidoc

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Bash renders a bash completion script for app: its subcommands, each one's flags, the global
// flags before a subcommand, file names for flags that take a file, and, after "run --", the
// completion of the wrapped command. Hidden commands and flags are left out. The script needs
// bash-completion's _init_completion (Debian's bash-completion package, which sources it from
// /usr/share/bash-completion/completions/NAME on first use).
func Bash(app *cli.App) string {
	fn := "_" + strings.ReplaceAll(app.Name, "-", "_")
	cmds := visible(app.Commands)
	var names []string
	for _, c := range cmds {
		names = append(names, c.Names()...)
	}
	valueFlags := map[string]bool{}
	fileFlags := map[string]bool{}
	note := func(fl []cli.Flag) []string {
		var words []string
		for _, f := range fl {
			for _, n := range f.Names() {
				w := "--" + n
				if len(n) == 1 {
					w = "-" + n
				}
				words = append(words, w)
				if takesValue(f) {
					valueFlags[w] = true
					if p := placeholder(f); p == "FILE" || p == "DIR" {
						fileFlags[w] = true
					}
				}
			}
		}
		return append(words, "--help")
	}
	global := note(app.VisibleFlags())
	if app.Version != "" && !app.HideVersion {
		global = append(global, "--version")
	}
	var cases strings.Builder
	for _, c := range cmds {
		words := note(c.VisibleFlags())
		if sub := visible(c.Subcommands); len(sub) > 0 {
			for _, s := range sub {
				words = append(words, s.Names()...)
			}
		}
		fmt.Fprintf(&cases, "    %s) opts=%q ;;\n", strings.Join(c.Names(), "|"), strings.Join(words, " "))
	}
	// The top-level words: subcommands, or, for a command whose bare form does the work (the
	// Epilog), its flags as well.
	top := strings.Join(append(append([]string(nil), names...), global...), " ")

	var b strings.Builder
	fmt.Fprintf(&b, `# bash completion for %[1]s (ffl). Generated from %[1]s's command-line definition
# by internal/clidoc (make docs): do not edit.
%[2]s() {
  local cur prev words cword
  _init_completion -n = || return
  local i cmd="" dashdash=0
  for ((i = 1; i < cword; i++)); do
    case "${words[i]}" in
      --) dashdash=$i; break ;;
      %[3]s) ((i++)) ;;
      -*) ;;
      *) [ -z "$cmd" ] && cmd=${words[i]} ;;
    esac
  done
  if [ "$dashdash" -gt 0 ]; then
    _command_offset $((dashdash + 1))
    return
  fi
  case "$prev" in
    %[4]s) _filedir; return ;;
    %[3]s) return ;;
  esac
  case "$cur" in
    --*=*) return ;;
  esac
  local opts
  case "$cmd" in
    "") opts=%[5]q ;;
%[6]s    *) opts="" ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}
complete -F %[2]s %[1]s
`, app.Name, fn, alternatives(valueFlags), alternatives(fileFlags), top, cases.String())
	return b.String()
}

// alternatives is a bash case pattern matching any of set's words (a never-matching word for
// an empty set).
func alternatives(set map[string]bool) string {
	if len(set) == 0 {
		return "--ffl-no-such-flag"
	}
	var w []string
	for k := range set {
		w = append(w, k)
	}
	sort.Strings(w)
	return strings.Join(w, "|")
}
