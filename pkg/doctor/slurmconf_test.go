package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/config"
)

// TestParseSlurmConfLines: the line rules of Slurm's parse_config.c (comments, escapes,
// continuations, quotes, one pair per line, case-insensitive keys, the last value winning).
func TestParseSlurmConfLines(t *testing.T) {
	c := ParseSlurmConf([]byte("# a comment\n"+
		"ClusterName=test\n"+
		"killwait = 10   # seconds\n"+
		"Epilog=\"/usr/local/sbin/ffl epilog\"\n"+
		"NodeName=n1 CPUs=2 State=UNKNOWN\n"+
		"PartitionName=p Nodes=n1 Default=YES\n"+
		"KillWait=12\n"+
		"bogus line\n"+
		"PrologEpilogTimeout=abc\n"+
		"Prolog=/opt/hooks/p\\#1\n"+
		"SlurmctldParameters=enable_configless,\\\n"+
		"   idle_on_node_suspend\n"+
		"TaskProlog=/a\\\\\\\n"+
		"b\n"+
		"EpilogTimeout=0x10\r\n"+
		"PrologTimeout=UNLIMITED\n"+
		"MessageTimeout=65536\n"), Version{24, 11})
	for key, want := range map[string]string{
		"Epilog":              "/usr/local/sbin/ffl epilog",
		"clustername":         "test",
		"NodeName":            "n1",
		"Prolog":              "/opt/hooks/p#1",
		"SlurmctldParameters": "enable_configless,",
		"TaskProlog":          "/a\\b",
	} {
		if got := c.Get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if s, _ := c.Last("NodeName"); s.Rest != "CPUs=2 State=UNKNOWN" || s.Line != 5 {
		t.Errorf("NodeName line: %+v", s)
	}
	if s, _ := c.Last("TaskProlog"); s.Line != 13 {
		t.Errorf("a continued line is numbered by its first line: %+v", s)
	}
	for key, want := range map[string]time.Duration{"KillWait": 12 * time.Second, "EpilogTimeout": 16 * time.Second, "PrologTimeout": 65535 * time.Second} {
		if d, ok, err := c.Seconds(key); !ok || err != nil || d != want {
			t.Errorf("%s = %v, %v, %v; want %v", key, d, ok, err, want)
		}
	}
	for _, key := range []string{"PrologEpilogTimeout", "MessageTimeout"} {
		if _, ok, err := c.Seconds(key); !ok || err == nil {
			t.Errorf("%s: a value Slurm refuses parsed (ok %v, err %v)", key, ok, err)
		}
	}
	if len(c.All("killwait")) != 2 {
		t.Errorf("KillWait lines: %v", c.All("killwait"))
	}
}

// TestParseVersion: what slurmd --version prints on Debian and from a source build.
func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{"slurm-wlm 22.05.8": {22, 5}, "slurm 24.11.5": {24, 11}, "26.05": {26, 5}, "slurm 25.11.0-0rc1": {25, 11}} {
		if v, ok := ParseVersion(in); !ok || v != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, v, ok, want)
		}
	}
	if _, ok := ParseVersion("slurm"); ok {
		t.Error("no release parsed as one")
	}
}

// site is a node's configuration directory for one test: files by name relative to the
// directory ("{dir}" in their text is the directory), executables among them.
type site struct {
	files map[string]string
	exec  []string
	// links: name -> target (both relative to dir unless absolute).
	links map[string]string
	modes map[string]os.FileMode
	// foreign files are reported as owned by uid 1000.
	foreign []string
}

func (s site) build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range s.files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		for _, e := range s.exec {
			if e == name {
				mode = 0o755
			}
		}
		if m, ok := s.modes[name]; ok {
			mode = m
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(text, "{dir}", dir)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range s.links {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// testReader reads the real files and reports the test's own uid as root's (the tests also run
// as a non-root user), and the site's foreign files as uid 1000's.
func testReader(dir string, foreign []string) confReader {
	return func(path string, max int64) ([]byte, fileOwner, error) {
		data, own, err := readConfFile(path, max)
		if own.uid == uint32(os.Getuid()) {
			own.uid = 0
		}
		for _, f := range foreign {
			if path == filepath.Join(dir, f) {
				own.uid = 1000
			}
		}
		return data, own, err
	}
}

func fakeProc(t *testing.T, args ...string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"comm": "slurmd\n", "status": "Name:\tslurmd\nUid:\t0\t0\t0\t0\n", "cmdline": strings.Join(args, "\x00") + "\x00"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A user's process named slurmd: never taken for slurmd.
	fake := filepath.Join(root, "777")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"comm": "slurmd\n", "status": "Uid:\t1000\t1000\t1000\t1000\n", "cmdline": "slurmd\x00-f\x00/home/mallory/slurm.conf\x00"} {
		if err := os.WriteFile(filepath.Join(fake, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

type want struct {
	check  string
	status Status
	// found must be in the FOUND column of a row of that check with that status.
	found string
}

const ffl = "#!/bin/sh\nexit 0\n"

// TestSlurmSide: what the node doctor says about real-looking configurations of each Slurm
// release from 22.05 to 26.05 (the rules in Version's comment).
func TestSlurmSide(t *testing.T) {
	base := func(extra string) map[string]string {
		return map[string]string{
			"slurm.conf":      "ClusterName=alpha\nSlurmctldHost=ctl\nProctrackType=proctrack/cgroup\nKillWait=30\nPrologEpilogTimeout=60\n" + extra,
			"bin/ffl-epilog":  ffl,
			"bin/ffl-prolog":  ffl,
			"bin/site-epilog": "#!/bin/sh\nlogger done\n",
		}
	}
	exec := []string{"bin/ffl-epilog", "bin/ffl-prolog", "bin/site-epilog", "ffl-epilog", "bin/wrapper", "epilog.d/10-site"}
	tests := []struct {
		name    string
		version string
		site    site
		conf    string // --slurm-conf relative to dir ("" = slurm.conf)
		noFlag  bool   // find it like slurmd (fake /proc with args)
		proc    []string
		cfg     func(*config.Config)
		want    []want
	}{
		{name: "22.05 one Epilog line", version: "22.05",
			site: site{files: base("Epilog={dir}/bin/ffl-epilog\n")},
			want: []want{{"Epilog", Pass, "bin/ffl-epilog"}, {"Epilog bound", Pass, "PrologEpilogTimeout 1m0s"}, {"Prolog", Warn, "Prolog not set"}}},
		{name: "24.05 runs every Epilog line", version: "24.05",
			site: site{files: base("Epilog={dir}/bin/site-epilog\nEpilog={dir}/bin/ffl-epilog\n")},
			want: []want{{"Epilog", Pass, "slurm.conf:7"}}},
		{name: "23.11 runs only the last Epilog line", version: "23.11",
			site: site{files: base("Epilog={dir}/bin/ffl-epilog\nEpilog={dir}/bin/site-epilog\n")},
			want: []want{{"Epilog", Fail, "is ignored: Slurm 23.11 runs only the last Epilog= line"}, {"Epilog", Fail, "nothing ends"}}},
		{name: "23.11 with ffl-epilog last", version: "23.11",
			site: site{files: base("Epilog={dir}/bin/site-epilog\nEpilog={dir}/bin/ffl-epilog\n")},
			want: []want{{"Epilog", Pass, "slurm.conf:7"}}},
		{name: "23.11 relative Epilog resolved against the config dir", version: "23.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog=ffl-epilog\nPrologEpilogTimeout=60\n", "ffl-epilog": ffl}},
			want: []want{{"Epilog", Pass, "Epilog=ffl-epilog"}}},
		{name: "23.02 relative Epilog is not resolved", version: "23.02",
			site: site{files: map[string]string{"slurm.conf": "Epilog=ffl-epilog\nPrologEpilogTimeout=60\n", "ffl-epilog": ffl}},
			want: []want{{"Epilog", Fail, "runs a relative name from slurmd's working directory"}, {"Epilog", Fail, "nothing ends"}}},
		{name: "an Epilog glob over a directory with a link to ffl-epilog", version: "24.11",
			site: site{files: base("Epilog={dir}/epilog.d/*\n"), links: map[string]string{"epilog.d/50-ffl": "bin/ffl-epilog", "epilog.d/10-site": "bin/site-epilog"}},
			want: []want{{"Epilog", Pass, "50-ffl -> "}}},
		{name: "an Epilog glob matching nothing drains the node", version: "24.11",
			site: site{files: base("Epilog={dir}/epilog.d/*\nEpilog={dir}/bin/ffl-epilog\n")},
			want: []want{{"Epilog", Fail, "matches no file: slurmd fails every epilog"}, {"Epilog", Pass, "bin/ffl-epilog"}}},
		{name: "a site script calling ffl-epilog", version: "22.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/wrapper\nPrologEpilogTimeout=60\n", "bin/wrapper": "#!/bin/sh\n/usr/local/sbin/ffl-epilog\nlogger done\n"}},
			want: []want{{"Epilog", Pass, "is a script naming ffl-epilog"}}},
		{name: "an Epilog others can write runs as root", version: "24.11",
			site: site{files: base("Epilog={dir}/bin/ffl-epilog\n"), modes: map[string]os.FileMode{"bin/ffl-epilog": 0o777}},
			want: []want{{"Epilog", Fail, "can be changed by a non-root user"}, {"Epilog", Pass, "ffl-epilog"}}},
		{name: "25.05 EpilogTimeout overrides PrologEpilogTimeout", version: "25.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=5\nEpilogTimeout=60\n", "bin/ffl-epilog": ffl}},
			want: []want{{"Epilog bound", Pass, "< EpilogTimeout 1m0s"}}},
		{name: "25.05 a short EpilogTimeout fails despite a long PrologEpilogTimeout", version: "26.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=600\nEpilogTimeout=8\n", "bin/ffl-epilog": ffl}},
			want: []want{{"Epilog bound", Fail, ">= EpilogTimeout 8s"}}},
		{name: "24.11 does not know EpilogTimeout", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=5\nEpilogTimeout=60\n", "bin/ffl-epilog": ffl}},
			want: []want{{"Epilog bound", Fail, "EpilogTimeout (" /* unknown */}, {"Epilog bound", Fail, ">= PrologEpilogTimeout 5s"}}},
		{name: "25.05 PrologTimeout for ffl-prolog", version: "25.05",
			site: site{files: base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Alloc\nPrologTimeout=5\n")},
			want: []want{{"Prolog bound", Fail, ">= PrologTimeout 5s"}, {"Epilog bound", Pass, "PrologEpilogTimeout 1m0s"}, {"PrologFlags", Pass, "Alloc"}}},
		{name: "Prolog without Alloc", version: "24.11",
			site: site{files: base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\n")},
			want: []want{{"Prolog", Pass, "ffl-prolog"}, {"PrologFlags", Warn, "without Alloc"}}},
		{name: "23.02 Include is relative to slurm.conf's dir", version: "23.02",
			site: site{files: map[string]string{"slurm.conf": "Include conf.d/hooks.conf\nPrologEpilogTimeout=60\n", "conf.d/hooks.conf": "Include more.conf\n",
				"more.conf": "Epilog={dir}/bin/ffl-epilog\n", "bin/ffl-epilog": ffl}},
			want: []want{{"slurm.conf", Pass, "with 2 Include file(s)"}, {"Epilog", Pass, "more.conf:1"}}},
		{name: "22.05 Include is relative to the including file", version: "22.05",
			site: site{files: map[string]string{"slurm.conf": "Include conf.d/hooks.conf\nPrologEpilogTimeout=60\n", "conf.d/hooks.conf": "Include more.conf\n",
				"more.conf": "Epilog={dir}/bin/ffl-epilog\n", "bin/ffl-epilog": ffl}},
			want: []want{{"slurm.conf files", Fail, "conf.d/more.conf is missing"}, {"Epilog", Fail, "Epilog not set"}}},
		{name: "an Include with a glob is not expanded", version: "23.11",
			site: site{files: map[string]string{"slurm.conf": "Include conf.d/*.conf\nPrologEpilogTimeout=60\n", "conf.d/hooks.conf": "Epilog={dir}/bin/ffl-epilog\n", "bin/ffl-epilog": ffl}},
			want: []want{{"slurm.conf files", Fail, "Slurm does not expand globs in Include"}, {"Epilog", Fail, "Epilog not set"}}},
		{name: "an Include cycle stops", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Include a.conf\nEpilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\n", "a.conf": "Include slurm.conf\n", "bin/ffl-epilog": ffl}},
			want: []want{{"slurm.conf files", Fail, "includes itself"}, {"Epilog", Pass, "ffl-epilog"}}},
		{name: "Include %c is the lowercased cluster name", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "ClusterName=Alpha\nInclude hooks-%c.conf\nPrologEpilogTimeout=60\n", "hooks-alpha.conf": "Epilog={dir}/bin/ffl-epilog\n", "bin/ffl-epilog": ffl}},
			want: []want{{"Epilog", Pass, "hooks-alpha.conf:1"}}},
		{name: "an included file others can write", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Include hooks.conf\nPrologEpilogTimeout=60\n", "hooks.conf": "Epilog={dir}/bin/ffl-epilog\n", "bin/ffl-epilog": ffl},
				modes: map[string]os.FileMode{"hooks.conf": 0o666}},
			want: []want{{"slurm.conf files", Fail, "hooks.conf is writable by group or others"}}},
		{name: "an included file of another user", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Include hooks.conf\nPrologEpilogTimeout=60\n", "hooks.conf": "Epilog={dir}/bin/ffl-epilog\n", "bin/ffl-epilog": ffl},
				foreign: []string{"hooks.conf"}},
			want: []want{{"slurm.conf files", Warn, "hooks.conf is owned by uid 1000, not root"}, {"Epilog", Pass, "hooks.conf:1"}}},
		{name: "configless slurmd: its cache", version: "24.11", noFlag: true, proc: []string{"/usr/sbin/slurmd", "--conf-server", "ctl:6817"},
			site: site{files: map[string]string{"run/conf/slurm.conf": "Epilog=ffl-epilog\nPrologEpilogTimeout=60\n", "run/conf/ffl-epilog": ffl}},
			want: []want{{"slurm.conf", Pass, "configless (--conf-server)"}, {"Epilog", Pass, "run/conf/slurm.conf:1"}}},
		{name: "slurmd -f", version: "24.11", noFlag: true, proc: []string{"/usr/sbin/slurmd", "-D", "-f", "{dir}/site/slurm.conf"},
			site: site{files: map[string]string{"site/slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\n", "bin/ffl-epilog": ffl}},
			want: []want{{"slurm.conf", Pass, "slurmd (pid 4242) -f"}, {"Epilog", Pass, "site/slurm.conf:1"}}},
		{name: "job_container/tmpfs", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nJobContainerType=job_container/tmpfs\nPrologFlags=Contain\n",
				"job_container.conf": "AutoBasePath=true\nBasePath=/var/nvme/jobs\nDirs=/tmp,/dev/shm,/var/tmp\n", "bin/ffl-epilog": ffl}},
			want: []want{{"per-job namespace", Warn, "each job gets its own /tmp,/dev/shm,/var/tmp. ffl under it is untested"},
				{"per-job namespace", Warn, "without ffl-prolog sessions keep their files in /tmp/ffl-<uid>"}}},
		{name: "job_container/tmpfs with ffl-prolog and runtime_dir outside: the tested setup", version: "22.05",
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Alloc,Contain\nJobContainerType=job_container/tmpfs\n")
				f["job_container.conf"] = "AutoBasePath=true\nBasePath=/var/nvme/jobs\n"
				return f
			}()},
			want: []want{{"per-job namespace", Pass, "each job gets its own /tmp,/dev/shm; tested with ffl"},
				{"per-job namespace", Pass, "keep runtime_dir out of /tmp,/dev/shm"}}},
		{name: "job_container/tmpfs with ffl-prolog but runtime_dir private", version: "22.05",
			cfg: func(c *config.Config) { c.RuntimeDir = "/tmp/ffl" },
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Alloc,Contain\nJobContainerType=job_container/tmpfs\n")
				f["job_container.conf"] = "BasePath=/var/nvme/jobs\n"
				return f
			}()},
			want: []want{{"runtime dir vs namespace", Fail, "runtime_dir /tmp/ffl is inside /tmp"}, {"per-job namespace", Warn, "ffl under it is untested"}}},
		{name: "job_container/tmpfs hides runtime_dir", version: "24.11",
			cfg: func(c *config.Config) { c.RuntimeDir = "/var/tmp/ffl" },
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nJobContainerType=job_container/tmpfs\nPrologFlags=Contain\n",
				"job_container.conf": "NodeName=n[1-4] BasePath=/var/nvme/jobs Dirs=/tmp,/var/tmp\n", "bin/ffl-epilog": ffl}},
			want: []want{{"runtime dir vs namespace", Fail, "runtime_dir /var/tmp/ffl is inside /var/tmp"}}},
		{name: "job_container/tmpfs needs Contain", version: "22.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nJobContainerType=job_container/tmpfs\nPrologFlags=Alloc\n",
				"job_container.conf": "BasePath=/var/nvme/jobs\n", "bin/ffl-epilog": ffl}},
			want: []want{{"PrologFlags", Fail, "without PrologFlags=Contain: slurmd refuses to start"}, {"per-job namespace", Warn, "its own /tmp,/dev/shm"}}},
		{name: "job_container/tmpfs without its file", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nJobContainerType=job_container/tmpfs\nPrologFlags=Contain\n", "bin/ffl-epilog": ffl}},
			want: []want{{"per-job namespace", Fail, "job_container.conf: no such file"}}},
		{name: "25.11 namespace/linux with PID and user namespaces", version: "25.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nNamespaceType=namespace/linux\nPrologFlags=Contain\n",
				"namespace.yaml": "---\ndefaults:\n  auto_base_path: true\n  base_path: \"/var/nvme/storage_0\"\n  clone_ns_flags:\n    - \"CLONE_NEWPID\"\n    - \"CLONE_NEWUSER\"\n    - \"CLONE_NEWNS\"\n  shared: true\n",
				"bin/ffl-epilog": ffl}},
			want: []want{{"PID namespace", Warn, "CLONE_NEWPID (all nodes)"}, {"user namespace", Warn, "CLONE_NEWUSER (all nodes)"}, {"per-job namespace", Warn, "namespace/linux"},
				{"per-job namespace", Warn, "its own /tmp,/dev/shm"}}},
		{name: "26.05 namespace/linux, PID namespace on some nodes, dir_confs", version: "26.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nNamespaceType=namespace/linux\nJobContainerType=job_container/tmpfs\nPrologFlags=RunInJob\n",
				"namespace.yaml": "defaults:\n  base_path: /var/nvme\nnode_confs:\n  - nodes:\n    - \"n[2-4,6]\"\n    options:\n      clone_ns_flags: [\"CLONE_NEWPID\"]\n      dir_confs:\n        - path: \"/tmp\"\n          tmpfs: true\n        - path: \"/scratch\"\n",
				"bin/ffl-epilog": ffl}},
			want: []want{{"PID namespace", Warn, "CLONE_NEWPID (some nodes (node_confs))"}, {"per-job namespace", Warn, "its own /tmp,/scratch"},
				{"PrologFlags=RunInJob", Warn, "with namespace/linux: the Prolog and Epilog run inside the job's extern step and its private /tmp,/scratch; ffl is tested with each of them alone"}}},
		{name: "26.05 namespace/linux with CLONE_NEWPID, ffl-prolog and Contain: the tested setup", version: "26.05",
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Alloc,Contain\nNamespaceType=namespace/linux\n")
				f["namespace.yaml"] = "defaults:\n  auto_base_path: true\n  base_path: \"/var/nvme/%n\"\n  clone_ns_flags:\n    - \"CLONE_NEWPID\"\n"
				return f
			}()},
			want: []want{{"per-job namespace", Pass, "namespace/linux"}, {"per-job namespace", Pass, "each job gets its own /tmp,/dev/shm; tested with ffl"},
				{"PID namespace", Pass, "CLONE_NEWPID (all nodes): tested with ffl"}}},
		{name: "26.05 namespace/linux with PID and user namespaces, Slurm's mapping: tested", version: "26.05",
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Contain\nNamespaceType=namespace/linux\n")
				f["namespace.yaml"] = "defaults:\n  base_path: /var/nvme\n  clone_ns_flags: [\"CLONE_NEWPID\", \"CLONE_NEWUSER\"]\n"
				return f
			}()},
			want: []want{{"PID namespace", Pass, "tested with ffl"}, {"user namespace", Pass, "without a user_ns_script: Slurm maps every uid and gid to itself"}}},
		{name: "26.05 namespace/linux with a user_ns_script: untested", version: "26.05",
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Contain\nNamespaceType=namespace/linux\n")
				f["namespace.yaml"] = "defaults:\n  base_path: /var/nvme\n  user_ns_script: \"/etc/slurm/userns.sh\"\n  clone_ns_flags: [\"CLONE_NEWPID\", \"CLONE_NEWUSER\"]\n"
				return f
			}()},
			want: []want{{"user namespace", Warn, "Untested with ffl (it is tested with Slurm's own mapping, no user_ns_script"}}},
		{name: "26.05 namespace/linux with CLONE_NEWPID and RunInJob: tested", version: "26.05",
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Contain,RunInJob\nNamespaceType=namespace/linux\n")
				f["namespace.yaml"] = "defaults:\n  base_path: /var/nvme\n  clone_ns_flags: [\"CLONE_NEWPID\"]\n"
				return f
			}()},
			want: []want{{"PID namespace", Pass, "tested with ffl"}, {"PrologFlags=RunInJob", Pass, "with namespace/linux: the Prolog and Epilog run from the job's extern step (its cgroup, not its namespaces); tested with ffl"}}},
		{name: "26.05 job_container/tmpfs with RunInJob: untested", version: "26.05",
			site: site{files: func() map[string]string {
				f := base("Epilog={dir}/bin/ffl-epilog\nProlog={dir}/bin/ffl-prolog\nPrologFlags=Contain,RunInJob\nJobContainerType=job_container/tmpfs\n")
				f["job_container.conf"] = "BasePath=/var/nvme/jobs\n"
				return f
			}()},
			want: []want{{"per-job namespace", Pass, "tested with ffl"}, {"PrologFlags=RunInJob", Warn, "ffl is tested with each of them alone"}}},
		{name: "26.05 namespace/linux with CLONE_NEWPID without ffl-prolog: untested", version: "26.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nNamespaceType=namespace/linux\nPrologFlags=Contain\n",
				"namespace.yaml": "defaults:\n  base_path: /var/nvme\n  clone_ns_flags: [\"CLONE_NEWPID\"]\n", "bin/ffl-epilog": ffl}},
			want: []want{{"PID namespace", Warn, "the PIDs in ffl's state files are the job's namespace's"}, {"per-job namespace", Warn, "ffl under it is untested"}}},
		{name: "24.11 does not know NamespaceType: JobContainerType decides", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nNamespaceType=namespace/linux\n", "bin/ffl-epilog": ffl}},
			want: []want{{"per-job namespace", Pass, "none"}}},
		{name: "23.11 SignalChildrenProcesses", version: "23.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\n", "cgroup.conf": "CgroupPlugin=autodetect\nSignalChildrenProcesses=Yes\n", "bin/ffl-epilog": ffl}},
			want: []want{{"SignalChildrenProcesses", Pass, "SIGTERM to xpra and Firefox at the same moment as to ffl-launch; tested with ffl"}}},
		{name: "24.11 RunInJob alone: tested, but the Epilog can run as the user", version: "24.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nPrologFlags=Alloc,Contain,RunInJob\n", "bin/ffl-epilog": ffl}},
			want: []want{{"PrologFlags=RunInJob", Warn, "tested with ffl: scancel and the time limit leave nothing; but before Slurm 26.05 the job's extern slurmstepd can start the Epilog with the job user's credentials"}}},
		{name: "26.05 RunInJob alone is tested", version: "26.05",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nPrologFlags=Alloc,Contain,RunInJob\n", "bin/ffl-epilog": ffl}},
			want: []want{{"PrologFlags=RunInJob", Pass, "inside the job's extern step (slurmstepd); tested with ffl"}}},
		{name: "23.02 does not know SignalChildrenProcesses", version: "23.02",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\n", "cgroup.conf": "SignalChildrenProcesses=yes\n", "bin/ffl-epilog": ffl}},
			want: []want{{"SignalChildrenProcesses", Fail, "unknown to Slurm 23.02"}}},
		{name: "23.11 RunInJob is unknown", version: "23.11",
			site: site{files: map[string]string{"slurm.conf": "Epilog={dir}/bin/ffl-epilog\nPrologEpilogTimeout=60\nPrologFlags=RunInJob\n", "bin/ffl-epilog": ffl}},
			want: []want{{"PrologFlags=RunInJob", Fail, "unknown to Slurm 23.11"}, {"SignalChildrenProcesses", Pass, "no cgroup.conf"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.site.exec = append(tc.site.exec, exec...)
			dir := tc.site.build(t)
			cfg := config.Default()
			cfg.RuntimeDir = "/run/ffl"
			cfg.TempDir = "/tmp"
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			o := Options{Config: cfg, Node: true, SlurmVersion: tc.version}
			o.slurm = slurmPaths{procRoot: t.TempDir(), defaults: []string{filepath.Join(dir, "none.conf")}, configless: filepath.Join(dir, "run/conf/slurm.conf"),
				getenv: func(string) string { return "" }, read: testReader(dir, tc.site.foreign), rootUID: uint32(os.Getuid())}
			if !tc.noFlag {
				o.SlurmConf = filepath.Join(dir, orDefault(tc.conf, "slurm.conf"))
			}
			if tc.proc != nil {
				var args []string
				for _, a := range tc.proc {
					args = append(args, strings.ReplaceAll(a, "{dir}", dir))
				}
				o.slurm.procRoot = fakeProc(t, args...)
			}
			var r Report
			checkSlurm(context.Background(), &r, o)
			assertChecks(t, r, tc.want)
		})
	}
}

func assertChecks(t *testing.T, r Report, wants []want) {
	t.Helper()
	for _, w := range wants {
		found := false
		for _, c := range r.Checks {
			if c.Name == w.check && c.Status == w.status && strings.Contains(c.Detail, w.found) {
				found = true
				if c.Status != Pass && c.Fix == "" {
					t.Errorf("%s: %s without a fix", c.Name, c.Detail)
				}
			}
		}
		if !found {
			var b strings.Builder
			_ = r.Write(&b)
			t.Errorf("no %q row with status %s and %q; the table:\n%s", w.check, w.status, w.found, b.String())
		}
	}
}

// TestSlurmVersionUnknown: without slurmd the doctor says so and applies the newest rules.
func TestSlurmVersionUnknown(t *testing.T) {
	dir := site{files: map[string]string{"slurm.conf": "Epilog={dir}/a\nEpilog={dir}/ffl-epilog\nPrologEpilogTimeout=60\n", "a": ffl, "ffl-epilog": ffl}, exec: []string{"a", "ffl-epilog"}}.build(t)
	o := Options{Config: config.Default(), Node: true, SlurmConf: filepath.Join(dir, "slurm.conf")}
	o.slurm = slurmPaths{procRoot: t.TempDir(), read: testReader(dir, nil), rootUID: uint32(os.Getuid()),
		detect: func(context.Context, []slurmdProc) (Version, string, error) {
			return Version{}, "", errors.New("slurmd not found")
		}}
	var r Report
	checkSlurm(context.Background(), &r, o)
	assertChecks(t, r, []want{{"slurm version", Warn, "newest rules"}, {"Epilog", Pass, "slurm.conf:2"}})
}

// TestFindSlurmd: root's slurmd is found with its arguments; a user's process named slurmd is not.
func TestFindSlurmd(t *testing.T) {
	procs := findSlurmd(fakeProc(t, "/usr/sbin/slurmd", "-fetc/x.conf"))
	if len(procs) != 1 || procs[0].pid != 4242 || procs[0].file() != "etc/x.conf" || procs[0].confServer() {
		t.Fatalf("findSlurmd = %+v", procs)
	}
	root := fakeProc(t, "/usr/sbin/slurmd", "-D")
	env := "PATH=/bin\x00SLURMD_RECONF_CONF_CACHE=/var/spool/slurmd/conf-cache\x00"
	if err := os.WriteFile(filepath.Join(root, "4242", "environ"), []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{}
	o.slurm = slurmPaths{}.withDefaults()
	if err := os.Chmod(filepath.Join(root, "4242", "environ"), 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		// Like a user's doctor: slurmd's environment is not readable.
		procs := findSlurmd(root)
		if _, why, _ := locateSlurmConf(o, procs); len(procs) != 1 || !procs[0].envHidden || !strings.Contains(why, "root's only") {
			t.Errorf("a hidden environment: %+v, %s", procs, why)
		}
	}
	if err := os.Chmod(filepath.Join(root, "4242", "environ"), 0o600); err != nil {
		t.Fatal(err)
	}
	path, why, _ := locateSlurmConf(o, findSlurmd(root))
	if path != "/var/spool/slurmd/conf-cache/slurm.conf" || !strings.Contains(why, "configless") {
		t.Errorf("a re-executed configless slurmd: %s (%s)", path, why)
	}
}

// TestReadSlurmConfBounds: a chain of Include files deeper than the bound stops with a finding;
// a FIFO where a file should be is refused at once (not waited on).
func TestReadSlurmConfBounds(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < maxIncludeDepth+5; i++ {
		text := fmt.Sprintf("Include f%d.conf\nKey%d=v\n", i+1, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.conf", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := readSlurmConf(filepath.Join(dir, "f0.conf"), Version{24, 11}, testReader(dir, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != maxIncludeDepth+1 || len(c.Findings) != 1 || !strings.Contains(c.Findings[0].Detail, "nested deeper") {
		t.Errorf("files %d, findings %+v", len(c.Files), c.Findings)
	}
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscallMkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.conf"), []byte("Include fifo.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = readSlurmConf(filepath.Join(dir, "main.conf"), Version{24, 11}, testReader(dir, nil))
	if err != nil || len(c.Findings) != 1 || !strings.Contains(c.Findings[0].Detail, "not a regular file") {
		t.Errorf("a FIFO include: %v, %+v", err, c)
	}
	if _, err := readSlurmConf(filepath.Join(dir, "missing.conf"), Version{}, testReader(dir, nil)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing slurm.conf: %v", err)
	}
}

func syscallMkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }

// TestSnippetParses: the slurm.conf lines ffl ships read as the doctor expects, on the oldest
// and the newest release (its commented-out EpilogTimeout is no setting).
func TestSnippetParses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "etc", "slurm", "slurm.conf.snippet"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []Version{{22, 5}, {26, 5}} {
		c := ParseSlurmConf(data, v)
		for key, want := range map[string]string{"Prolog": "/usr/local/sbin/ffl-prolog", "Epilog": "/usr/local/sbin/ffl-epilog", "PrologFlags": "Alloc",
			"PrologEpilogTimeout": "60", "KillWait": "30", "ProctrackType": "proctrack/cgroup", "EpilogTimeout": ""} {
			if got := c.Get(key); got != want || len(c.All(key)) > 1 {
				t.Errorf("%v: %s = %q (%d lines), want %q", v, key, got, len(c.All(key)), want)
			}
		}
	}
}
