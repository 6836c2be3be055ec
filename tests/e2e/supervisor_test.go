package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// fakeEnv is an env whose xpra is fakexpra with a session-shaped tree (a TERM-ignoring child and
// a daemonized grandchild), so supervisor behaviour is tested fast and precisely.
func fakeEnv(t *testing.T, job string, cfg map[string]string) *env {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to run the launcher as a test user")
	}
	ft := testutil.Build(t, "github.com/ffl-hpc/ffl/internal/faketree")
	base := map[string]string{
		"xpra":      strconv.Quote(buildFake(t)),
		"xpra_args": `["--fakexpra-faketree=` + ft + `", "--fakexpra-mode=ignore-term"]`,
		"firefox":   `"/bin/true"`, "cleanup_timeout": `"1s"`,
	}
	for k, v := range cfg {
		base[k] = v
	}
	return newEnv(t, "ffltest", job, base)
}

// TestWrappedCommand: `run -- CMD` runs CMD with the supervisor's socket; CMD starts, lists and
// stops sessions through it (start/list/stop as a Jupyter extension would); stopping one
// session leaves the other; when CMD exits, the supervisor stops the rest and exits with CMD's
// status, leaving nothing.
func TestWrappedCommand(t *testing.T) {
	e := fakeEnv(t, "9201", nil)
	script := filepath.Join(e.dir, "cmd.sh")
	out := filepath.Join(e.dir, "cmd.out")
	body := `#!/bin/sh
set -e
[ -S "$FFL_CONTROL_SOCKET" ]
"$FFL" --config "$CFG" start --json > "$OUT.1"
"$FFL" --config "$CFG" start --json > "$OUT.2"
"$FFL" --config "$CFG" list --json > "$OUT.list"
p=$(sed 's/.*"port":\([0-9]*\).*/\1/' "$OUT.1")
"$FFL" --config "$CFG" stop "$p"
"$FFL" --config "$CFG" list --json > "$OUT.list2"
touch "$OUT.ready"
while [ ! -e "$OUT.go" ]; do sleep 0.05; done
exit 7
`
	testutil.Must(t, os.WriteFile(script, []byte(body), 0o755), "script")
	cmd := e.command("run", "--", script)
	cmd.Env = append(cmd.Env, "FFL="+e.bin, "CFG="+e.cfg, "OUT="+out)
	logf, _ := os.Create(filepath.Join(e.dir, "launcher.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	testutil.Must(t, cmd.Start(), "start")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if !testutil.Eventually(60*time.Second, func() bool { _, err := os.Stat(out + ".ready"); return err == nil }) {
		_ = cmd.Process.Kill()
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("wrapped command did not get through start/list/stop:\n%s", b)
	}
	var s1, s2 lifecycle.Info
	readJSON(t, out+".1", &s1)
	readJSON(t, out+".2", &s2)
	var list, list2 []lifecycle.Info
	readJSON(t, out+".list", &list)
	readJSON(t, out+".list2", &list2)
	if len(list) != 2 || len(list2) != 1 || list2[0].Port != s2.Port {
		t.Errorf("list before stop %v, after %v; want both, then only %d", list, list2, s2.Port)
	}
	l := e.layout()
	if ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.Marker(s1.Port)); len(ids) != 0 {
		t.Errorf("stopped session left %v", ids)
	}
	if ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, l.Marker(s2.Port)); len(ids) < 3 {
		t.Errorf("the other session lost processes: %v", ids)
	}
	testutil.Must(t, os.WriteFile(out+".go", nil, 0o644), "go")
	select {
	case err := <-done:
		if code := cmd.ProcessState.ExitCode(); code != 7 {
			t.Errorf("exit %d (%v), want the wrapped command's 7", code, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("supervisor did not exit after its command")
	}
	e.assertNothingLeft(t, s1.Port, s2.Port)
	if t.Failed() {
		b, _ := os.ReadFile(logf.Name())
		t.Logf("launcher log:\n%s", b)
	}
}

// TestSecondSignalKillsNow: a second SIGTERM during the grace path goes straight to KILL: with a
// 60 s cleanup timeout and TERM-ignoring processes, the launcher still exits long before it.
func TestSecondSignalKillsNow(t *testing.T) {
	e := fakeEnv(t, "9202", map[string]string{"cleanup_timeout": `"60s"`})
	l := e.run()
	info := l.ready(t)
	if !testutil.Eventually(20*time.Second, func() bool {
		ids, _ := proc.FindByMarker(e.user.UID, layout.MarkerVar, e.layout().Marker(info.Port))
		return len(ids) >= 4
	}) {
		t.Fatal("fake session tree never came up")
	}
	testutil.Must(t, l.cmd.Process.Signal(syscall.SIGTERM), "TERM")
	time.Sleep(300 * time.Millisecond)
	testutil.Must(t, l.cmd.Process.Signal(syscall.SIGTERM), "second TERM")
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		t.Fatal("second signal did not cut the 60 s grace short")
	}
	if code := l.cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("exit %d, want 143", code)
	}
	e.assertNothingLeft(t, info.Port)
}

// TestSessionEndsByItself: when the user closes Firefox, xpra exits with its children; the
// supervisor cleans that session up and, having no other session and no command, exits 0.
func TestSessionEndsByItself(t *testing.T) {
	e := fakeEnv(t, "9203", map[string]string{"xpra_args": `["--fakexpra-mode=no-tree"]`})
	l := e.run()
	info := l.ready(t)
	// fakexpra exits 0 on TERM, as xpra does when its last child (Firefox) is gone.
	testutil.Must(t, syscall.Kill(info.PID, syscall.SIGTERM), "end xpra")
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		t.Fatal("supervisor did not exit after its only session ended")
	}
	if code := l.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	e.assertNothingLeft(t, info.Port)
}

// TestListWithoutSupervisor: after a SIGKILL of the launcher, `list` (no supervisor) shows the
// session as stale, and `clean` removes it and its processes.
func TestListWithoutSupervisor(t *testing.T) {
	e := fakeEnv(t, "9204", nil)
	l := e.run()
	info := l.ready(t)
	testutil.Must(t, l.cmd.Process.Signal(syscall.SIGKILL), "KILL")
	<-l.done
	list := e.command("list", "--json")
	list.Env = overrideEnv(list.Env, []string{"SLURM_JOB_ID=9299"})
	b, err := list.Output()
	testutil.Must(t, err, "list")
	var found []map[string]any
	testutil.Must(t, json.Unmarshal(b, &found), "list json %s", b)
	stale := false
	for _, s := range found {
		if s["job"] == "9204" && int(s["port"].(float64)) == info.Port && s["live"] == false {
			stale = true
		}
	}
	if !stale {
		t.Errorf("list does not show job 9204 port %d as stale: %s", info.Port, b)
	}
	clean := e.command("clean")
	clean.Env = overrideEnv(clean.Env, []string{"SLURM_JOB_ID=9299"})
	cb, err := clean.CombinedOutput()
	if err != nil {
		t.Fatalf("clean: %v\n%s", err, cb)
	}
	if !strings.Contains(string(cb), "removed 1 stale session") {
		t.Errorf("clean output: %s", cb)
	}
	e.assertNothingLeft(t, info.Port)
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	testutil.Must(t, err, "read %s", path)
	testutil.Must(t, json.Unmarshal(b, v), "parse %s: %s", path, b)
}
