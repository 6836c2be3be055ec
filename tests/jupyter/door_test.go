package jupyter

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// proxySecretHeader is the header the proxy port requires (front.ProxySecretHeader).
const proxySecretHeader = "X-Ffl-Proxy-Secret"

// TestDoorProxyHeaderConfig: with $FFL_PROXY_SECRET_FILE, the Firefox entry of
// contrib/sbatch/jupyter_server_config.py sends the file's secret as the proxy port's header
// (jupyter-server-proxy's request_headers_override, which it merges into HTTP requests and
// WebSocket handshakes alike); a file that is not an ffl secret stops the config with an error
// naming it, instead of proxying without the header.
func TestDoorProxyHeaderConfig(t *testing.T) {
	env := pythonEnv(t)
	dir := filepath.Join(moduleRoot(t), "contrib", "sbatch")
	script := `
import json, sys
from traitlets.config.loader import PyFileConfigLoader
c = PyFileConfigLoader("jupyter_server_config.py", path=sys.argv[1]).load_config()
print(json.dumps(c.ServerProxy.servers["firefox"].get("request_headers_override")))
`
	secret := strings.Repeat("0123456789abcdef", 4)
	file := filepath.Join(t.TempDir(), "proxy-secret")
	testutil.Must(t, os.WriteFile(file, []byte(secret+"\n"), 0o600), "secret")
	var headers map[string]string
	out := runPython(t, append(env, "FFL_PROXY_PORT=23456", "FFL_PROXY_SECRET_FILE="+file), script, dir)
	if err := json.Unmarshal(out, &headers); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if headers[proxySecretHeader] != secret || len(headers) != 1 {
		t.Errorf("request_headers_override = %v, want {%s: the file's secret}", headers, proxySecretHeader)
	}
	testutil.Must(t, os.WriteFile(file, []byte("{port}\n"), 0o600), "bad secret")
	cmd := pythonCmd(append(env, "FFL_PROXY_PORT=23456", "FFL_PROXY_SECRET_FILE="+file), script, dir)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "not an ffl proxy secret") {
		t.Errorf("a file that is no secret: %v\n%s", err, b)
	}
}

// TestDoorJupyterPath: on the real Jupyter path the proxy port relays what the user's notebook
// server sends (the user's visit through the hub paints Firefox: jupyter-server-proxy added the
// job's secret to the HTML5 client's requests and to its WebSocket), and nothing else: the
// owner's own request to the port without the secret, or with a wrong one (what a web page in
// the user's browser on the node can send at best), gets the 403 page naming the Jupyter path.
// The secret file is the user's, 0600.
func TestDoorJupyterPath(t *testing.T) {
	e := env(t)
	defer e.hub.dumpOnFailure(t)
	e.requireProxy(t)
	s := e.newSession(t, "ffluser1")
	s.spawn(t)
	s.visit(t, "visit of ffluser1 through the hub (door test)")
	port, err := s.job.serverEnv("FFL_PROXY_PORT")
	testutil.Must(t, err, "FFL_PROXY_PORT")
	file, err := s.job.serverEnv("FFL_PROXY_SECRET_FILE")
	testutil.Must(t, err, "FFL_PROXY_SECRET_FILE")
	fi, err := os.Lstat(file)
	testutil.Must(t, err, "secret file")
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || !fi.Mode().IsRegular() || int(st.Uid) != s.u.UID {
		t.Errorf("secret file %s: %v uid %d, want a 0600 file of uid %d", file, fi.Mode(), st.Uid, s.u.UID)
	}
	secret := strings.TrimSpace(string(testutil.MustRead(t, file)))
	url := "http://127.0.0.1:" + port + "/"
	curl := func(header ...string) (string, string) {
		args := []string{"-sS", "-m", "20", "-w", "\n%{http_code}"}
		for _, h := range header {
			args = append(args, "-H", h)
		}
		out, _ := e.asUser(context.Background(), s.u, nil, "curl", append(args, url)...)
		out = strings.TrimSpace(out)
		i := strings.LastIndex(out, "\n")
		return out[:i+1], out[i+1:]
	}
	for _, tc := range []struct{ name, header string }{
		{"no secret", ""},
		{"a wrong secret", proxySecretHeader + ": " + strings.Repeat("0", len(secret))},
	} {
		var body, code string
		if tc.header == "" {
			body, code = curl()
		} else {
			body, code = curl(tc.header)
		}
		if code != "403" || !strings.Contains(body, "Jupyter proxy") {
			t.Errorf("the owner's request to the proxy port %s with %s: %s %.300q, want the 403 page naming the Jupyter path", port, tc.name, code, body)
		}
	}
	// What jupyter-server-proxy sends: the secret (and the hub's Host), and the HTML5 client comes.
	body, code := curl(proxySecretHeader+": "+secret, "Host: hub.example.org")
	if code != "200" || !strings.Contains(strings.ToLower(body), "<html") || strings.Contains(body, "refuses") {
		t.Errorf("a request with the job's secret: %s %.300q, want xpra's HTML5 client", code, body)
	}
	if err := e.hub.StopServer("ffluser1"); err != nil {
		t.Fatal(err)
	}
	s.job.assertClean(t, nil)
}

// pythonCmd is runPython's command, for a script that is expected to fail.
func pythonCmd(env []string, script string, args ...string) *exec.Cmd {
	cmd := exec.Command(theStack.Python(), append([]string{"-I", "-c", script}, args...)...)
	cmd.Env, cmd.Dir = env, "/"
	return cmd
}
