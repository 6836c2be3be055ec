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
// recommends them, so an install with --no-install-recommends lacks them (FACTS.md: without
// PIL the client connects, is disconnected as soon as Firefox's window exists, and a user sees
// an empty frame).
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

// CheckDraw is the preflight: xpra's interpreter imports every required DrawModule. The error
// is one line naming the Debian packages to install.
func CheckDraw(ctx context.Context, xpraPath, path string) error {
	return CheckDrawWith(ctx, nil, xpraPath, path)
}

// CheckDrawWith is CheckDraw running xpra's interpreter through run (see Runner).
func CheckDrawWith(ctx context.Context, run Runner, xpraPath, path string) error {
	interp, err := Interpreter(xpraPath, path)
	if err != nil {
		return fmt.Errorf("%w: %v: reinstall the Debian package xpra", ErrMissing, err)
	}
	missing, err := MissingModulesWith(ctx, run, interp, DrawModules)
	if err != nil {
		return fmt.Errorf("%w: xpra's interpreter does not run: %v", ErrMissing, err)
	}
	var pkgs, names []string
	for _, m := range missing {
		if m.Required {
			pkgs = append(pkgs, m.Package)
			names = append(names, m.Name)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: xpra cannot draw windows: its Python (%s) cannot import %s (%s): install it with apt-get install %s",
		ErrMissing, interp[0], strings.Join(names, ", "), missing[0].Why, strings.Join(pkgs, " "))
}

// Version returns the first line `bin --version` prints (bounded to 10 s).
func Version(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := execenv.CommandContext(ctx, "/", execenv.Check(), bin, "--version")
	out, err := cmd.CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil && first == "" {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	return strings.TrimSpace(first), nil
}
