package doctor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ffl-hpc/ffl/pkg/prereq"
)

// Version is a Slurm release (24.11); the zero value is unknown. What slurmd does with a
// configuration changed between 22.05 and 26.05; the rules the doctor applies, each read from
// Slurm's source of the release named:
//
//   - 23.02: a relative Include name is resolved against slurm.conf's directory
//     (get_extra_conf_path); 22.05 resolves it against the including file's (_add_full_path).
//   - 23.11: slurmd resolves a relative Prolog=/Epilog= name against slurm.conf's directory
//     (slurmd.c, _read_config) and, configless, receives the script from the controller;
//     Include refuses a name with '*' (parse_config.c); cgroup.conf knows
//     SignalChildrenProcesses.
//   - 24.05: Prolog= and Epilog= may be given several times and all run, in order (S_P_ARRAY,
//     _load_script); before, the last line wins like any key. PrologFlags=RunInJob (implies
//     Contain and Alloc) runs them in the job's extern step.
//   - 25.05: PrologTimeout and EpilogTimeout, when set, replace PrologEpilogTimeout for their
//     hook (_validate_and_set_defaults; prep_script_slurmd.c uses epilog_timeout).
//   - 25.11: NamespaceType (namespace/linux reads namespace.yaml: private dirs, PID and user
//     namespaces; namespace/tmpfs reads job_container.conf); JobContainerType still works and
//     means the namespace/ plugin of the same name unless NamespaceType is set.
//
// Every Prolog/Epilog value is a glob(3) pattern in all these versions; each file it matches
// runs with the whole timeout (run_command's max_wait), one after the other.
type Version struct{ Major, Minor int }

// Known reports whether the version was found.
func (v Version) Known() bool { return v.Major > 0 }

// AtLeast reports whether v is major.minor or later; an unknown version gets the newest rules.
func (v Version) AtLeast(major, minor int) bool {
	if !v.Known() {
		return true
	}
	return v.Major > major || v.Major == major && v.Minor >= minor
}

func (v Version) String() string {
	if !v.Known() {
		return "unknown"
	}
	return fmt.Sprintf("%d.%02d", v.Major, v.Minor)
}

var versionRE = regexp.MustCompile(`\b(\d{2})\.(\d{1,2})(?:\.\d+)?\b`)

// ParseVersion finds a release in what `slurmd --version` prints ("slurm 24.11.5",
// "slurm-wlm 22.05.8") or in a flag's "25.05".
func ParseVersion(s string) (Version, bool) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Version{major, minor}, true
}

// slurmdProc is a running slurmd as /proc shows it: what it was started with decides which
// slurm.conf it reads (slurmd.c, _establish_configuration: -f, else $SLURM_CONF, else the
// default file when it exists, else configless; --conf-server forces configless).
type slurmdProc struct {
	pid  int
	exe  string // "" when /proc/PID/exe is not readable (not root)
	args []string
	// conf is $SLURM_CONF of its environment ("" when unset or not readable); cache is
	// $SLURMD_RECONF_CONF_CACHE, which a configless slurmd (23.11 and later) passes to itself
	// when it re-executes on reconfigure.
	conf, cache string
	// envHidden: its environment was not readable (the caller is not root), so conf and
	// cache are unknown.
	envHidden bool
}

// file is the -f argument, "" without one.
func (p slurmdProc) file() string {
	for i, a := range p.args {
		switch {
		case a == "-f" && i+1 < len(p.args):
			return p.args[i+1]
		case strings.HasPrefix(a, "-f") && len(a) > 2 && !strings.HasPrefix(a, "--"):
			return a[2:]
		}
	}
	return ""
}

func (p slurmdProc) confServer() bool {
	return slices.ContainsFunc(p.args, func(a string) bool { return a == "--conf-server" || strings.HasPrefix(a, "--conf-server=") })
}

// findSlurmd lists the slurmd processes of root in procRoot (/proc). A user can name a process
// "slurmd" but cannot make it root's.
func findSlurmd(procRoot string) []slurmdProc {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var out []slurmdProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "slurmd" || !rootOwned(filepath.Join(dir, "status")) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		p := slurmdProc{pid: pid, args: strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")}
		p.exe, _ = os.Readlink(filepath.Join(dir, "exe"))
		env, err := os.ReadFile(filepath.Join(dir, "environ"))
		p.envHidden = err != nil
		if err == nil {
			for _, kv := range bytes.Split(env, []byte{0}) {
				if v, ok := bytes.CutPrefix(kv, []byte("SLURM_CONF=")); ok {
					p.conf = string(v)
				}
				if v, ok := bytes.CutPrefix(kv, []byte("SLURMD_RECONF_CONF_CACHE=")); ok {
					p.cache = string(v)
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// rootOwned reads the real uid of a process from its status file.
func rootOwned(status string) bool {
	data, err := os.ReadFile(status)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			f := strings.Fields(rest)
			return len(f) > 0 && f[0] == "0"
		}
	}
	return false
}

// slurmdDirs is where the doctor looks for slurmd when no running one names its binary: only
// directories of root's, never the caller's PATH.
const slurmdDirs = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"

// detectVersion asks the running slurmd's binary (else the installed one) for its version.
func detectVersion(ctx context.Context, procs []slurmdProc) (Version, string, error) {
	bin := ""
	for _, p := range procs {
		if p.exe != "" && !strings.HasSuffix(p.exe, " (deleted)") {
			bin = p.exe
			break
		}
	}
	if bin == "" {
		b, err := prereq.LookPath("slurmd", slurmdDirs)
		if err != nil {
			return Version{}, "", fmt.Errorf("slurmd not found in %s", slurmdDirs)
		}
		bin = b
	}
	out, err := prereq.Version(ctx, bin)
	if err != nil {
		return Version{}, bin, err
	}
	v, ok := ParseVersion(out)
	if !ok {
		return Version{}, bin, fmt.Errorf("%s --version printed %q", bin, out)
	}
	return v, bin + ": " + out, nil
}
