package doctor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/config"
)

func TestParseSlurmConf(t *testing.T) {
	c := ParseSlurmConf([]byte(`# a comment
ClusterName=test
killwait = 10   # seconds
Epilog="/usr/local/sbin/ffl-epilog"
NodeName=n1 CPUs=2 State=UNKNOWN
PartitionName=p Nodes=n1 Default=YES
KillWait=12
bogus line
PrologEpilogTimeout=abc
`))
	if c.Get("Epilog") != "/usr/local/sbin/ffl-epilog" || c.Get("clustername") != "test" {
		t.Errorf("parsed %v", c)
	}
	if d, ok := c.Duration("KillWait"); !ok || d != 12*time.Second {
		t.Errorf("KillWait = %v, %v; want the last value 12s", d, ok)
	}
	if _, ok := c.Duration("PrologEpilogTimeout"); ok {
		t.Error("a non-number parsed as a duration")
	}
	if c.Get("NodeName") != "" {
		t.Error("node lines are not settings")
	}
}

// TestRunFlagsSlurmMismatch: a cleanup timeout that Slurm's SIGKILL would cut short, a missing
// Epilog (node side) and an Epilog bound above PrologEpilogTimeout fail, with a fix each.
func TestRunFlagsSlurmMismatch(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "slurm.conf")
	if err := os.WriteFile(conf, []byte("KillWait=5\nPrologEpilogTimeout=8\nProctrackType=proctrack/linuxproc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.CleanupTimeout.Duration = 6 * time.Second
	cfg.RuntimeDir = filepath.Join(dir, "nonexistent")
	r := Run(context.Background(), Options{Config: cfg, SlurmConf: conf, XDir: dir, Node: true, Path: "/nonexistent"})
	want := map[string]Status{"KillWait vs cleanup": Fail, "Epilog": Fail, "Epilog bound": Fail, "proctrack": Warn,
		"runtime dir": Warn, "xpra": Fail, "firefox": Fail, "X socket dir": Warn, "Prolog": Warn}
	got := map[string]Check{}
	for _, c := range r.Checks {
		got[c.Name] = c
	}
	for name, st := range want {
		c, ok := got[name]
		if !ok || c.Status != st {
			t.Errorf("check %q = %+v, want %s", name, c, st)
		}
		if st != Pass && c.Fix == "" {
			t.Errorf("check %q has no fix", name)
		}
	}
	if !r.Failed() {
		t.Error("Failed() = false")
	}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil || !strings.Contains(b.String(), "KillWait vs cleanup") || !strings.HasPrefix(b.String(), "CHECK") {
		t.Errorf("table:\n%s", b.String())
	}
}
