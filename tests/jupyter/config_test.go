package jupyter

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// pythonEnv returns the environment for the stack's Python (the venv is made on first use); it
// skips (or fails, with FFL_E2E=1) when the stack cannot be installed.
func pythonEnv(t *testing.T) []string {
	t.Helper()
	stack(t)
	return isolatedEnv()
}

func runPython(t *testing.T, env []string, script string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(theStack.Python(), append([]string{"-I", "-c", script}, args...)...)
	cmd.Env, cmd.Dir = env, "/"
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// TestTemplateMatchesBatchspawner: contrib/sbatch/slurmspawner.sh.j2 is the installed
// batchspawner's own SlurmSpawner template with exactly two lines changed: the one that runs the
// server under `ffl-launch run --`, and `--get-user-env=L` without its argument (sbatch 26.05
// refuses any argument there, so batchspawner's own template fails every submission on 26.05;
// 22.05 to 25.11 take both forms, and the option only acts for root's sbatch); rendered as
// batchspawner renders it, with and without srun, it is valid bash.
func TestTemplateMatchesBatchspawner(t *testing.T) {
	env := pythonEnv(t)
	tmpl := filepath.Join(moduleRoot(t), "contrib", "sbatch", "slurmspawner.sh.j2")
	out := runPython(t, env, `
import json, sys
import batchspawner
from batchspawner.batchspawner import format_template
ours = open(sys.argv[1], encoding="utf-8").read()
subvars = dict(homedir="/home/u", keepvars="PATH,LANG", partition="p", runtime="1:00:00", memory="", gres="",
               nprocs="2", reservation="", options="--signal=TERM@60", prologue="export A=1", epilogue="",
               cmd="batchspawner-singleuser /opt/venv/bin/jupyterhub-singleuser --debug")
print(json.dumps({
    "version": batchspawner.__version__,
    "upstream": batchspawner.SlurmSpawner.batch_script.default_value,
    "srun": format_template(ours, srun="srun", **subvars),
    "exec": format_template(ours, srun="", **subvars),
}))
`, tmpl)
	var r struct{ Version, Upstream, Srun, Exec string }
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	ours := strings.Split(string(testutil.MustRead(t, tmpl)), "\n")
	up := strings.Split(r.Upstream, "\n")
	if len(ours) != len(up) {
		t.Fatalf("%s has %d lines, batchspawner %s's template %d: only the command line may differ", tmpl, len(ours), r.Version, len(up))
	}
	var diff []int
	for i := range up {
		switch {
		case ours[i] == up[i]:
		case up[i] == "#SBATCH --get-user-env=L" && ours[i] == "#SBATCH --get-user-env":
			t.Logf("batchspawner %s: line %d %q -> %q (sbatch 26.05)", r.Version, i+1, up[i], ours[i])
		default:
			diff = append(diff, i)
		}
	}
	if len(diff) != 1 {
		t.Fatalf("%d lines differ from batchspawner %s's template (want only the command line and --get-user-env): %v", len(diff), r.Version, diff)
	}
	i := diff[0]
	t.Logf("batchspawner %s: line %d %q -> %q", r.Version, i+1, up[i], ours[i])
	if !strings.HasSuffix(up[i], "{{cmd}}") || !strings.Contains(ours[i], `"${FFL_LAUNCH:-ffl-launch}" run -- {{cmd}}`) {
		t.Errorf("line %d: upstream %q, ours %q: want the same command under ffl-launch run --", i+1, up[i], ours[i])
	}
	for name, script := range map[string]string{"srun": r.Srun, "exec": r.Exec} {
		want := map[string]string{
			"srun": `srun ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"} "${FFL_LAUNCH:-ffl-launch}" run -- batchspawner-singleuser /opt/venv/bin/jupyterhub-singleuser --debug`,
			"exec": `exec "${FFL_LAUNCH:-ffl-launch}" run -- batchspawner-singleuser /opt/venv/bin/jupyterhub-singleuser --debug`,
		}[name]
		if !strings.Contains(script, "\n"+want+"\n") {
			t.Errorf("rendered with req_srun=%q, the script lacks the line %q:\n%s", map[string]string{"srun": "srun", "exec": ""}[name], want, script)
		}
		if strings.Contains(script, "which ") {
			t.Errorf("rendered script looks a command up with which (fails under set -e for an absolute Spawner.cmd):\n%s", script)
		}
		if !strings.HasPrefix(script, "#!/bin/bash\n") {
			t.Errorf("rendered script does not start with its shebang (sbatch refuses it):\n%.80s", script)
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n on the script rendered for %s: %v\n%s\n%s", name, err, out, script)
		}
	}
}

// TestServerProxyConfig: contrib/sbatch/jupyter_server_config.py, loaded by traitlets as
// jupyter_server loads it, defines the Firefox entry with ffl-launch proxy on FFL_PROXY_PORT and
// an SVG icon that exists, and no entry at all outside an ffl job.
func TestServerProxyConfig(t *testing.T) {
	env := pythonEnv(t)
	dir := filepath.Join(moduleRoot(t), "contrib", "sbatch")
	script := `
import json, sys
from traitlets.config.loader import PyFileConfigLoader
c = PyFileConfigLoader("jupyter_server_config.py", path=sys.argv[1]).load_config()
print(json.dumps(c.ServerProxy.servers if "servers" in c.ServerProxy else None))
`
	var servers map[string]struct {
		Command       []string `json:"command"`
		Port          int      `json:"port"`
		Timeout       int      `json:"timeout"`
		AbsoluteURL   bool     `json:"absolute_url"`
		LauncherEntry struct {
			Title    string `json:"title"`
			IconPath string `json:"icon_path"`
		} `json:"launcher_entry"`
	}
	if err := json.Unmarshal(runPython(t, append(env, "FFL_PROXY_PORT=23456"), script, dir), &servers); err != nil {
		t.Fatal(err)
	}
	ff, ok := servers["firefox"]
	if !ok {
		t.Fatalf("with FFL_PROXY_PORT set, no firefox entry: %v", servers)
	}
	if strings.Join(ff.Command, " ") != "ffl-launch proxy --port {port}" {
		t.Errorf("command = %q, want ffl-launch proxy --port {port}", ff.Command)
	}
	if ff.Port != 23456 {
		t.Errorf("port = %d, want FFL_PROXY_PORT (23456)", ff.Port)
	}
	if ff.AbsoluteURL {
		t.Error("absolute_url = true: xpra serves its client at /, the prefix must be stripped")
	}
	if ff.LauncherEntry.Title != "Firefox" {
		t.Errorf("launcher title = %q", ff.LauncherEntry.Title)
	}
	icon, err := os.ReadFile(ff.LauncherEntry.IconPath)
	if err != nil || !strings.Contains(string(icon), "<svg") {
		t.Errorf("icon %s: not an SVG file (%v)", ff.LauncherEntry.IconPath, err)
	}
	if out := strings.TrimSpace(string(runPython(t, env, script, dir))); out != "null" {
		t.Errorf("without FFL_PROXY_PORT (not under ffl-launch run) the config defines %s, want no entry", out)
	}
	if got := runPython(t, append(env, "FFL_PROXY_PORT=23456", "FFL_LAUNCH=/opt/ffl/bin/ffl-launch"), script, dir); !strings.Contains(string(got), `"/opt/ffl/bin/ffl-launch"`) {
		t.Errorf("FFL_LAUNCH=/opt/ffl/bin/ffl-launch is not the entry's command: %s", got)
	}
}
