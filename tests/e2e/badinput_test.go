package e2e

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// TestBadInput: every kind of bad input gets a one-line error naming the thing and the fix, its
// documented exit code, and leaves nothing behind. Uses fakexpra where a session would start, so
// it needs no real xpra.
func TestBadInput(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the launcher as a test user")
	}
	fakexpra := buildFake(t)
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
			cfg := map[string]string{"xpra": strconv.Quote(fakexpra), "xpra_args": `["--fakexpra-mode=no-tree"]`, "firefox": `"/bin/true"`}
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
