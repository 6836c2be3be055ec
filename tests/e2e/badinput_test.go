package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// TestBadInput: every kind of bad input gets a one-line error naming the thing and the fix, its
// documented exit code, and leaves nothing behind. The real xpra and Firefox are the defaults:
// most cases fail before anything starts; the ones that start xpra (a Firefox that crashes, an
// xpra option xpra refuses) are the real failure.
func TestBadInput(t *testing.T) {
	require(t, "xpra", "firefox-esr")
	dir := testutil.SharedDir(t)
	// An xpra whose Python cannot import PIL: a copy of /usr/bin/xpra whose #! names a python
	// without its site packages (what a node without python3-pil looks like to the preflight).
	nopil := filepath.Join(dir, "python3-nopil")
	testutil.Must(t, os.WriteFile(nopil, []byte("#!/bin/sh\nexec /usr/bin/python3 -S -I \"$@\"\n"), 0o755), "nopil")
	orig, err := os.ReadFile("/usr/bin/xpra")
	testutil.Must(t, err, "read xpra")
	rest := orig[strings.IndexByte(string(orig), '\n')+1:]
	xpraNoPIL := filepath.Join(dir, "xpra-nopil")
	testutil.Must(t, os.WriteFile(xpraNoPIL, append([]byte("#!"+nopil+"\n"), rest...), 0o755), "xpra copy")
	// A Firefox that crashes at once.
	crash := filepath.Join(dir, "firefox-crash")
	testutil.Must(t, os.WriteFile(crash, []byte("#!/bin/sh\necho 'firefox-crash: Segmentation fault (test)' >&2\nexit 139\n"), 0o755), "crash")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	busyCfg := map[string]string{"port_min": strconv.Itoa(busyPort), "port_max": strconv.Itoa(busyPort), "max_sessions": "1"}
	cases := []struct {
		name    string
		cfg     map[string]string
		env     []string
		args    []string
		code    int
		message []string
	}{
		{name: "port outside range", args: []string{"run", "--port", "80"}, code: 2, message: []string{"port 80", "outside the allowed range"}},
		{name: "port in use", args: []string{"run", "--port", strconv.Itoa(busyPort)}, cfg: busyCfg, code: 2, message: []string{"already in use", "--port"}},
		{name: "xpra missing", cfg: map[string]string{"xpra": `"/nonexistent/xpra"`}, args: []string{"run"}, code: 3, message: []string{"xpra", "Debian package xpra"}},
		{name: "xpra cannot draw (no python3-pil)", cfg: map[string]string{"xpra": strconv.Quote(xpraNoPIL)}, args: []string{"run"}, code: 3, message: []string{"PIL", "apt-get install python3-pil"}},
		{name: "start page missing", args: []string{"run", "--url", "file:///nonexistent/start.html"}, code: 2, message: []string{"file:///nonexistent/start.html", "--url"}},
		{name: "start page unreachable", cfg: map[string]string{"start_url": `"http://127.0.0.1:1/"`}, args: []string{"run"}, code: 2, message: []string{"http://127.0.0.1:1/", "start_url"}},
		{name: "firefox crashes at start", cfg: map[string]string{"firefox": strconv.Quote(crash)}, args: []string{"run"}, code: 1, message: []string{"xpra exited", "firefox: firefox-crash: Segmentation fault (test)"}},
		{name: "xpra refuses an option", cfg: map[string]string{"xpra_args": `["--no-such-xpra-option=1"]`}, args: []string{"run"}, code: 1, message: []string{"xpra exited", "no-such-xpra-option"}},
		{name: "bad screen size", cfg: map[string]string{"screen_size": `"huge"`}, args: []string{"run"}, code: 2, message: []string{"screen_size", "WIDTHxHEIGHT"}},
		{name: "bad keyboard layout", cfg: map[string]string{"keyboard_layout": `"de(nodeadkeys)"`}, args: []string{"run"}, code: 2, message: []string{"keyboard_layout", "de(nodeadkeys)", `"auto"`}},
		{name: "firefox missing", cfg: map[string]string{"firefox": `"no-such-firefox"`}, args: []string{"run"}, code: 3, message: []string{"no-such-firefox", "Debian package firefox-esr"}},
		{name: "malformed config", cfg: map[string]string{"port_min": `"eight"`}, args: []string{"run"}, code: 2, message: []string{"ffl.toml", "port_min"}},
		{name: "unknown config key", cfg: map[string]string{"prot_min": "8001"}, args: []string{"run"}, code: 2, message: []string{"ffl.toml", "prot_min"}},
		{name: "bad cleanup timeout", env: []string{"FIREFOX_LAUNCHER_CLEANUP_TIMEOUT=soon"}, args: []string{"run"}, code: 2, message: []string{"FIREFOX_LAUNCHER_CLEANUP_TIMEOUT", "soon"}},
		{name: "malformed job id", env: []string{"SLURM_JOB_ID=12;rm"}, args: []string{"run"}, code: 2, message: []string{"SLURM_JOB_ID"}},
		{name: "malformed uid", env: []string{"SLURM_JOB_UID=abc"}, args: []string{"run"}, code: 2, message: []string{"SLURM_JOB_UID", "abc"}},
		{name: "user with slash", env: []string{"SLURM_JOB_USER=../root"}, args: []string{"run"}, code: 2, message: []string{"SLURM_JOB_USER"}},
		{name: "unwritable state dir", cfg: map[string]string{"state_dir": `"/proc/ffl-state"`}, args: []string{"run"}, code: 2, message: []string{"/proc/ffl-state", "state_dir"}},
		{name: "stop without supervisor", args: []string{"stop", "8001"}, code: 4, message: []string{"no supervisor"}},
		{name: "stop bad port", args: []string{"stop", "http"}, code: 2, message: []string{"PORT", "http"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := map[string]string{}
			for k, v := range c.cfg {
				cfg[k] = v
			}
			e := newEnv(t, "ffltest", "9100", cfg)
			cmd := e.command(c.args...)
			cmd.Env = overrideEnv(cmd.Env, c.env)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if code != c.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, c.code, out)
			}
			for _, m := range c.message {
				if !strings.Contains(last, m) {
					t.Errorf("error line %q does not mention %q", last, m)
				}
			}
			if !strings.HasPrefix(last, "ffl-launch: ") {
				t.Errorf("last line is not the one-line error: %q", last)
			}
			e.assertNothingLeft(t)
		})
	}
}

func overrideEnv(env, over []string) []string {
	out := append([]string(nil), env...)
	for _, o := range over {
		k := o[:strings.IndexByte(o, '=')+1]
		replaced := false
		for i, e := range out {
			if strings.HasPrefix(e, k) {
				out[i] = o
				replaced = true
			}
		}
		if !replaced {
			out = append(out, o)
		}
	}
	return out
}

func buildFake(t *testing.T) string {
	t.Helper()
	return testutil.Build(t, "github.com/ffl-hpc/ffl/internal/fakexpra")
}
