// Package prereq knows what a node must have installed for a session to draw, and how to tell
// what is missing in words an admin can act on (the Debian package to install). ffl-launch runs
// these checks before it starts xpra (a session that cannot draw must not be reported ready),
// and both doctors (`ffl-launch doctor`, `ffl-epilog doctor`) print them.
package prereq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/pkg/execenv"
)

// ErrMissing is wrapped by every "not installed" error.
var ErrMissing = errors.New("prerequisite missing")

// Module is a Python module xpra's interpreter must (or should) import for the HTML5 path.
type Module struct {
	// Name is what `import` takes.
	Name string
	// Package is the Debian package that ships it.
	Package string
	// Required: without it a session cannot draw; otherwise it only makes it faster.
	Required bool
	// Why says what goes wrong without it.
	Why string
}

// DrawModules are the modules xpra 3.1 needs to send windows to the HTML5 client. Debian only
// recommends them, so an install with --no-install-recommends lacks them. xpra 3.1.3 imports PIL
// at module level for every window it sends (windowicon_source.py, rgb_transform.py): without
// it the page loads (HTTP 200) and the client connects, then "No module named 'PIL'" and the
// client is disconnected as soon as Firefox's window exists, and a user sees an empty frame.
// PIL became optional in xpra 5.0.
var DrawModules = []Module{
	{Name: "PIL.Image", Package: "python3-pil", Required: true,
		Why: "xpra 3.1 imports PIL for every window it sends; without it the HTML5 client is disconnected"},
	{Name: "lz4", Package: "python3-lz4", Required: false,
		Why: "lz4 packet compression makes the HTML5 client faster"},
}

// LookPath finds bin (a name or an absolute path) in path, like exec.LookPath but in the
// session's PATH, not the caller's.
func LookPath(bin, path string) (string, error) {
	if filepath.IsAbs(bin) {
		st, err := os.Stat(bin)
		if err != nil {
			return "", err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s: not executable", bin)
		}
		return bin, nil
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, bin)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fs.ErrNotExist
}

// Command checks that bin can be found in path; the error names the Debian package to install.
func Command(bin, path, pkg string) (string, error) {
	p, err := LookPath(bin, path)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found (PATH=%s): install the Debian package %s (apt-get install %s) or set its path in ffl.toml", ErrMissing, bin, path, pkg, pkg)
	}
	return p, nil
}

// Interpreter returns the program named in script's "#!" line (xpra is a Python script; its
// modules are that interpreter's), following "/usr/bin/env NAME" through path.
func Interpreter(script, path string) ([]string, error) {
	f, err := os.Open(script)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("%s: empty", script)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "#!")
	if !ok {
		return nil, fmt.Errorf("%s: not a script (no #! line)", script)
	}
	words := strings.Fields(rest)
	if len(words) == 0 {
		return nil, fmt.Errorf("%s: empty #! line", script)
	}
	if filepath.Base(words[0]) == "env" && len(words) > 1 {
		p, err := LookPath(words[1], path)
		if err != nil {
			return nil, fmt.Errorf("%s: interpreter %s not found in PATH", script, words[1])
		}
		return append([]string{p}, words[2:]...), nil
	}
	return words, nil
}

// Runner starts a command and waits for it. A process that reaps orphans itself (a child
// subreaper running proc.Reaper, as ffl-launch's supervisor does) must run its own short-lived
// children through one that keeps the reaper off them: otherwise the reaper may take the child's
// exit status first and the wait fails with ECHILD ("wait: no child processes"). *proc.Reaper
// is such a Runner.
type Runner interface {
	Start(cmd *exec.Cmd) error
	Wait(cmd *exec.Cmd) error
}

// MissingModules imports every module in one run of the interpreter (argv, from Interpreter)
// and returns those that failed, in order. An interpreter that cannot run is an error.
func MissingModules(ctx context.Context, interp []string, mods []Module) ([]Module, error) {
	return MissingModulesWith(ctx, nil, interp, mods)
}

// MissingModulesWith is MissingModules running the interpreter through run (nil: os/exec alone).
func MissingModulesWith(ctx context.Context, run Runner, interp []string, mods []Module) ([]Module, error) {
	if len(interp) == 0 {
		return nil, errors.New("no interpreter")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var prog strings.Builder
	prog.WriteString("import importlib\nfor m in [")
	for _, m := range mods {
		fmt.Fprintf(&prog, "%q,", m.Name)
	}
	prog.WriteString("]:\n    try:\n        importlib.import_module(m)\n    except Exception:\n        print(m)\n")
	// Isolated, from "/", in a fixed environment: `python3 -c` would otherwise import a planted
	// lz4.py from the caller's directory (root running a doctor in /tmp), or honour the
	// caller's PYTHONPATH and PYTHONSTARTUP.
	argv := execenv.Python(interp, "-c", prog.String())
	cmd := execenv.CommandContext(ctx, "/", execenv.Check(), argv[0], argv[1:]...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	var err error
	if run == nil {
		err = cmd.Run()
	} else if err = run.Start(cmd); err == nil {
		err = run.Wait(cmd)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", interp[0], err, strings.TrimSpace(stderr.String()))
	}
	failed := map[string]bool{}
	for _, l := range strings.Fields(out.String()) {
		failed[l] = true
	}
	var missing []Module
	for _, m := range mods {
		if failed[m.Name] {
			missing = append(missing, m)
		}
	}
	return missing, nil
}

// CheckDraw is the preflight: xpra's interpreter imports every required DrawModule, and xpra
// finds its HTML5 client (CheckHTML5). The error is one line naming the packages to install.
func CheckDraw(ctx context.Context, xpraPath, path string) error {
	return CheckDrawWith(ctx, nil, xpraPath, path)
}

// CheckDrawWith is CheckDraw running xpra's interpreter through run (see Runner).
func CheckDrawWith(ctx context.Context, run Runner, xpraPath, path string) error {
	interp, err := Interpreter(xpraPath, path)
	if err != nil {
		return fmt.Errorf("%w: %v: reinstall the Debian package xpra", ErrMissing, err)
	}
	// The HTML5 check is a second interpreter run of its own (about 0.1 s here); it runs beside
	// the imports, as both are on the path of every launcher start before xpra's exec. Its
	// answer counts only once the imports are fine, as when they ran one after the other.
	html5 := make(chan error, 1)
	go func() { html5 <- CheckHTML5With(ctx, run, xpraPath, path) }()
	missing, err := MissingModulesWith(ctx, run, interp, DrawModules)
	if err != nil {
		<-html5
		return fmt.Errorf("%w: xpra's interpreter does not run: %v", ErrMissing, err)
	}
	var pkgs, names []string
	for _, m := range missing {
		if m.Required {
			pkgs = append(pkgs, m.Package)
			names = append(names, m.Name)
		}
	}
	herr := <-html5
	if len(pkgs) == 0 {
		return herr
	}
	return fmt.Errorf("%w: xpra cannot draw windows: its Python (%s) cannot import %s (%s): install it with apt-get install %s",
		ErrMissing, interp[0], strings.Join(names, ", "), missing[0].Why, strings.Join(pkgs, " "))
}

// html5Program prints "ok" when xpra finds its HTML5 client, else the directories it looks in.
// They are the web roots xpra's server tries when --html names none (server_core.py in 3.1 and
// 5.x, server/core.py in 6.x): RESOURCES/html5, RESOURCES/www, APP/www, /usr/share/xpra/www,
// /usr/local/share/xpra/www (and /var/www/xpra/www from 6.x). Without one, xpra turns html off
// and logs "install the `xpra-html5` package": the session would never serve a page. From
// xpra 4.0 the client is the separate package xpra-html5; Debian's xpra 3.1 still ships it.
const html5Program = `import os, sys
from xpra.platform.paths import get_resources_dir, get_app_dir
r = get_resources_dir()
dirs = [os.path.join(r, "html5"), os.path.join(r, "www"), os.path.join(get_app_dir(), "www")] + sys.argv[1:]
if any(os.path.isfile(os.path.join(d, "index.html")) for d in dirs):
    print("ok")
else:
    print(" ".join(dirs))
`

// ErrNoHTML5 is wrapped by the error of a missing HTML5 client.
var ErrNoHTML5 = errors.New("xpra's HTML5 client is not installed")

// html5SystemDirs are the fixed web roots xpra tries after its own resources directory.
var html5SystemDirs = []string{"/usr/share/xpra/www", "/usr/local/share/xpra/www", "/var/www/xpra/www"}

// CheckHTML5With asks xpra's interpreter (run through run, see Runner) whether xpra finds its
// HTML5 client. The error is one line naming the package xpra-html5.
func CheckHTML5With(ctx context.Context, run Runner, xpraPath, path string) error {
	return checkHTML5(ctx, run, xpraPath, path, html5SystemDirs)
}

func checkHTML5(ctx context.Context, run Runner, xpraPath, path string, systemDirs []string) error {
	// The program's answer is "ok" as soon as one system web root has index.html, whatever the
	// resources dirs hold: then the interpreter (a start of about 0.1 s, importing xpra's
	// platform code) need not run at all.
	for _, d := range systemDirs {
		if st, err := os.Stat(filepath.Join(d, "index.html")); err == nil && st.Mode().IsRegular() {
			return nil
		}
	}
	interp, err := Interpreter(xpraPath, path)
	if err != nil {
		return fmt.Errorf("%w: %v: reinstall the package xpra", ErrMissing, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	argv := execenv.Python(interp, append([]string{"-c", html5Program}, systemDirs...)...)
	cmd := execenv.CommandContext(ctx, "/", execenv.Check(), argv[0], argv[1:]...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if run == nil {
		err = cmd.Run()
	} else if err = run.Start(cmd); err == nil {
		err = run.Wait(cmd)
	}
	if err != nil {
		return fmt.Errorf("%w: xpra's interpreter does not run: %s: %v: %s", ErrMissing, interp[0], err, lastLine(stderr.String()))
	}
	if got := strings.TrimSpace(out.String()); got != "ok" {
		return fmt.Errorf("%w: %w (no index.html in %s): install the package xpra-html5 (xpra 4 and later ship it separately)", ErrMissing, ErrNoHTML5, got)
	}
	return nil
}

// lastLine keeps the last line of a traceback (the exception): not a one-line rendering of the
// whole text (oneline.Line), the one line that names the error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Version returns the first line `bin --version` prints (bounded to 10 s).
func Version(ctx context.Context, bin string) (string, error) {
	return VersionWith(ctx, nil, bin)
}

// VersionWith is Version running bin through run (see Runner; nil: os/exec alone).
func VersionWith(ctx context.Context, run Runner, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := execenv.CommandContext(ctx, "/", execenv.Check(), bin, "--version")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	var err error
	if run == nil {
		err = cmd.Run()
	} else if err = run.Start(cmd); err == nil {
		err = run.Wait(cmd)
	}
	out := buf.Bytes()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && first == "" {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	return strings.TrimSpace(first), nil
}
