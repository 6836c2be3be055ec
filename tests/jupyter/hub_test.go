package jupyter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
)

// Hub is one JupyterHub (with its configurable-http-proxy), run as root like a site runs it,
// with contrib/sbatch/jupyterhub_config.py loaded as shipped and this suite's settings on top.
type Hub struct {
	e        *Env
	dir      string // config, database, cookie secret, log
	URL      string // public URL (the proxy), e.g. http://127.0.0.1:PORT
	token    string // API token of the suite's admin service
	Password string // the DummyAuthenticator's password of every test user
	cmd      *exec.Cmd
	done     chan error
	log      *os.File
}

// hubConfig is the suite's jupyterhub_config.py: contrib's file, then what a test hub needs.
// Per-user spawn settings come from spawn-env.json at each spawn (a pre_spawn_hook), so a test
// can give one user a broken setting or a tiny port range without restarting the hub.
const hubConfig = `# jupyterhub_config.py of ffl's tests/jupyter (generated)
import json
import os

c = get_config()
load_subconfig(%[1]q)

c.JupyterHub.bind_url = "http://127.0.0.1:%[2]d"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:%[3]d"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%[4]d"
c.ConfigurableHTTPProxy.pid_file = %[5]q + "/proxy.pid"
c.JupyterHub.pid_file = %[5]q + "/jupyterhub.pid"
c.JupyterHub.db_url = "sqlite:///" + %[5]q + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = %[5]q + "/cookie_secret"
c.JupyterHub.log_level = "DEBUG"
# Activity reaches the hub every few seconds (defaults: 300 s) from both of its sources, the
# proxy's routes and the single-user server's reports, so that TestCulling runs in a minute.
c.JupyterHub.last_activity_interval = 5

# Real system users (tests/slurm/users.sh), one shared password: an authenticator fit for tests.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = %[6]q
c.Authenticator.allowed_users = {"ffluser1", "ffluser2"}

# The suite's admin client.
c.JupyterHub.services = [{"name": "ffl-test", "api_token": %[7]q}]
c.JupyterHub.load_roles = [{
    "name": "ffl-test",
    "scopes": ["admin:users", "admin:servers", "admin:server_state", "list:users", "read:users", "access:servers", "read:metrics"],
    "services": ["ffl-test"],
}]

# The local cluster: one node, a partition whose cores may be shared, no memory accounting.
c.SlurmSpawner.req_partition = %[8]q
c.SlurmSpawner.req_memory = ""
c.SlurmSpawner.req_nprocs = "1"
c.SlurmSpawner.req_runtime = "1:00:00"
# What a site puts on the nodes' PATH and Python path (sudo resets PATH and drops PYTHONPATH).
c.SlurmSpawner.req_prologue = %[9]q
# The venv's absolute command, not on the job's PATH.
c.Spawner.cmd = [%[10]q]
c.Spawner.environment["FIREFOX_LAUNCHER_CLEANUP_TIMEOUT"] = "3"
c.Spawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] = "5"
c.Spawner.environment["JUPYTER_CONFIG_PATH"] = %[11]q
c.Spawner.debug = True

_base_env = dict(c.Spawner.environment)


def _per_user_env(spawner):
    with open(%[5]q + "/spawn-env.json", encoding="utf-8") as f:
        extra = json.load(f).get(spawner.user.name, {})
    spawner.environment = {**_base_env, **extra}


c.Spawner.pre_spawn_hook = _per_user_env
`

func newHub(e *Env) (*Hub, error) {
	dir := filepath.Join(e.dir, "hub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	lo, err := slurmtest.FreePortRange(3)
	if err != nil {
		return nil, err
	}
	h := &Hub{e: e, dir: dir, URL: "http://127.0.0.1:" + strconv.Itoa(lo), token: randomHex(16), Password: randomHex(8)}
	// jupyter-server-proxy's "enable the extension" file is in the venv's etc/jupyter, which
	// jupyter_server finds by itself (sys.prefix); contrib's jupyter_server_config.py comes
	// through JUPYTER_CONFIG_PATH, as a site would put it.
	jcp := filepath.Join(e.root, "contrib", "sbatch")
	// What the prologue exports reaches the srun'd server only when it is in keepvars (sbatch
	// --export=LIST makes srun export just those): PATH is; JUPYTER_CONFIG_PATH goes through
	// Spawner.environment instead.
	prologue := "export PATH=" + e.bin + ":" + slurmtest.UserPath
	cfg := fmt.Sprintf(hubConfig, filepath.Join(e.root, "contrib", "sbatch", "jupyterhub_config.py"),
		lo, lo+1, lo+2, dir, h.Password, h.token, partition, prologue, e.stack.Bin("jupyterhub-singleuser"), jcp)
	if err := os.WriteFile(filepath.Join(dir, "jupyterhub_config.py"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := h.SetUserEnv(nil); err != nil {
		return nil, err
	}
	return h, nil
}

// SetUserEnv sets the extra job environment of each user's next spawns (FFL_CONFIG is always
// the user's own config unless given).
func (h *Hub) SetUserEnv(extra map[string]map[string]string) error {
	all := map[string]map[string]string{}
	for name, u := range h.e.users {
		all[name] = map[string]string{"FFL_CONFIG": h.e.userConfig(u)}
		for k, v := range extra[name] {
			all[name][k] = v
		}
	}
	data, err := json.Marshal(all)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.dir, "spawn-env.json"), data, 0o600)
}

// Start runs jupyterhub and waits until its API answers.
func (h *Hub) Start() error {
	t0 := time.Now()
	log, err := os.OpenFile(filepath.Join(h.dir, "hub.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	h.log = log
	cmd := exec.Command(h.e.stack.Bin("jupyterhub"), "-f", filepath.Join(h.dir, "jupyterhub_config.py"))
	cmd.Dir = h.dir
	// The whole environment: nothing of the caller's (no PYTHONPATH); the venv's bin first, as
	// an activated venv has it.
	env := []string{
		"PATH=" + h.e.bin + ":" + filepath.Join(h.e.stack.Venv, "bin") + ":/usr/local/sbin:/usr/sbin:" + slurmtest.UserPath,
		"HOME=/root", "LANG=C.UTF-8", "PYTHONNOUSERSITE=1",
		"SLURM_CONF=" + filepath.Join(h.e.confDir, "slurm.conf"),
		// Debian's configurable-http-proxy finds its modules there only with Debian's node.
		"NODE_PATH=/usr/share/nodejs",
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a hub that does not stop on SIGTERM is killed with its proxy.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start jupyterhub: %w", err)
	}
	h.cmd = cmd
	h.done = make(chan error, 1)
	go func() { h.done <- cmd.Wait() }()
	var lastErr error
	ok := slurmtest.WaitUntil(60*time.Second, func() bool {
		select {
		case err := <-h.done:
			h.done <- err
			lastErr = fmt.Errorf("jupyterhub exited: %v", err)
			return true
		default:
		}
		var info map[string]any
		lastErr = h.API(http.MethodGet, "/hub/api/", nil, &info)
		return lastErr == nil
	})
	if !ok || lastErr != nil {
		return fmt.Errorf("jupyterhub did not come up in 60 s (%v); log %s:\n%s", lastErr, log.Name(), h.LogTail(40))
	}
	logf("jupyterhub up at %s (pid %d) in %v", h.URL, cmd.Process.Pid, time.Since(t0).Round(time.Millisecond))
	return nil
}

// Stop ends jupyterhub with SIGTERM (the servers keep running: cleanup_servers = False) and
// waits for it and its proxy to exit.
func (h *Hub) Stop() error {
	if h.cmd == nil {
		return nil
	}
	defer func() { h.cmd = nil; h.log.Close() }()
	pgid := h.cmd.Process.Pid
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-h.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-h.done
		return fmt.Errorf("jupyterhub (pid %d) did not stop within 30 s of SIGTERM; killed its group", pgid)
	}
	// configurable-http-proxy is the hub's child in the hub's group: it must be gone too.
	if !slurmtest.WaitUntil(10*time.Second, func() bool { return syscall.Kill(-pgid, 0) != nil }) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return fmt.Errorf("processes of jupyterhub's group %d outlived it by 10 s; killed", pgid)
	}
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() <= 0) {
		return fmt.Errorf("jupyterhub: %w", err)
	}
	return nil
}

// StopAll stops every user's server through the API, then the hub.
func (h *Hub) StopAll() error {
	if h.cmd == nil {
		return nil
	}
	var errs []error
	for name := range h.e.users {
		if err := h.StopServer(name); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, h.Stop())
	return errors.Join(errs...)
}

// API calls the hub's REST API as the suite's admin service and decodes the JSON answer into out.
func (h *Hub) API(method, path string, body any, out any) error {
	_, err := h.APIStatus(method, path, body, out)
	return err
}

// Metrics returns the hub's Prometheus metrics (/hub/metrics) as the suite's admin service.
func (h *Hub) Metrics() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/hub/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "token "+h.token)
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /hub/metrics: %s: %.200s", resp.Status, data)
	}
	return string(data), err
}

// APIStatus is API that also returns the HTTP status.
func (h *Hub) APIStatus(method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "token "+h.token)
	c := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode >= 400 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w: %s", method, path, err, data)
		}
	}
	return resp.StatusCode, nil
}

// HubUser is the part of the hub's user model the suite reads.
type HubUser struct {
	Name    string               `json:"name"`
	Pending *string              `json:"pending"`
	Server  *string              `json:"server"`
	Servers map[string]HubServer `json:"servers"`
}

// HubServer is one server of a user.
type HubServer struct {
	Ready   bool           `json:"ready"`
	Pending *string        `json:"pending"`
	URL     string         `json:"url"`
	State   map[string]any `json:"state"`
	// LastActivity is what the hub knows of the server's last use (what the idle culler reads).
	LastActivity string `json:"last_activity"`
}

// User reads a user from the API.
func (h *Hub) User(name string) (HubUser, error) {
	var u HubUser
	err := h.API(http.MethodGet, "/hub/api/users/"+name, nil, &u)
	return u, err
}

// JobID returns the Slurm job id batchspawner keeps in the state of the user's server.
func (h *Hub) JobID(name string) (string, error) {
	u, err := h.User(name)
	if err != nil {
		return "", err
	}
	s, ok := u.Servers[""]
	if !ok {
		return "", fmt.Errorf("%s has no server", name)
	}
	id, _ := s.State["job_id"].(string)
	if id == "" {
		return "", fmt.Errorf("the state of %s's server has no job_id: %v", name, s.State)
	}
	return id, nil
}

// StopServer stops the user's server through the API, as jupyterhub-idle-culler does, and waits
// until the hub no longer lists it.
func (h *Hub) StopServer(name string) error {
	status, err := h.APIStatus(http.MethodDelete, "/hub/api/users/"+name+"/server", nil, nil)
	if status == http.StatusBadRequest || status == http.StatusNotFound {
		return nil // no server (or already stopping)
	}
	if err != nil {
		return err
	}
	var u HubUser
	if !slurmtest.WaitUntil(2*time.Minute, func() bool {
		u, err = h.User(name)
		return err == nil && len(u.Servers) == 0 && u.Pending == nil
	}) {
		return fmt.Errorf("%s's server still listed 2 minutes after DELETE: %+v (%v)", name, u, err)
	}
	return nil
}

// LogTail returns the last n lines of the hub's log.
func (h *Hub) LogTail(n int) string {
	data, _ := os.ReadFile(filepath.Join(h.dir, "hub.log"))
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dumpOnFailure prints the hub's log tail when t failed.
func (h *Hub) dumpOnFailure(t *testing.T) {
	t.Helper()
	if t.Failed() {
		t.Logf("hub log (last 80 lines of %s):\n%s", filepath.Join(h.dir, "hub.log"), h.LogTail(80))
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
