// Package execenv is how ffl starts every program it runs itself (xpra, xmessage, squeue, the import check of
// xpra's Python, `--version` of xpra and Firefox in the doctors, the root hooks' re-executed
// helpers): nothing the program runs with comes from the caller's working directory or
// environment, because the caller may be root running a doctor from /tmp, or a job's user in a
// project directory that other members of a group can write.
//
//   - the working directory is fixed ("/" unless the caller names a directory ffl owns, such as
//     a session's home): `python3 -c` puts the working directory first on sys.path, so a planted
//     lz4.py there would run as whoever ran the check;
//   - the environment is exactly the list the caller built, never os.Environ(): PYTHONPATH,
//     PYTHONSTARTUP, PYTHONHOME, LD_PRELOAD, BASH_ENV, ... never reach a child. The variables a
//     session needs are built by its owner (HOME, USER, LANG, PATH, XDG_RUNTIME_DIR, ...), and
//     PATH and LANG, the two taken from the caller, go through Path and Lang first;
//   - Python runs isolated (Python: -I), which also drops the script's directory, the user's
//     site-packages and every PYTHON* variable, whatever the environment holds.
//
// The one program ffl runs with the caller's own environment and directory is the command
// `ffl-launch run -- CMD` wraps: that is the user's own job, started as the user asked.
package execenv

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// DefaultPath is the PATH when the caller gives none; the node doctor (root) uses it always.
const DefaultPath = "/usr/local/bin:/usr/bin:/bin"

// DefaultLang is the locale when the caller's is unusable.
const DefaultLang = "C.UTF-8"

// Command returns a command running path with args in dir ("" means "/") with exactly env (nil
// means an empty environment, never the caller's). It is exec.Command made safe by default.
func Command(dir string, env []string, path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	setup(cmd, dir, env)
	return cmd
}

// CommandContext is Command killed when ctx is done.
func CommandContext(ctx context.Context, dir string, env []string, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	setup(cmd, dir, env)
	return cmd
}

func setup(cmd *exec.Cmd, dir string, env []string) {
	if dir == "" {
		dir = "/"
	}
	cmd.Dir = dir
	cmd.Env = append([]string{}, env...) // non-nil: a nil Env would inherit os.Environ()
}

// Python returns the argv running interp (a Python interpreter, with the options of its #!
// line) isolated (-I: no working directory or script directory on sys.path, no PYTHON*
// variables, no user site-packages) on args.
func Python(interp []string, args ...string) []string {
	out := append([]string{interp[0], "-I"}, interp[1:]...)
	return append(out, args...)
}

// Check is the environment of a short check (an import, a --version): a fixed PATH, a plain
// locale and a home that does not exist, so no per-user configuration is read.
func Check() []string {
	return []string{"PATH=" + DefaultPath, "LANG=" + DefaultLang, "HOME=/nonexistent"}
}

// Path keeps the entries of the caller's PATH that only root or uid can change: absolute,
// existing directories owned by root or uid, writable by neither their group (unless it is
// root's) nor others, whose parents are the same. An empty entry or "." (the working directory),
// a relative one, /tmp or a group's shared bin directory is dropped: a program found there
// could be another user's. Nothing left gives "" (nothing is found through it).
func Path(path string, uid int) string {
	var keep []string
	seen := map[string]bool{}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) || seen[filepath.Clean(d)] {
			continue
		}
		d = filepath.Clean(d)
		seen[d] = true
		if trustedDir(d, uid) {
			keep = append(keep, d)
		}
	}
	return strings.Join(keep, ":")
}

// trustedDir: d (after its symlinks) and every parent of it are directories only root or uid
// can change.
func trustedDir(d string, uid int) bool {
	real, err := filepath.EvalSymlinks(d)
	if err != nil {
		return false
	}
	for p := real; ; p = filepath.Dir(p) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			return false
		}
		if !safefs.OnlyWritableBy(st.Uid, st.Gid, st.Mode, uid) {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// Lang returns lang when it is a plain locale name (letters, digits, "._-@"), else DefaultLang:
// it is passed to xpra and Firefox and must not carry anything but a locale.
func Lang(lang string) string {
	if lang == "" || len(lang) > 64 {
		return DefaultLang
	}
	for _, r := range lang {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return DefaultLang
		}
	}
	return lang
}
