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
	o := Options{Config: cfg, SlurmConf: conf, XDir: dir, Node: true, Path: "/nonexistent", SlurmVersion: "22.05"}
	o.slurm = slurmPaths{procRoot: t.TempDir(), read: testReader(dir, nil)}
	r := Run(context.Background(), o)
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

// TestSessionChecksRealXpra: with the installed xpra, the doctor reads its version and finds
// its HTML5 client (Debian 12's xpra 3.1.3 ships it in /usr/share/xpra/www).
func TestSessionChecksRealXpra(t *testing.T) {
	if _, err := os.Stat("/usr/bin/xpra"); err != nil {
		t.Skip("xpra not installed")
	}
	var r Report
	checkSession(context.Background(), &r, Options{Config: config.Default(), Path: "/usr/bin:/bin"})
	got := map[string]Check{}
	for _, c := range r.Checks {
		got[c.Name] = c
	}
	for _, name := range []string{"xpra", "xpra HTML5 client"} {
		if got[name].Status != Pass {
			t.Errorf("check %q = %+v, want PASS", name, got[name])
		}
	}
}
