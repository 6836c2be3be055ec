// Command fakexpra stands in for `xpra start` in fast lifecycle tests: it takes xpra's command
// line, listens on the --bind unix socket, answers GET / with 200, writes a display number to
// --displayfd, and
// builds a session-shaped process tree with internal/faketree (a TERM-ignoring child and a
// daemonized grandchild). Its environment, including FFL_SESSION, reaches every process, as
// xpra's does. Real xpra is used by the end-to-end tests; this one gives precise timing.
//
// Behaviour is chosen with --fakexpra-mode=MODES (comma-separated; the launcher passes
// extra xpra arguments through, and the session's environment is cleared, so no variables):
//
//	compliant   on SIGTERM, end the tree (TERM to the child's group) and exit 0 (default: exit
//	            at once and leave the tree, like a SIGKILLed xpra)
//	ignore-term ignore SIGTERM itself (only KILL ends it)
//	no-tree     do not start faketree
//	slow-ready  wait 300 ms before listening
//	exit-early  exit 1 after 100 ms, before listening (a crashing start)
//
// --fakexpra-faketree=PATH is the faketree binary (required unless no-tree).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		// What ffl's launcher asks first: the fake plays Debian 12's xpra.
		fmt.Println("xpra v3.1.3 (fakexpra)")
		return
	}
	mode := map[string]bool{}
	var bind, faketree string
	displayFD := -1
	for _, a := range os.Args[1:] {
		if v, ok := strings.CutPrefix(a, "--fakexpra-mode="); ok {
			for _, m := range strings.Split(v, ",") {
				mode[strings.TrimSpace(m)] = true
			}
		}
		if v, ok := strings.CutPrefix(a, "--fakexpra-faketree="); ok {
			faketree = v
		}
		if v, ok := strings.CutPrefix(a, "--bind="); ok {
			bind = v
		}
		if v, ok := strings.CutPrefix(a, "--displayfd="); ok {
			displayFD, _ = strconv.Atoi(v)
		}
	}
	if bind == "" {
		fmt.Fprintln(os.Stderr, "fakexpra: --bind missing")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM)
	if mode["ignore-term"] {
		signal.Ignore(syscall.SIGTERM)
	}
	if mode["slow-ready"] {
		time.Sleep(300 * time.Millisecond)
	}
	if mode["exit-early"] {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "fakexpra: exiting early as asked")
		os.Exit(1)
	}
	ln, err := net.Listen("unix", bind)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fakexpra: failed to bind %s: %v\n", bind, err)
		os.Exit(1)
	}
	var tree *exec.Cmd
	if !mode["no-tree"] {
		// Ready only once the tree is up, its child ignoring TERM: a stop right after the
		// session's readiness must find the tree as it will stay (otherwise a TERM that comes
		// first ends the child, and a test of a stop that needs KILL sees none needed).
		treeReady := bind + ".tree-ready"
		tree = exec.Command(faketree, "-ignore-term", "-daemon", "-ready", treeReady)
		tree.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := tree.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "fakexpra: faketree: %v\n", err)
			os.Exit(1)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			if _, err := os.Stat(treeReady); err == nil {
				_ = os.Remove(treeReady)
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "fakexpra: faketree not up within 30 s")
				os.Exit(1)
			}
		}
	}
	if displayFD >= 0 {
		f := os.NewFile(uintptr(displayFD), "displayfd")
		fmt.Fprintln(f, os.Getpid()%1000+100)
		f.Close()
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "fake xpra websockets client")
		}))
	}()
	<-sigs
	if mode["compliant"] && tree != nil {
		_ = syscall.Kill(-tree.Process.Pid, syscall.SIGKILL)
		_, _ = tree.Process.Wait()
	}
	os.Exit(0)
}
