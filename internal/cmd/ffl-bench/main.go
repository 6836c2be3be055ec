// Command ffl-bench measures ffl's performance figures and prints them as one markdown table,
// each with its target and pass/miss: the launcher's grace path, its overhead on time-to-ready
// and its memory (run as a non-root user: root's processes are refused by design), and the
// Epilog's cost for jobs with and without leftovers and the sweep's removal speed (as root), and
// the user's first visit to Firefox through JupyterHub against later ones (tests/jupyter's bench
// mode, run with go test from the module's root).
//
// It is a measurement, not a test: it asserts nothing about time. Every figure is repeated and
// reported as a median (and p90 with enough runs), next to a reference measured in the same run
// on the same machine (the children's own exit time, fakexpra alone, /bin/true, the seed
// system's shell cleanup, `find -exec rm`, two parallel `rm -rf`; for a real session, Firefox
// alone on Xvfb and the peer configuration of xpra's and Firefox's own defaults), so that a
// noisy machine moves both sides. A job that leaves processes or directories after its SIGTERM
// (or its Epilog) is no figure but a failure: the table lists it and the exit status is 1. `make bench` runs it through scripts/bench.sh, which builds the helpers
// (fakexpra, faketree) into a directory the bench user can execute from.
//
//	ffl-bench -bin DIR -epilog bin/ffl-epilog -out bench-results.md [-scale 0.3] [-only launch,ready,session,node,revisit,jupyter,epilog,attack,sweep]
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// options are the command line.
type options struct {
	scratch  string
	bin      string
	epilog   string
	out      string
	userName string
	node     string
	sweepDir string
	scale    float64
	only     string
	version  string
}

// account is the non-root user the launcher runs as and whose leftovers the Epilog removes.
type account struct {
	name     string
	uid, gid int
	home     string
}

// bench holds what every section shares. Nothing here is package-level: one bench per run.
type bench struct {
	o       options
	user    account
	bootID  string
	runtime string // runtime_dir of the configs (root 0755, like /run/ffl)
	temp    string // temp_dir of the configs (1777, like /tmp)
	xdir    string // X lock dir for the Epilog (1777, like /tmp)
	logs    string
	portLo  int
	portHi  int
	jobSeq  int
	rep     *report
	out     io.Writer // progress lines

	launchBin, fakexpraBin, faketreeBin string
	hostileBin                          string  // the attacker (internal/hostile)
	other                               account // the squatter of the attack figures
	launchProf, epilogProf              string  // unstripped builds for the profiles taken after a miss ("" = none)
	noProfileNoted                      bool
	sweepProfiled                       bool
	cfgCompliant, cfgIgnore, cfgReal    string
	cfgRealCP                           map[int]string // real xpra + Firefox with content_processes N
	cfgEpilog                           string
}

func main() {
	var o options
	flag.StringVar(&o.scratch, "scratch", "/var/tmp/ffl-bench", "scratch directory (wiped and remade, except bin/ and home/)")
	flag.StringVar(&o.bin, "bin", "", "directory holding ffl-launch, fakexpra and faketree, executable by the bench user (default <scratch>/bin)")
	flag.StringVar(&o.epilog, "epilog", "bin/ffl-epilog", "the ffl-epilog binary (run as root)")
	flag.StringVar(&o.out, "out", "bench-results.md", "where to save the table")
	flag.StringVar(&o.userName, "user", "fflbench", "non-root user dedicated to the bench (created with useradd when missing; its ~/.firefox-launcher is wiped)")
	flag.StringVar(&o.node, "node", "benchnode", "node name the bench uses (SLURMD_NODENAME)")
	flag.StringVar(&o.sweepDir, "sweep-dir", "/dev/shm/ffl-bench-sweep", "where the sweep's trees are built (a memory file system isolates the sweep's own cost)")
	flag.Float64Var(&o.scale, "scale", 1, "multiply every repetition count (e.g. 0.3 for a quick look; medians get noisier)")
	flag.StringVar(&o.only, "only", "", "comma-separated sections to run: launch (grace path, supervisor memory), ready (time-to-ready overhead), session (real xpra + Firefox), node (1, 4, 8 users at once), revisit (a ready session's first client against later ones), jupyter (first and later visits through the real JupyterHub: tests/jupyter), epilog, attack, sweep (default all)")
	flag.StringVar(&o.version, "version", "", "version string to print in the header (git describe)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "ffl-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root (sudo make bench): the Epilog and sweep run as root, and the launcher is started as the bench user")
	}
	if o.bin == "" {
		o.bin = filepath.Join(o.scratch, "bin")
	}
	start := time.Now()
	b := &bench{o: o, rep: &report{title: "ffl benchmarks"}, out: os.Stderr}
	if err := b.setup(); err != nil {
		return err
	}
	b.header()
	sections := map[string]bool{"launch": true, "ready": true, "session": true, "node": true, "revisit": true, "jupyter": true, "epilog": true, "attack": true, "sweep": true}
	if o.only != "" {
		sections = map[string]bool{}
		for _, s := range strings.Split(o.only, ",") {
			sections[strings.TrimSpace(s)] = true
		}
	}
	if sections["launch"] {
		b.launcherFigures()
	}
	if sections["ready"] {
		b.readyFigures()
	}
	if sections["session"] {
		b.realSessionFigures()
	}
	if sections["node"] && b.realSessions() {
		b.nodeFigures()
	}
	if sections["revisit"] && b.realSessions() {
		b.revisitFigures()
	}
	if sections["jupyter"] {
		b.jupyterFigures()
	}
	if sections["epilog"] {
		b.epilogFigures()
	}
	if sections["attack"] {
		b.attackFigures()
	}
	if sections["sweep"] {
		b.sweepFigures()
	}
	b.rep.note("Whole bench run: %s wall; load average at the end: %s.", time.Since(start).Round(time.Second), loadavg())
	pass, miss, failed := b.rep.counts()
	b.rep.note("Summary: %d pass, %d miss, %d error.", pass, miss, failed)
	md := b.rep.markdown()
	if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
		return fmt.Errorf("save %s: %w", o.out, err)
	}
	fmt.Print(md)
	if n := len(b.rep.failures); n > 0 {
		return fmt.Errorf("%d failure(s): a job left processes or directories after its SIGTERM, or a launcher hung (listed under the table in %s)", n, o.out)
	}
	return nil
}

// progress prints one line of what the bench is doing (stderr), so a slow section is visible.
func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.out, "ffl-bench: "+format+"\n", args...)
}

// reps scales a repetition count, keeping at least min.
func (b *bench) reps(n, min int) int {
	return max(int(float64(n)*b.o.scale+0.5), min)
}

func (b *bench) header() {
	host, _ := os.Hostname()
	var uts strings.Builder
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		uts.WriteString(strings.TrimSpace(string(data)))
	}
	procs, _ := proc.Scan(func(proc.Stat, int) bool { return true })
	b.rep.header = append(b.rep.header,
		fmt.Sprintf("%s on %s, Linux %s, %d CPUs, %s; ffl %s; load average at the start: %s; %d processes on the node.",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, uts.String(), runtime.NumCPU(), runtime.Version(), b.o.version, loadavg(), len(procs)),
		fmt.Sprintf("Scratch %s (%s); bench user %s (uid %d); node %q; ports %d-%d. Medians of repeated runs, p90 where n >= %d; targets are checked on the medians.",
			b.o.scratch, fsType(b.o.scratch), b.user.name, b.user.uid, b.o.node, b.portLo, b.portHi, minP90Runs))
}

// setup makes the bench user, the scratch directories and the configurations.
func (b *bench) setup() error {
	var err error
	if b.bootID, err = proc.BootID(); err != nil {
		return err
	}
	if b.o.epilog, err = filepath.Abs(b.o.epilog); err != nil {
		return err
	}
	b.launchBin = filepath.Join(b.o.bin, "ffl-launch")
	b.fakexpraBin = filepath.Join(b.o.bin, "fakexpra")
	b.faketreeBin = filepath.Join(b.o.bin, "faketree")
	b.hostileBin = filepath.Join(b.o.bin, "hostile")
	if st, err := os.Stat(filepath.Join(b.o.bin, "ffl-launch-prof")); err == nil && st.Mode()&0o001 != 0 {
		b.launchProf = filepath.Join(b.o.bin, "ffl-launch-prof")
	}
	if st, err := os.Stat(filepath.Join(b.o.bin, "ffl-epilog-prof")); err == nil && st.Mode()&0o001 != 0 {
		b.epilogProf = filepath.Join(b.o.bin, "ffl-epilog-prof")
	}
	for _, p := range []string{b.launchBin, b.fakexpraBin, b.faketreeBin, b.hostileBin, b.o.epilog} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o001 == 0 {
			return fmt.Errorf("%s: missing or not executable by others (scripts/bench.sh builds it): %v", p, err)
		}
	}
	if err := os.MkdirAll(b.o.scratch, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(b.o.scratch, 0o755); err != nil {
		return err
	}
	if b.user, err = ensureUser(b.o.userName, filepath.Join(b.o.scratch, "home", b.o.userName)); err != nil {
		return err
	}
	// Leftovers of an interrupted earlier run: the bench's processes and state.
	b.killLeftovers()
	if err := os.RemoveAll(filepath.Join(b.user.home, ".firefox-launcher")); err != nil {
		return err
	}
	b.runtime = filepath.Join(b.o.scratch, "run-ffl")
	b.temp = filepath.Join(b.o.scratch, "tmp")
	b.xdir = filepath.Join(b.o.scratch, "x")
	b.logs = filepath.Join(b.o.scratch, "logs")
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{b.runtime, 0o755}, {b.temp, 0o777 | os.ModeSticky}, {b.xdir, 0o777 | os.ModeSticky},
		{filepath.Join(b.xdir, ".X11-unix"), 0o777 | os.ModeSticky}, {b.logs, 0o755},
		{filepath.Join(b.o.scratch, "sock"), 0o777 | os.ModeSticky}} {
		if err := os.RemoveAll(d.path); err != nil {
			return err
		}
		if err := os.Mkdir(d.path, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return err
		}
	}
	if b.portLo, b.portHi, err = freePortRange(24); err != nil {
		return err
	}
	b.jobSeq = 4_100_000 + rand.IntN(100_000)*10
	return b.writeConfigs()
}

// writeConfigs writes the ffl.toml files the bench points FFL_CONFIG at.
func (b *bench) writeConfigs() error {
	common := fmt.Sprintf("runtime_dir = %q\ntemp_dir = %q\nport_min = %d\nport_max = %d\nmax_sessions = 8\nlog_format = \"json\"\n",
		b.runtime, b.temp, b.portLo, b.portHi)
	fake := func(mode string) string {
		return common + fmt.Sprintf("xpra = %q\nxpra_args = [%q, %q]\nfirefox = \"/bin/true\"\ncleanup_timeout = \"1s\"\nstart_timeout = \"30s\"\n",
			b.fakexpraBin, "--fakexpra-faketree="+b.faketreeBin, "--fakexpra-mode="+mode)
	}
	files := []struct {
		path *string
		name string
		data string
	}{
		{&b.cfgCompliant, "launch-compliant.toml", fake("compliant")},
		{&b.cfgIgnore, "launch-ignore-term.toml", fake("ignore-term")},
		{&b.cfgReal, "launch-real.toml", common + "xpra = \"xpra\"\nfirefox = \"firefox-esr\"\ncleanup_timeout = \"3s\"\nstart_timeout = \"90s\"\n"},
		// The Epilog's own settings stay at their defaults (syslog on, no log file, timeout 10s);
		// cleanup_timeout 1s only bounds the grace of the TERM-ignoring leftover runs.
		{&b.cfgEpilog, "epilog.toml", fmt.Sprintf("runtime_dir = %q\ntemp_dir = %q\ncleanup_timeout = \"1s\"\n", b.runtime, b.temp)},
	}
	for _, f := range files {
		*f.path = filepath.Join(b.o.scratch, f.name)
		if err := os.WriteFile(*f.path, []byte(f.data), 0o644); err != nil {
			return err
		}
	}
	b.cfgRealCP = map[int]string{}
	for _, n := range []int{1, 2} {
		path := filepath.Join(b.o.scratch, fmt.Sprintf("launch-real-cp%d.toml", n))
		data := common + fmt.Sprintf("xpra = \"xpra\"\nfirefox = \"firefox-esr\"\ncleanup_timeout = \"3s\"\nstart_timeout = \"90s\"\ncontent_processes = %d\n", n)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			return err
		}
		b.cfgRealCP[n] = path
	}
	return nil
}

// ensureUser returns the bench user, creating it (no login shell, home in the scratch dir) when
// it does not exist, and makes sure its home exists, is its own and is 0700.
func ensureUser(name, home string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(home), 0o755); err != nil {
			return account{}, err
		}
		out, cerr := exec.Command("useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin", "-c", "ffl bench user", name).CombinedOutput()
		if u, err = user.Lookup(name); err != nil {
			return account{}, fmt.Errorf("useradd %s: %v: %s", name, cerr, out)
		}
	}
	a := account{name: name, home: u.HomeDir}
	a.uid, _ = strconv.Atoi(u.Uid)
	a.gid, _ = strconv.Atoi(u.Gid)
	if a.uid == 0 {
		return account{}, fmt.Errorf("user %s is root: pick a non-root bench user (-user)", name)
	}
	if err := os.MkdirAll(filepath.Dir(a.home), 0o755); err != nil {
		return account{}, err
	}
	if err := os.MkdirAll(a.home, 0o700); err != nil {
		return account{}, err
	}
	if err := os.Chown(a.home, a.uid, a.gid); err != nil {
		return account{}, err
	}
	return a, os.Chmod(a.home, 0o700)
}

// killLeftovers SIGKILLs what an interrupted earlier run left running as the bench user: its
// processes run from the bench's bin dir (launchers, fakes) or carrying a session marker of the
// bench node (real xpra, Xvfb). Nothing else of the user is touched.
func (b *bench) killLeftovers() {
	ids, _ := proc.Scan(func(_ proc.Stat, uid int) bool { return uid == b.user.uid })
	for _, id := range ids {
		dir := "/proc/" + strconv.Itoa(id.PID)
		exe, _ := os.Readlink(dir + "/exe")
		ours := strings.HasPrefix(exe, b.o.bin+"/") // the attacker's too: its environ read may block
		if !ours {
			env, _ := os.ReadFile(dir + "/environ")
			for _, kv := range strings.Split(string(env), "\x00") {
				if v, ok := strings.CutPrefix(kv, layout.MarkerVar+"="); ok && strings.Contains(v, "/"+b.o.node+"/") {
					ours = true
				}
			}
		}
		if ours {
			_ = proc.Signal(id, unix.SIGKILL)
		}
	}
}

// nextJob returns a fresh Slurm-like job ID.
func (b *bench) nextJob() string {
	b.jobSeq++
	return strconv.Itoa(b.jobSeq)
}

// layout is the bench user's layout for job on the bench node.
func (b *bench) layout(job string) layout.Layout { return b.layoutFor(b.user, job) }

// layoutFor is acct's layout for job on the bench node.
func (b *bench) layoutFor(acct account, job string) layout.Layout {
	return layout.Layout{StateDir: filepath.Join(acct.home, ".firefox-launcher"), RuntimeDir: b.runtime, TempDir: b.temp,
		UID: acct.uid, Node: b.o.node, JobKey: job}
}

// userEnv is the environment of a process started as the bench user.
func (b *bench) userEnv(extra ...string) []string {
	return append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + b.user.home, "USER=" + b.user.name,
		"LOGNAME=" + b.user.name, "LANG=C.UTF-8"}, extra...)
}

// freePortRange finds n consecutive TCP ports free on 127.0.0.1.
func freePortRange(n int) (int, int, error) {
	for try := 0; try < 200; try++ {
		lo := 30000 + rand.IntN(25000)
		ok := true
		for p := lo; p < lo+n && ok; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return lo, lo + n - 1, nil
		}
	}
	return 0, 0, fmt.Errorf("no %d consecutive free ports", n)
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// fsType names the file system holding path, from /proc/self/mounts (longest matching prefix).
func fsType(path string) string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, typ = mp, f[2]
		}
	}
	return typ + " on " + best
}
