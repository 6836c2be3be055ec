package slurm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestTemplateStepCPUs: contrib/sbatch/slurmspawner.sh.j2, rendered as batchspawner renders it
// with req_srun = "srun" and req_nprocs = 2, gives its srun step (ffl-launch and the server
// under it) the job's 2 CPUs. The cluster confines and binds each step's tasks to their CPUs
// as sites do (TaskPlugin=task/cgroup,task/affinity, ConstrainCores=yes, TaskPluginParam=Cores),
// and the "server" is a command
// that reports, from inside the step, how many CPUs it may run on (nproc, Cpus_allowed_list).
// The same script with batchspawner's own line (srun without --cpus-per-task) is the control:
// srun 22.05 and 23.02 ignore SLURM_CPUS_PER_TASK, so there its task is bound to one core (the
// step itself still spans the job's CPUs: only a binding to cores shows it), which shows
// that the test sees the difference on the versions that have it.
func TestTemplateStepCPUs(t *testing.T) {
	c := cluster(t)
	version, err := c.slurm(context.Background(), "scontrol", "--version")
	if err != nil {
		t.Fatal(err)
	}
	major, minor, err := slurmVersion(version)
	if err != nil {
		t.Fatal(err)
	}
	// The suite's own extra slurm.conf lines (its partition) stay; binding tasks to cores is
	// added, as sites configure it.
	var extra string
	for _, k := range c.knobs {
		if v, ok := strings.CutPrefix(k, "SLURM_CONF_EXTRA="); ok {
			extra = v
		}
	}
	if err := c.harness("reconfigure.sh", "SLURM_TASK_PLUGIN=task/cgroup,task/affinity", "SLURM_CGROUP_CONF_EXTRA=ConstrainCores=yes",
		"SLURM_CONF_EXTRA="+extra+"\nTaskPluginParam=Cores"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.harness("reconfigure.sh", "SLURM_TASK_PLUGIN=task/none", "SLURM_CGROUP_CONF_EXTRA=", "SLURM_CONF_EXTRA="+extra); err != nil {
			t.Errorf("switching back to task/none: %v", err)
		}
	}()
	tmpl, err := os.ReadFile(filepath.Join(c.root, "contrib", "sbatch", "slurmspawner.sh.j2"))
	if err != nil {
		t.Fatal(err)
	}
	u := c.users["ffluser1"]
	vars := map[string]string{
		"homedir": c.work[u.Name], "keepvars": "PATH,LANG,HOME,SLURM_CONF,FFL_LAUNCH,FFL_CONFIG", "runtime": "0:10:00",
		"nprocs": "2", "srun": "srun", "prologue": "", "epilogue": "",
		// the "server": what the step may run on, seen from inside it, under ffl-launch run --
		"cmd": `/bin/sh -c 'echo "step-cpus nproc=$(nproc) allowed=$(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/self/status) job_cpus=$SLURM_CPUS_ON_NODE"'`,
	}
	ours, err := renderJinja(string(tmpl), vars)
	if err != nil {
		t.Fatal(err)
	}
	const flag = ` ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"}`
	if !strings.Contains(ours, "\nsrun"+flag+` "${FFL_LAUNCH:-ffl-launch}" run -- `) {
		t.Fatalf("the rendered template has no srun line passing the job's CPUs:\n%s", ours)
	}
	upstream := strings.Replace(ours, flag, "", 1)

	run := func(name, script string) (nproc, allowed int) {
		path := filepath.Join(c.dir, "spawner-"+name+".sh")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		j := c.submit(t, submitOpts{user: u, script: path, args: []string{}})
		j.waitGone(t, goneLimit)
		out := filepath.Join(c.work[u.Name], "jupyterhub_slurmspawner_"+j.ID+".log")
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("%s: job %s: %v", name, j.ID, err)
		}
		m := regexp.MustCompile(`step-cpus nproc=(\d+) allowed=(\S+) job_cpus=(\d+)`).FindStringSubmatch(string(b))
		if m == nil {
			st, code := j.state()
			t.Fatalf("%s: job %s (%s, exit %s) printed no step-cpus line:\n%s", name, j.ID, st, code, b)
		}
		nproc, _ = strconv.Atoi(m[1])
		allowed, err = cpuListLen(m[2])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Slurm %d.%02d, %s: job %s has %s CPUs on the node; its srun step runs on %d (nproc), Cpus_allowed_list %s",
			major, minor, name, j.ID, m[3], nproc, m[2])
		if m[3] != "2" {
			t.Fatalf("%s: job %s was given %s CPUs, want 2 (--cpus-per-task=2)", name, j.ID, m[3])
		}
		return nproc, allowed
	}
	if n, a := run("template", ours); n != 2 || a != 2 {
		t.Errorf("the template's srun step may run on %d CPUs (nproc; %d in Cpus_allowed_list), want the job's 2", n, a)
	}
	n, a := run("without-cpus-per-task", upstream)
	switch {
	case major*100+minor < 2311 && (n != 1 || a != 1):
		t.Errorf("control: srun %d.%02d without --cpus-per-task gave the step %d CPUs (%d allowed); this version is known to give 1, so the cluster does not confine steps and the test proves nothing", major, minor, n, a)
	case major*100+minor >= 2311:
		t.Logf("control: srun %d.%02d reads SLURM_CPUS_PER_TASK again: the step without the option got %d CPUs", major, minor, n)
	}
}

// slurmVersion reads "slurm 22.05.8" (scontrol --version; Debian's may append a suffix).
func slurmVersion(s string) (major, minor int, err error) {
	m := regexp.MustCompile(`(\d+)\.(\d+)`).FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("no Slurm version in %q", s)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, nil
}

// cpuListLen counts the CPUs of a kernel CPU list ("0-1,3").
func cpuListLen(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("CPU list %q: %w", list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("CPU list %q: bad range %q", list, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// renderJinja renders the subset of Jinja that batchspawner's templates use: {{name}} and
// {% if name %}...{% else %}...{% endif %}, not nested, a name being true when its value is not
// empty; a name missing from vars renders empty, as Jinja's default Undefined does. Nothing
// else is accepted, so a template that grows another construct fails here instead of being
// rendered wrongly. (tests/jupyter renders it with batchspawner's own Jinja.)
func renderJinja(tmpl string, vars map[string]string) (string, error) {
	tag := regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}|\{%\s*(if\s+(\w+)|else|endif)\s*%\}`)
	var b strings.Builder
	in, cond, emit := false, false, true
	last := 0
	text := func(s string) error {
		if strings.Contains(s, "{%") || strings.Contains(s, "{{") {
			return fmt.Errorf("template: a construct this renderer does not know in %q", s)
		}
		if emit {
			b.WriteString(s)
		}
		return nil
	}
	for _, m := range tag.FindAllStringSubmatchIndex(tmpl, -1) {
		if err := text(tmpl[last:m[0]]); err != nil {
			return "", err
		}
		last = m[1]
		switch {
		case m[2] >= 0: // {{name}}
			if emit {
				b.WriteString(vars[tmpl[m[2]:m[3]]])
			}
		case m[6] >= 0: // if
			if in {
				return "", fmt.Errorf("template: nested {%% if %%} at byte %d", m[0])
			}
			in, cond = true, vars[tmpl[m[6]:m[7]]] != ""
			emit = cond
		case tmpl[m[4]:m[5]] == "else":
			if !in {
				return "", fmt.Errorf("template: {%% else %%} outside an if at byte %d", m[0])
			}
			emit = !cond
		default: // endif
			if !in {
				return "", fmt.Errorf("template: {%% endif %%} outside an if at byte %d", m[0])
			}
			in, emit = false, true
		}
	}
	if in {
		return "", fmt.Errorf("template: {%% if %%} without {%% endif %%}")
	}
	if err := text(tmpl[last:]); err != nil {
		return "", err
	}
	return b.String(), nil
}

func TestRenderJinja(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl, want string
		vars             map[string]string
		bad              bool
	}{
		{name: "var", tmpl: "a {{x}} {{ y }}b", vars: map[string]string{"x": "1", "y": "2"}, want: "a 1 2b"},
		{name: "missing var is empty", tmpl: "a{{x}}b", want: "ab"},
		{name: "if true", tmpl: "{% if x %}X={{x}}\n{% endif %}z", vars: map[string]string{"x": "1"}, want: "X=1\nz"},
		{name: "if empty", tmpl: "{% if x  %}X={{x}}\n{% endif %}z", vars: map[string]string{"x": ""}, want: "z"},
		{name: "else", tmpl: "{% if s %}{{s}} {% else %}exec {% endif %}cmd", want: "exec cmd"},
		{name: "then", tmpl: "{% if s %}{{s}} {% else %}exec {% endif %}cmd", vars: map[string]string{"s": "srun"}, want: "srun cmd"},
		{name: "nested", tmpl: "{% if a %}{% if b %}{% endif %}{% endif %}", bad: true},
		{name: "unclosed", tmpl: "{% if a %}x", bad: true},
		{name: "unknown", tmpl: "{% for a in b %}", bad: true},
		{name: "unknown between", tmpl: "{{x}}{% for a in b %}{{x}}", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderJinja(tc.tmpl, tc.vars)
			if tc.bad {
				if err == nil {
					t.Fatalf("rendered %q as %q, want an error", tc.tmpl, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("renderJinja(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
			}
		})
	}
	for list, want := range map[string]int{"0": 1, "0-1": 2, "0-1,3": 3, "2,4-7": 5} {
		if n, err := cpuListLen(list); err != nil || n != want {
			t.Errorf("cpuListLen(%q) = %d, %v; want %d", list, n, err, want)
		}
	}
}
