package doctor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// slurmPaths is where the Slurm checks look; the zero value is the real system.
type slurmPaths struct {
	procRoot string
	// defaults are the compiled-in slurm.conf paths (Debian's, a source build's).
	defaults []string
	// configless is the link configless slurmd keeps to its cache (_handle_slash_run).
	configless string
	getenv     func(string) string
	read       confReader
	// detect asks slurmd for its version.
	detect func(context.Context, []slurmdProc) (Version, string, error)
	// rootUID is the owner a hook must have (0; tests run as any user).
	rootUID uint32
}

func (p slurmPaths) withDefaults() slurmPaths {
	if p.procRoot == "" {
		p.procRoot = "/proc"
	}
	if p.defaults == nil {
		p.defaults = []string{"/etc/slurm/slurm.conf", "/usr/local/etc/slurm.conf"}
	}
	if p.configless == "" {
		p.configless = "/run/slurm/conf/slurm.conf"
	}
	if p.getenv == nil {
		p.getenv = os.Getenv
	}
	if p.read == nil {
		p.read = readConfFile
	}
	if p.detect == nil {
		p.detect = detectVersion
	}
	return p
}

// The programs the doctor looks for among the hooks, and ffl-prolog's own bound (its --timeout
// default) plus the watchdog's second.
const (
	epilogProgram = "ffl-epilog"
	prologProgram = "ffl-prolog"
	prologBound   = 11 * time.Second
)

// admin is a check about the node's Slurm setup: a failure for root's doctor, a warning for a
// user's (who can only tell an admin).
func admin(o Options, st Status) Status {
	if st == Fail && !o.Node {
		return Warn
	}
	return st
}

// locateSlurmConf chooses the slurm.conf slurmd reads, and says why.
func locateSlurmConf(o Options, procs []slurmdProc) (path, why string, notes []Finding) {
	p := o.slurm
	if o.SlurmConf != "" {
		return o.SlurmConf, "--slurm-conf", nil
	}
	exists := func(f string) bool { _, err := os.Stat(f); return err == nil }
	var chosen []string
	var whys []string
	for _, s := range procs {
		var c, w string
		switch {
		case s.cache != "":
			c, w = filepath.Join(s.cache, "slurm.conf"), fmt.Sprintf("slurmd (pid %d) runs configless: its cache", s.pid)
		case s.confServer():
			c, w = p.configless, fmt.Sprintf("slurmd (pid %d) runs configless (--conf-server): its cache", s.pid)
		case s.file() != "":
			c, w = s.file(), fmt.Sprintf("slurmd (pid %d) -f", s.pid)
		case s.conf != "":
			c, w = s.conf, fmt.Sprintf("slurmd (pid %d) $SLURM_CONF", s.pid)
		default:
			c, w = p.configless, fmt.Sprintf("slurmd (pid %d) runs configless: its cache", s.pid)
			for _, d := range p.defaults[:1] {
				if exists(d) {
					c, w = d, fmt.Sprintf("slurmd (pid %d), default file", s.pid)
				}
			}
			if s.envHidden {
				// Inside a job, slurmd gives the job its own file as $SLURM_CONF.
				if env := p.getenv("SLURM_CONF"); env != "" {
					c, w = env, fmt.Sprintf("slurmd (pid %d); $SLURM_CONF, which slurmd sets in a job to its own file", s.pid)
				} else {
					w += "; its environment (which may set SLURM_CONF) is root's only: run ffl-epilog doctor as root to be sure"
				}
			}
		}
		if !slices.Contains(chosen, c) {
			chosen, whys = append(chosen, c), append(whys, w)
		}
	}
	if len(chosen) > 1 {
		notes = append(notes, Finding{Warn, "several slurmd read different files: " + strings.Join(chosen, ", ") + "; the doctor reads the first",
			"pass --slurm-conf for the others"})
	}
	if len(chosen) > 0 {
		return chosen[0], whys[0], notes
	}
	if env := p.getenv("SLURM_CONF"); env != "" {
		return env, "$SLURM_CONF", nil
	}
	for _, d := range p.defaults {
		if exists(d) {
			return d, "default file", nil
		}
	}
	if exists(p.configless) {
		return p.configless, "configless slurmd's cache", nil
	}
	return p.defaults[0], "default file", nil
}

// checkSlurm reads the configuration slurmd runs and compares it with ffl's settings.
func checkSlurm(ctx context.Context, r *Report, o Options) {
	o.slurm = o.slurm.withDefaults()
	procs := findSlurmd(o.slurm.procRoot)
	var ver Version
	if o.SlurmVersion != "" {
		v, ok := ParseVersion(o.SlurmVersion)
		if !ok {
			r.Add("slurm version", Fail, fmt.Sprintf("--slurm-version %q is not a release", o.SlurmVersion), "e.g. --slurm-version 24.11")
		} else {
			ver = v
			r.Add("slurm version", Pass, ver.String()+" (--slurm-version)", "")
		}
	} else if v, from, err := o.slurm.detect(ctx, procs); err != nil {
		r.Add("slurm version", Warn, err.Error()+": the newest rules (26.05) are assumed", "pass --slurm-version (e.g. 24.11)")
	} else {
		ver = v
		r.Add("slurm version", Pass, from, "")
	}

	path, why, notes := locateSlurmConf(o, procs)
	for _, n := range notes {
		r.Add("slurm.conf", admin(o, n.Status), n.Detail, n.Fix)
	}
	conf, err := readSlurmConf(path, ver, o.slurm.read)
	if err != nil {
		r.Add("slurm.conf", admin(o, Fail), fmt.Sprintf("%s (%s): %v", path, why, err), "pass --slurm-conf FILE")
		return
	}
	detail := path + " (" + why + ")"
	if n := len(conf.Files) - 1; n > 0 {
		detail += fmt.Sprintf(", with %d Include file(s)", n)
	}
	r.Add("slurm.conf", Pass, detail, "")
	for _, f := range conf.Findings {
		r.Add("slurm.conf files", admin(o, f.Status), f.Detail, f.Fix)
	}

	killWait := 30 * time.Second // DEFAULT_KILL_WAIT
	if v, ok, err := conf.Seconds("KillWait"); err != nil {
		r.Add("KillWait", admin(o, Fail), err.Error()+": slurmd refuses to start", "KillWait=30")
	} else if ok {
		killWait = v
	}
	effective := max(killWait, 5*time.Second)
	cleanup := o.Config.CleanupTimeout.Duration
	if cleanup+time.Second >= effective {
		r.Add("KillWait vs cleanup", Fail, fmt.Sprintf("cleanup_timeout %s, Slurm SIGKILLs max(KillWait,5) = %s after SIGTERM", cleanup, effective),
			"lower cleanup_timeout (FIREFOX_LAUNCHER_CLEANUP_TIMEOUT) or raise KillWait in slurm.conf")
	} else {
		r.Add("KillWait vs cleanup", Pass, fmt.Sprintf("cleanup_timeout %s < %s", cleanup, effective), "")
	}
	switch pt := conf.Get("ProctrackType"); {
	case pt == "" || strings.Contains(pt, "cgroup"):
		r.Add("proctrack", Pass, orDefault(pt, "proctrack/cgroup (default)"), "")
	default:
		r.Add("proctrack", Warn, pt+": daemonized session processes escape the job", "ProctrackType=proctrack/cgroup; ffl-epilog still ends them")
	}

	epilog := evalHook(conf, "Epilog", epilogProgram, o.slurm.rootUID)
	prolog := evalHook(conf, "Prolog", prologProgram, o.slurm.rootUID)
	for _, f := range epilog.findings {
		r.Add("Epilog", admin(o, f.Status), f.Detail, f.Fix)
	}
	switch {
	case epilog.ffl != "":
		r.Add("Epilog", Pass, epilog.ffl, "")
	default:
		r.Add("Epilog", admin(o, Fail), epilog.describe()+": nothing ends what a SIGKILLed launcher leaves",
			"Epilog=/usr/local/sbin/ffl-epilog (etc/slurm/slurm.conf.snippet; since 24.05 as a line of its own beside the site's Epilog)")
	}
	for _, f := range prolog.findings {
		r.Add("Prolog", admin(o, f.Status), f.Detail, f.Fix)
	}
	flags := prologFlags(conf.Get("PrologFlags"))
	if prolog.ffl != "" {
		r.Add("Prolog", Pass, prolog.ffl, "")
		if !flags["alloc"] {
			r.Add("PrologFlags", Warn, orDefault(conf.Get("PrologFlags"), "not set")+": without Alloc the Prolog runs only when a step starts (salloc shells and the job's other nodes get no runtime dir)",
				"PrologFlags=Alloc (or Contain)")
		} else {
			r.Add("PrologFlags", Pass, conf.Get("PrologFlags"), "")
		}
	} else {
		r.Add("Prolog", Warn, prolog.describe()+": sessions fall back to temp_dir", "Prolog=/usr/local/sbin/ffl-prolog (optional)")
	}

	if o.Node {
		et := o.Config.Epilog.Timeout.Duration
		// One PrologEpilogTimeout has to fit both hooks.
		shared := int(max(et+time.Second, prologBound).Seconds()) + 20
		hookBound(r, o, conf, "Epilog bound", "EpilogTimeout", "epilog.timeout "+et.String(), et+time.Second, shared, "lower epilog.timeout in /etc/ffl/ffl.toml")
		if prolog.ffl != "" {
			hookBound(r, o, conf, "Prolog bound", "PrologTimeout", "ffl-prolog's "+(prologBound-time.Second).String(), prologBound, shared, "")
		}
	}
	checkModes(r, o, conf, flags, prolog.ffl != "")
}

// hookBound compares ffl's bound for a hook with slurmd's timeout for it: since 25.05
// PrologTimeout/EpilogTimeout when set, else PrologEpilogTimeout; each file a hook's pattern
// matches gets the whole timeout.
func hookBound(r *Report, o Options, conf *SlurmConf, name, perHook, ours string, bound time.Duration, shared int, fix string) {
	key := "PrologEpilogTimeout"
	if conf.version.AtLeast(25, 5) {
		if _, ok := conf.Last(perHook); ok {
			key = perHook
		}
	} else if s, ok := conf.Last(perHook); ok {
		r.Add(name, admin(o, Fail), fmt.Sprintf("%s (%s) is unknown to Slurm %s: slurmd refuses to start", perHook, s.Where(), conf.version), "remove it; set PrologEpilogTimeout")
	}
	suggest := fmt.Sprintf("%s=%d", key, shared)
	if key == perHook {
		suggest = fmt.Sprintf("%s=%d", key, int(bound.Seconds())+20)
	}
	t, ok, err := conf.Seconds(key)
	switch {
	case err != nil:
		r.Add(name, admin(o, Fail), err.Error()+": slurmd refuses to start", suggest)
	case !ok:
		r.Add(name, Warn, key+" not set: slurmd waits forever for the hook (a hung NFS home keeps the node COMPLETING)", suggest)
	case bound >= t:
		if fix == "" {
			fix = suggest
		}
		r.Add(name, admin(o, Fail), fmt.Sprintf("%s + 1 s >= %s %s: an overrun drains the node", ours, key, t), fix)
	default:
		r.Add(name, Pass, fmt.Sprintf("%s + 1 s < %s %s", ours, key, t), "")
	}
}

// prologFlags expands PrologFlags the way prolog_str2flags does: Contain implies Alloc,
// RunInJob (24.05) Contain and Alloc; NoHold and ForceRequeueOnFail imply Alloc.
func prologFlags(v string) map[string]bool {
	f := map[string]bool{}
	for _, t := range strings.Split(v, ",") {
		switch t = strings.ToLower(strings.TrimSpace(t)); t {
		case "contain":
			f["alloc"], f["contain"] = true, true
		case "runinjob":
			f["alloc"], f["contain"] = true, true
		case "nohold", "forcerequeueonfail":
			f["alloc"] = true
		}
		if t != "" {
			f[t] = true
		}
	}
	return f
}

// hookEval is what slurmd runs for Prolog= or Epilog=.
type hookEval struct {
	key      string
	lines    []Setting // the lines that run
	ffl      string    // how ffl's program is among them ("" = it is not)
	findings []Finding
}

func (h hookEval) describe() string {
	if len(h.lines) == 0 {
		return h.key + " not set"
	}
	var v []string
	for _, s := range h.lines {
		v = append(v, s.Key+"="+s.Value+" ("+s.Where()+")")
	}
	return strings.Join(v, ", ")
}

// evalHook lists what slurmd runs for key and whether prog is among it.
func evalHook(c *SlurmConf, key, prog string, rootUID uint32) hookEval {
	h := hookEval{key: key}
	all := c.All(key)
	h.lines = all
	if len(all) > 1 && !c.version.AtLeast(24, 5) {
		h.lines = all[len(all)-1:]
		for _, s := range all[:len(all)-1] {
			if strings.Contains(s.Value, prog) {
				h.findings = append(h.findings, Finding{Fail, fmt.Sprintf("%s=%s (%s) is ignored: Slurm %s runs only the last %s= line (%s); several lines run only since 24.05",
					key, s.Value, s.Where(), c.version, key, h.lines[0].Where()), "one " + key + "= line: call " + prog + " from the site's script, or upgrade"})
			}
		}
	}
	for _, s := range h.lines {
		pattern := s.Value
		if pattern == "" {
			continue
		}
		if !filepath.IsAbs(pattern) {
			if !c.version.AtLeast(23, 11) {
				h.findings = append(h.findings, Finding{Fail, fmt.Sprintf("%s=%s (%s): Slurm %s runs a relative name from slurmd's working directory (resolved against the config dir only since 23.11)", key, s.Value, s.Where(), c.version),
					key + "=/absolute/path"})
				continue
			}
			pattern = filepath.Join(c.Dir, pattern)
		}
		// slurmd treats every value as a glob(3) pattern and runs each file it matches.
		matches, err := filepath.Glob(pattern)
		if err != nil || len(matches) == 0 {
			h.findings = append(h.findings, Finding{Fail, fmt.Sprintf("%s=%s (%s) matches no file: slurmd fails every %s and drains the node", key, s.Value, s.Where(), strings.ToLower(key)),
				"install " + pattern + " or fix the line"})
			continue
		}
		for _, m := range matches {
			if f := scriptOwner(m, rootUID); f != nil {
				h.findings = append(h.findings, Finding{Fail, key + ": " + f.Error(), "chown root: " + m + "; chmod 755 " + m})
			}
			if how, ok := isProgram(m, prog); ok && h.ffl == "" {
				h.ffl = fmt.Sprintf("%s=%s (%s)%s", s.Key, s.Value, s.Where(), how)
			}
		}
	}
	return h
}

// scriptOwner: a hook runs as root; it must be an executable regular file only root can change.
func scriptOwner(path string, rootUID uint32) error {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return fmt.Errorf("%s is not a regular file: slurmd cannot run it", path)
	case st.Mode&0o111 == 0:
		return fmt.Errorf("%s is not executable: slurmd fails the hook", path)
	case st.Uid != rootUID || st.Mode&0o022 != 0:
		return fmt.Errorf("%s (owner uid %d, mode %#o) can be changed by a non-root user, and runs as root", path, st.Uid, st.Mode&0o7777)
	}
	return nil
}

// isProgram says how path is prog: by name, through a symlink, or a script that names it.
func isProgram(path, prog string) (string, bool) {
	if filepath.Base(path) == prog {
		return "", true
	}
	if t, err := filepath.EvalSymlinks(path); err == nil && filepath.Base(t) == prog {
		return ": " + path + " -> " + t, true
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	head := make([]byte, 64<<10)
	n, _ := io.ReadFull(f, head)
	if bytes.HasPrefix(head[:n], []byte("#!")) && bytes.Contains(head[:n], []byte(prog)) {
		return ": " + path + " is a script naming " + prog, true
	}
	return "", false
}

// checkModes says what each per-job isolation mode of the node needs from the admin. What ffl
// does under a mode no test of ffl runs is reported as "untested" (a warning), never as working.
func checkModes(r *Report, o Options, conf *SlurmConf, flags map[string]bool, haveProlog bool) {
	read := o.slurm.read
	iso := readIsolation(conf, read)
	// tested: the setup ffl's real-Slurm suite runs the plugin in (Contain, ffl-prolog,
	// runtime_dir outside the private dirs). RunInJob beside it is judged on its own line.
	tested := false
	switch {
	case iso.plugin == "":
		r.Add("per-job namespace", Pass, "none (JobContainerType/NamespaceType not set)", "")
	case iso.err != nil:
		r.Add("per-job namespace", admin(o, Fail), fmt.Sprintf("%s=%s (%s): %v", iso.key.Key, iso.plugin, iso.key.Where(), iso.err),
			"install "+iso.file+" beside slurm.conf (configless: on the controller)")
	default:
		// read_config.c: fatal("PrologFlags=Contain is required for use with ...").
		if !flags["contain"] {
			r.Add("PrologFlags", admin(o, Fail), fmt.Sprintf("%s=%s (%s) without PrologFlags=Contain: slurmd refuses to start (so this is not what it runs)", iso.key.Key, iso.plugin, iso.key.Where()),
				"PrologFlags=Contain")
		}
		private := strings.Join(iso.dirs, ",")
		runtimeHidden := false
		for _, d := range iso.dirs {
			if within(o.Config.RuntimeDir, d) {
				runtimeHidden = true
				r.Add("runtime dir vs namespace", admin(o, Fail), fmt.Sprintf("runtime_dir %s is inside %s, which %s makes private to each job: the Prolog's and Epilog's %s is not the job's",
					o.Config.RuntimeDir, d, iso.plugin, o.Config.RuntimeDir), "runtime_dir = \"/run/ffl\" in /etc/ffl/ffl.toml (a dir not in "+private+")")
			}
		}
		// job_container/tmpfs and namespace/linux are what ffl's real-Slurm suite runs
		// (scenarios 12 and 15 of tests/slurm): with the Prolog making the job's dir in
		// runtime_dir, outside the private dirs, the Epilog finds every session there, and Slurm
		// removes the private /tmp, with the X server's lock and socket, itself.
		tested = flags["contain"] && haveProlog && !runtimeHidden
		if (strings.EqualFold(iso.plugin, "job_container/tmpfs") || strings.EqualFold(iso.plugin, "namespace/linux")) && tested {
			r.Add("per-job namespace", Pass, fmt.Sprintf("%s (%s, %s): each job gets its own %s; tested with ffl: X sockets and locks stay in the job's private /tmp (Slurm removes it), "+
				"sessions keep their state in runtime_dir %s, where the Prolog and Epilog see it; keep runtime_dir out of %s", iso.plugin, iso.key.Where(), iso.file, private, o.Config.RuntimeDir, private), "")
			break
		}
		detail := fmt.Sprintf("%s (%s, %s): each job gets its own %s. ffl under it is untested: a job's X sockets (/tmp/.X11-unix) and X locks live in its private /tmp, "+
			"which the Prolog (run outside the job) cannot prepare and the Epilog cannot see (Slurm removes the private dirs with the job)", iso.plugin, iso.key.Where(), iso.file, private)
		fix := "configure ffl-prolog (PrologFlags=Contain) with runtime_dir outside " + private + " (default /run/ffl), so each session's state and sockets are where the Epilog finds them"
		for _, d := range iso.dirs {
			if within(o.Config.TempDir, d) && !haveProlog {
				detail += fmt.Sprintf("; without ffl-prolog sessions keep their files in %s/ffl-<uid>, inside the job's private %s, out of the Epilog's sight", o.Config.TempDir, d)
				fix = "Prolog=/usr/local/sbin/ffl-prolog with runtime_dir outside " + private + " (default /run/ffl)"
				break
			}
		}
		r.Add("per-job namespace", Warn, detail, fix)
	}
	// tests/slurm scenarios 15 and 16 (Slurm 26.05, namespace/linux, CLONE_NEWPID, without
	// and with RunInJob): two users' jobs, the same user's second job beside the first,
	// scancel and a SIGKILLed launcher; ffl-launch records the PID namespace of its PIDs and
	// the hooks find each process through it.
	pidTested := tested && strings.EqualFold(iso.plugin, "namespace/linux")
	if iso.pidNS != "" && pidTested {
		r.Add("PID namespace", Pass, fmt.Sprintf("%s asks for CLONE_NEWPID (%s): tested with ffl: ffl-launch records the PID namespace of the PIDs it writes, and the Prolog and Epilog, in the node's namespace, "+
			"find each recorded process through it (its PID there, start time and uid), never by the number alone; ffl-launch, ffl-prolog and ffl-epilog must be of the same ffl", iso.file, iso.pidNS), "")
	} else if iso.pidNS != "" {
		r.Add("PID namespace", Warn, fmt.Sprintf("%s asks for CLONE_NEWPID (%s): the PIDs in ffl's state files are the job's namespace's, not the ones the hooks see. "+
			"ffl is tested with it only under namespace/linux beside ffl-prolog, PrologFlags=Contain and runtime_dir outside the private dirs", iso.file, iso.pidNS),
			"Prolog=/usr/local/sbin/ffl-prolog, PrologFlags=Contain, runtime_dir outside "+strings.Join(iso.dirs, ",")+" (default /run/ffl)")
	}
	// tests/slurm scenario 18: CLONE_NEWUSER beside CLONE_NEWPID, with Slurm's own mapping.
	if iso.userNS != "" && pidTested && !iso.userNSScript {
		r.Add("user namespace", Pass, fmt.Sprintf("%s asks for CLONE_NEWUSER (%s) without a user_ns_script: Slurm maps every uid and gid to itself, so owners and uids are the node's; tested with ffl", iso.file, iso.userNS), "")
	} else if iso.userNS != "" {
		r.Add("user namespace", Warn, fmt.Sprintf("%s asks for CLONE_NEWUSER (%s): inside the job uids and file owners may map differently from the node's, which ffl checks at every level. Untested with ffl "+
			"(it is tested with Slurm's own mapping, no user_ns_script, in the setup of the PID namespace's line)", iso.file, iso.userNS),
			"remove CLONE_NEWUSER from clone_ns_flags in "+iso.file+", or its user_ns_script")
	}

	checkSignalChildren(r, o, conf)

	if flags["runinjob"] {
		s, _ := conf.Last("PrologFlags")
		// tests/slurm scenario 14 (on 26.05, without a job container): scancel and the time
		// limit leave nothing; 17 (24.11) the scancel. With namespace/linux (scenario 16, with
		// CLONE_NEWPID; the extern slurmstepd runs the hooks without joining the job's
		// namespaces) scancel and a SIGKILLed launcher leave nothing. With job_container/tmpfs
		// no test of ffl covers it.
		st := Pass
		detail := fmt.Sprintf("PrologFlags=%s (%s): the Prolog and Epilog run inside the job's extern step (slurmstepd); tested with ffl: scancel and the time limit leave nothing", s.Value, s.Where())
		switch {
		case !conf.version.AtLeast(24, 5):
			st, detail = admin(o, Fail), fmt.Sprintf("PrologFlags=%s (%s): RunInJob is unknown to Slurm %s", s.Value, s.Where(), conf.version)
		case strings.EqualFold(iso.plugin, "namespace/linux") && tested:
			detail = fmt.Sprintf("PrologFlags=%s (%s) with %s: the Prolog and Epilog run from the job's extern step (its cgroup, not its namespaces); tested with ffl (with CLONE_NEWPID): scancel and a SIGKILLed launcher leave nothing", s.Value, s.Where(), iso.plugin)
		case iso.plugin != "":
			st, detail = Warn, fmt.Sprintf("PrologFlags=%s (%s) with %s: the Prolog and Epilog run inside the job's extern step and its private %s; ffl is tested with each of them alone, not with both", s.Value, s.Where(), iso.plugin, strings.Join(iso.dirs, ","))
		}
		if st != Fail && !conf.version.AtLeast(26, 5) {
			// pkg/hook, NotRoot: what scenario 17 showed twice on 24.11; 26.05 has SchedMD's fix.
			st, detail = Warn, detail+"; but before Slurm 26.05 the job's extern slurmstepd can start the Epilog with the job user's credentials "+
				"(a race with its X11 shutdown, SchedMD ticket 24439): ffl-epilog then does nothing and says so, and the job's sessions stay on disk until "+
				"ffl-prolog at the user's next job here, `ffl-epilog sweep` or `ffl-epilog --job ID --user NAME` (docs/EPILOG.md, \"Not root\")"
		}
		r.Add("PrologFlags=RunInJob", st, detail, "PrologFlags=Alloc or Contain (without RunInJob), which ffl is tested with, or Slurm 26.05; else run `ffl-epilog sweep` from a timer")
	}
}

// checkSignalChildren reports cgroup.conf's SignalChildrenProcesses (Slurm 23.11+), which sends
// the job's SIGTERM to xpra and Firefox at the same moment as to ffl-launch.
func checkSignalChildren(r *Report, o Options, conf *SlurmConf) {
	cg, err := readCgroupConf(conf, o.slurm.read)
	switch {
	case err != nil:
		r.Add("cgroup.conf", Warn, err.Error(), "make "+filepath.Join(conf.Dir, cgroupConf)+" a readable file owned by root")
	case cg == nil:
		r.Add("SignalChildrenProcesses", Pass, "no cgroup.conf: no (Slurm's default)", "")
	default:
		for _, f := range cg.Findings {
			r.Add("cgroup.conf", admin(o, f.Status), f.Detail, f.Fix)
		}
		s, set := cg.Last("SignalChildrenProcesses")
		on, _ := cg.Bool("SignalChildrenProcesses")
		switch {
		case set && !conf.version.AtLeast(23, 11):
			r.Add("SignalChildrenProcesses", admin(o, Fail), fmt.Sprintf("%s (%s) is unknown to Slurm %s", s.Key, s.Where(), conf.version), "remove the line")
		case on:
			// tests/slurm scenario 13 (on 24.11 and 26.05): scancel and the time limit end
			// both sessions through the launcher's grace path, and nothing is left.
			r.Add("SignalChildrenProcesses", Pass, fmt.Sprintf("yes (%s): scancel and the time limit send SIGTERM to xpra and Firefox at the same moment as to ffl-launch; tested with ffl: its grace path still runs and nothing is left", s.Where()), "")
		default:
			r.Add("SignalChildrenProcesses", Pass, orDefault(s.Value, "no (default)"), "")
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
