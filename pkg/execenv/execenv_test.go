package execenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandNeverInherits(t *testing.T) {
	t.Setenv("PYTHONPATH", "/evil")
	cmd := Command("", nil, "/bin/sh", "-c", "pwd; env")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if lines[0] != "/" {
		t.Errorf("working directory %q, want /", lines[0])
	}
	if strings.Contains(string(out), "PYTHONPATH") {
		t.Errorf("the caller's environment reached the child:\n%s", out)
	}
}

func TestPython(t *testing.T) {
	got := strings.Join(Python([]string{"/usr/bin/python3", "-u"}, "-c", "x"), " ")
	if got != "/usr/bin/python3 -I -u -c x" {
		t.Errorf("Python: %q", got)
	}
}

func TestPath(t *testing.T) {
	uid := os.Getuid()
	shared := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"/usr/bin:/bin", "/usr/bin:/bin"},
		{"", ""},
		{".:bin::/usr/bin", "/usr/bin"},
		{"/usr/bin:/usr/bin/:/bin", "/usr/bin:/bin"},
		{shared + ":/usr/bin", "/usr/bin"},
		{"/tmp:/usr/bin", "/usr/bin"},
		{"/nonexistent/bin", ""},
	} {
		if got := Path(c.in, uid); got != c.want {
			t.Errorf("Path(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLang(t *testing.T) {
	for in, want := range map[string]string{"": DefaultLang, "en_US.UTF-8": "en_US.UTF-8", "de_DE@euro": "de_DE@euro", "C.UTF-8;rm -rf": DefaultLang, "a\nb": DefaultLang} {
		if got := Lang(in); got != want {
			t.Errorf("Lang(%q) = %q, want %q", in, got, want)
		}
	}
}
