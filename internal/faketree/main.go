// Command faketree builds a small process tree shaped like an ffl session, for tests of code that
// must find and end such trees (pkg/proc, pkg/lifecycle, pkg/reclaim). Tests build it with
// `go build -o DIR/faketree github.com/ffl-hpc/ffl/internal/faketree` (internal/faketree/ftest
// does that and starts trees for you).
//
// Usage:
//
//	faketree [-ignore-term] [-daemon] [-marker NAME=VALUE] [-comm NAME] [-ready FILE] [-timeout D]
//
// The tree:
//
//	root     this process; sleeps until killed (SIGTERM ends it)
//	└ child  sleeps until killed; with -ignore-term it ignores SIGTERM and needs SIGKILL
//	   └ (-daemon) an intermediate that calls setsid, starts the daemon and exits, so:
//	daemon   orphaned like a double-forked daemon (Xpra, Firefox's crashhelper): its own session,
//	         not a session leader, reparented to the nearest child subreaper or PID 1; sleeps
//	         until killed (SIGTERM ends it)
//
// Flags:
//
//	-ready FILE         once every process is up (signal dispositions, comm and marker in place,
//	                    the intermediate exited and reaped, the daemon reparented), write FILE
//	                    atomically (temp file + rename in FILE's directory): one line per process,
//	                    "<role> <pid>\n", roles "root", "child", then "daemon" if -daemon.
//	-ignore-term        the child ignores SIGTERM.
//	-daemon             the child leaves a daemonized grandchild behind (see above).
//	-marker NAME=VALUE  every process carries NAME=VALUE in its environment as exec'd, i.e. in
//	                    /proc/PID/environ (the root re-executes itself to get it in its own).
//	-comm NAME          the child renames itself (/proc/self/comm, at most 15 bytes), e.g.
//	                    "Web Content" or "(sd-pam)", to exercise /proc/PID/stat parsing.
//	-timeout D          give up (exit 1, message on stderr) if the tree is not up within D
//	                    (default 60s).
//
// Only the root's stdio is inherited from the caller; the other processes get /dev/null, so a
// caller waiting on the root's output pipes is not held up by the daemon (golang/go#23019).
// faketree exits 1 with a message on stderr if the tree cannot be built.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// reportFD is the descriptor on which non-root processes report "<role> <pid>" or "error <msg>"
// to the root: ExtraFiles[0].
const reportFD = 3

type options struct {
	role       string
	ready      string
	ignoreTerm bool
	daemon     bool
	marker     string
	comm       string
	timeout    time.Duration
	parent     int      // daemon: the PID of the intermediate it waits to see exit
	report     *os.File // the report pipe (fd 3) in every role but root
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "root", "internal: which process of the tree this is")
	flag.StringVar(&o.ready, "ready", "", "write the tree's pids to `FILE` when it is up")
	flag.BoolVar(&o.ignoreTerm, "ignore-term", false, "the child ignores SIGTERM")
	flag.BoolVar(&o.daemon, "daemon", false, "the child leaves a daemonized grandchild")
	flag.StringVar(&o.marker, "marker", "", "`NAME=VALUE` put in every process's environment")
	flag.StringVar(&o.comm, "comm", "", "command `NAME` of the child")
	flag.IntVar(&o.parent, "parent", 0, "internal: the daemon's first parent")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up if the tree is not up within `D`")
	flag.Parse()
	if flag.NArg() != 0 {
		fatal(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}
	if o.role != "root" {
		o.report = os.NewFile(reportFD, "report")
	}
	var err error
	switch o.role {
	case "root":
		err = runRoot(o)
	case "child":
		err = runChild(o)
	case "daemonize":
		err = runDaemonize(o)
	case "daemon":
		err = runDaemon(o)
	default:
		err = fmt.Errorf("unknown role %q", o.role)
	}
	if err != nil {
		if o.report != nil {
			o.report.WriteString("error " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n")
		}
		fatal(err)
	}
	sleepForever()
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "faketree: %v\n", err)
	os.Exit(1)
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// reportDone writes "<role> <pid>" to the root (a pipe write under PIPE_BUF is atomic) and
// closes this process's end, so the root sees EOF once every process has reported.
func reportDone(o options) error {
	_, err := fmt.Fprintf(o.report, "%s %d\n", o.role, os.Getpid())
	if cerr := o.report.Close(); err == nil {
		err = cerr
	}
	return err
}

// self returns a command re-running this binary in role, with the report pipe as fd 3 and
// /dev/null as stdio.
func self(role string, report *os.File, args ...string) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe", append([]string{"-role=" + role}, args...)...)
	cmd.ExtraFiles = []*os.File{report}
	return cmd
}

func runRoot(o options) error {
	if o.marker != "" {
		name, value, ok := strings.Cut(o.marker, "=")
		if !ok || name == "" {
			return fmt.Errorf("-marker %q: want NAME=VALUE", o.marker)
		}
		if cur, set := os.LookupEnv(name); !set || cur != value {
			// /proc/PID/environ shows the environment as exec'd, not os.Setenv's changes.
			env := []string{o.marker}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, name+"=") {
					env = append(env, kv)
				}
			}
			return syscall.Exec("/proc/self/exe", os.Args, env)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	var args []string
	if o.ignoreTerm {
		args = append(args, "-ignore-term")
	}
	if o.daemon {
		args = append(args, "-daemon")
	}
	if o.comm != "" {
		args = append(args, "-comm="+o.comm)
	}
	args = append(args, "-timeout="+o.timeout.String())
	child := self("child", w, args...)
	if err := child.Start(); err != nil {
		return fmt.Errorf("start child: %w", err)
	}
	w.Close()
	go func() { _ = child.Wait() }() // reap the child whenever it dies, as xpra would

	lines, err := readReports(r, o.timeout)
	if err != nil {
		_ = child.Process.Kill()
		return err
	}
	byRole := map[string]string{}
	for _, l := range lines {
		role, pid, _ := strings.Cut(l, " ")
		byRole[role] = pid
	}
	out := fmt.Sprintf("root %d\n", os.Getpid())
	want := []string{"child"}
	if o.daemon {
		want = append(want, "daemon")
	}
	for _, role := range want {
		pid, ok := byRole[role]
		if !ok {
			_ = child.Process.Kill()
			return fmt.Errorf("no %s reported (got %q)", role, lines)
		}
		out += role + " " + pid + "\n"
	}
	if o.ready != "" {
		if err := writeAtomic(o.ready, out); err != nil {
			_ = child.Process.Kill()
			return err
		}
	}
	return nil
}

// readReports reads report lines until every writer has closed the pipe, or fails on an
// "error" line or after timeout.
func readReports(r *os.File, timeout time.Duration) ([]string, error) {
	if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		if msg, ok := strings.CutPrefix(l, "error "); ok {
			return nil, errors.New(msg)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("waiting for the tree (got %q): %w", lines, err)
	}
	return lines, nil
}

func writeAtomic(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".faketree-ready-*")
	if err != nil {
		return err
	}
	_, werr := f.WriteString(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

func runChild(o options) error {
	if o.ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if o.comm != "" {
		// /proc/self/comm names the thread group leader, whatever thread this runs on.
		if err := os.WriteFile("/proc/self/comm", []byte(o.comm), 0); err != nil {
			return fmt.Errorf("set comm: %w", err)
		}
	}
	if o.daemon {
		mid := self("daemonize", o.report, "-timeout="+o.timeout.String())
		mid.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // first fork + setsid
		if err := mid.Run(); err != nil {
			return fmt.Errorf("daemonize: %w", err)
		}
	}
	return reportDone(o)
}

// runDaemonize is the session leader in the middle of the double fork: start the daemon, exit.
func runDaemonize(o options) error {
	d := self("daemon", o.report, "-timeout="+o.timeout.String(), "-parent="+strconv.Itoa(os.Getpid()))
	if err := d.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	os.Exit(0)
	return nil
}

func runDaemon(o options) error {
	_ = os.Chdir("/")
	// The intermediate may exit before this line runs, so its PID comes as a flag.
	deadline := time.Now().Add(o.timeout)
	for os.Getppid() == o.parent {
		if time.Now().After(deadline) {
			return fmt.Errorf("parent %d did not exit", o.parent)
		}
		time.Sleep(time.Millisecond)
	}
	return reportDone(o)
}
