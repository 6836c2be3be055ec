package htest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Plant is a booby-trapped working directory for the Python that ffl runs (the import check
// of xpra's interpreter, the doctors): the modules that check imports (lz4, PIL), the
// interpreter's startup hooks (sitecustomize, usercustomize), and an environment pointing
// PYTHONPATH, PYTHONSTARTUP and PYTHONUSERBASE at more of the same. Any of them that runs writes
// a file named after itself into Markers, which every user may write: an empty Markers after
// the run proves that nothing planted ran, whoever ran it.
type Plant struct {
	// Dir is the planted working directory (mode 0777: the group-writable project dir, or /tmp).
	Dir string
	// Markers receives one file per planted module that ran, holding the uid it ran as.
	Markers string
	// Env is the caller's hostile environment.
	Env []string
}

// NewPlant makes a Plant below base (a directory every user can enter).
func NewPlant(t testing.TB, base string) Plant {
	t.Helper()
	p := Plant{Dir: filepath.Join(base, "planted"), Markers: filepath.Join(base, "markers")}
	env := filepath.Join(base, "envpath")
	for _, d := range []string{p.Dir, p.Markers, env, filepath.Join(p.Dir, "PIL"), filepath.Join(env, "PIL")} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	code := func(name string) []byte {
		return []byte("import os\nopen(os.path.join(" + pyQuote(p.Markers) + ", " + pyQuote(name) + " + '-' + str(os.getuid())), 'w').write('ran')\n")
	}
	for dir, tag := range map[string]string{p.Dir: "cwd", env: "pythonpath"} {
		for _, m := range []string{"lz4.py", "PIL/__init__.py", "PIL/Image.py", "sitecustomize.py", "usercustomize.py"} {
			name := tag + "-" + strings.NewReplacer("/", "_", ".py", "").Replace(m)
			if err := os.WriteFile(filepath.Join(dir, m), code(name), 0o666); err != nil {
				t.Fatal(err)
			}
		}
	}
	startup := filepath.Join(base, "startup.py")
	if err := os.WriteFile(startup, code("pythonstartup"), 0o666); err != nil {
		t.Fatal(err)
	}
	p.Env = []string{"PYTHONPATH=" + env, "PYTHONSTARTUP=" + startup, "PYTHONUSERBASE=" + env}
	return p
}

// Ran lists the planted modules that ran ("cwd-lz4-1001": the cwd's lz4.py, as uid 1001).
func (p Plant) Ran(t testing.TB) []string {
	t.Helper()
	names, err := os.ReadDir(p.Markers)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		out = append(out, n.Name())
	}
	return out
}

// AssertNothingRan fails t when any planted module ran.
func (p Plant) AssertNothingRan(t testing.TB, what string) {
	t.Helper()
	if ran := p.Ran(t); len(ran) > 0 {
		t.Errorf("%s ran planted code: %v", what, ran)
	}
}

func pyQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
