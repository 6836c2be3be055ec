package prereq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/proc"
)

// racingReaper is a proc.Reaper that runs a reap pass at the worst moment: after the child has
// exited (a zombie) and before its Wait. A child it does not own is reaped then, and Wait fails
// with ECHILD, which is what the supervisor's reaper did to the draw check's python3.
type racingReaper struct {
	*proc.Reaper
	waits atomic.Int32
}

func (r *racingReaper) Wait(cmd *exec.Cmd) error {
	r.waits.Add(1)
	pid := cmd.Process.Pid
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			break
		}
		if f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			break
		}
	}
	r.ReapOnce()
	return r.Reaper.Wait(cmd)
}

func TestMissingModulesWithReaper(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 missing")
	}
	mods := []Module{{Name: "os", Package: "python3"}, {Name: "no_such_module_ffl", Package: "nothing"}}
	r := &racingReaper{Reaper: proc.NewReaper()}
	missing, err := MissingModulesWith(context.Background(), r, []string{py}, mods)
	if err != nil {
		t.Fatalf("with a reaper reaping between exit and wait: %v", err)
	}
	if n := r.waits.Load(); n != 1 {
		t.Errorf("the interpreter ran %d times through the runner, want 1", n)
	}
	if len(missing) != 1 || missing[0].Name != "no_such_module_ffl" {
		t.Errorf("missing = %v, want [no_such_module_ffl]", missing)
	}
}

// fakeXpraInstall makes a venv whose xpra.platform.paths says the resources live in res, and an
// "xpra" script run by that venv's python, as a pip install of xpra is laid out.
func fakeXpraInstall(t *testing.T) (xpraPath, res string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 missing")
	}
	dir := t.TempDir()
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(py, "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Skipf("python3 -m venv: %v: %s", err, out)
	}
	site, err := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	if err != nil || len(site) != 1 {
		t.Fatalf("site-packages of %s: %v %v", venv, site, err)
	}
	res = filepath.Join(dir, "share", "xpra")
	pkg := filepath.Join(site[0], "xpra", "platform")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		filepath.Join(site[0], "xpra", "__init__.py"): "",
		filepath.Join(pkg, "__init__.py"):             "",
		filepath.Join(pkg, "paths.py"): fmt.Sprintf("def get_resources_dir():\n    return %q\n"+
			"def get_app_dir():\n    return %q\n", res, filepath.Join(dir, "app")),
	} {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	xpraPath = filepath.Join(dir, "bin", "xpra")
	if err := os.MkdirAll(filepath.Dir(xpraPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(xpraPath, []byte("#!"+filepath.Join(venv, "bin", "python3")+"\nprint('xpra v6.5.5')\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return xpraPath, res
}

// TestCheckHTML5: an xpra that finds no HTML5 client is a one-line prerequisite error naming
// xpra-html5; once index.html is in its resources' www directory the check passes.
func TestCheckHTML5(t *testing.T) {
	xp, res := fakeXpraInstall(t)
	ctx := context.Background()
	none := []string{filepath.Join(t.TempDir(), "usr-share-xpra-www")}
	err := checkHTML5(ctx, nil, xp, "/usr/bin:/bin", none)
	if !errors.Is(err, ErrMissing) || !errors.Is(err, ErrNoHTML5) || !strings.Contains(err.Error(), "install the package xpra-html5") ||
		strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), filepath.Join(res, "www")) {
		t.Fatalf("without the HTML5 client: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(res, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(res, "www", "index.html"), []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkHTML5(ctx, &racingReaper{Reaper: proc.NewReaper()}, xp, "/usr/bin:/bin", none); err != nil {
		t.Fatalf("with index.html in %s/www: %v", res, err)
	}
	// A system web root counts too (xpra looks in /usr/share/xpra/www after its own dirs).
	xp2, _ := fakeXpraInstall(t)
	if err := checkHTML5(ctx, nil, xp2, "/usr/bin:/bin", []string{filepath.Join(res, "www")}); err != nil {
		t.Fatalf("with a system web root: %v", err)
	}
}

// TestCheckHTML5RealXpra: the installed xpra (Debian 12's 3.1.3 ships its HTML5 client in
// /usr/share/xpra/www) passes, through the real xpra.platform.paths.
func TestCheckHTML5RealXpra(t *testing.T) {
	xp, err := exec.LookPath("xpra")
	if err != nil {
		t.Skip("xpra not installed")
	}
	if err := CheckHTML5With(context.Background(), nil, xp, "/usr/bin:/bin"); err != nil {
		t.Fatalf("%s: %v", xp, err)
	}
}

// TestCheckHTML5Xpra6: with xpra 6 built from source (FFL_XPRA6, see scripts/xpra6.sh), whose
// own resources directory has no web root, the check asks the real xpra.platform.paths of 6.x:
// without a system web root it is the xpra-html5 error.
func TestCheckHTML5Xpra6(t *testing.T) {
	xp := os.Getenv("FFL_XPRA6")
	if xp == "" {
		t.Skip("FFL_XPRA6 unset")
	}
	err := checkHTML5(context.Background(), nil, xp, "/usr/bin:/bin", []string{filepath.Join(t.TempDir(), "www")})
	if !errors.Is(err, ErrNoHTML5) || !strings.Contains(err.Error(), "xpra-html5") {
		t.Fatalf("xpra 6 without a web root: %v", err)
	}
	t.Log(err)
}

// TestCheckDraw: the import check and the HTML5 check (run side by side, through one reaper
// that reaps at the worst moment) give one answer: a missing PIL is the error, naming its
// package; with PIL and the HTML5 client there, none.
func TestCheckDraw(t *testing.T) {
	xp, res := fakeXpraInstall(t)
	ctx := context.Background()
	r := &racingReaper{Reaper: proc.NewReaper()}
	if err := os.MkdirAll(filepath.Join(res, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(res, "www", "index.html"), []byte("<html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckDrawWith(ctx, r, xp, "/usr/bin:/bin")
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "apt-get install python3-pil") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("without PIL: %v", err)
	}
	// PIL in the venv, as pip would put it.
	interp, err := Interpreter(xp, "/usr/bin:/bin")
	if err != nil {
		t.Fatal(err)
	}
	site, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(interp[0])), "lib", "python3*", "site-packages"))
	if len(site) != 1 {
		t.Fatalf("site-packages next to %s: %v", interp[0], site)
	}
	pil := filepath.Join(site[0], "PIL")
	if err := os.MkdirAll(pil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"__init__.py", "Image.py"} {
		if err := os.WriteFile(filepath.Join(pil, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckDrawWith(ctx, r, xp, "/usr/bin:/bin"); err != nil {
		t.Fatalf("with PIL and the HTML5 client: %v", err)
	}
}
