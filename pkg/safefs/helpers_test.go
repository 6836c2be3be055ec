package safefs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// otherUID owns files planted "by another user" in the tests.
const otherUID = 4242

// helperEnv makes the test binary act as a small helper (see TestMain) instead of running tests,
// so a test can run RemoveAll under another uid.
const helperEnv = "SAFEFS_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "remove" {
		runRemoveHelper()
		return
	}
	os.Exit(m.Run())
}

// runRemoveHelper runs RemoveAll(argument path) with UID -1 and prints the stats as JSON.
func runRemoveHelper() {
	st, err := RemoveAll(os.Getenv("SAFEFS_TEST_PATH"), RemoveOptions{UID: -1})
	_ = json.NewEncoder(os.Stdout).Encode(st)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// mustOpenDir opens an absolute directory with OpenDir and closes it at cleanup.
func mustOpenDir(t testing.TB, path string) *os.File {
	t.Helper()
	d, err := OpenDir(path)
	if err != nil {
		t.Fatalf("OpenDir(%s): %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// build creates a tree below root from a compact spec: "d/" a directory, "f=content" a file,
// "l->target" a symlink, "p|" a FIFO. Parents are created as needed.
func build(t testing.TB, root string, spec ...string) {
	t.Helper()
	for _, s := range spec {
		var err error
		switch {
		case strings.Contains(s, "->"):
			name, target, _ := strings.Cut(s, "->")
			err = mkParent(root, name)
			if err == nil {
				err = os.Symlink(target, filepath.Join(root, name))
			}
		case strings.Contains(s, "="):
			name, content, _ := strings.Cut(s, "=")
			err = mkParent(root, name)
			if err == nil {
				err = os.WriteFile(filepath.Join(root, name), []byte(content), 0o644)
			}
		case strings.HasSuffix(s, "|"):
			name := strings.TrimSuffix(s, "|")
			err = mkParent(root, name)
			if err == nil {
				err = unix.Mkfifo(filepath.Join(root, name), 0o644)
			}
		case strings.HasSuffix(s, "/"):
			err = os.MkdirAll(filepath.Join(root, s), 0o755)
		default:
			err = fmt.Errorf("bad spec %q", s)
		}
		if err != nil {
			t.Fatalf("build %q: %v", s, err)
		}
	}
}

func mkParent(root, name string) error {
	return os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
}

// snapshot describes every entry below root (type, mode, owner, content or link target) so a test
// can assert that a directory was not touched at all.
func snapshot(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%q %v uid=%d", strings.TrimPrefix(p, root), fi.Mode(), st.Uid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + strconv.Quote(string(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// listNames returns the sorted names in dir.
func listNames(t testing.TB, dir string) []string {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	sort.Strings(names)
	return names
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// lchownAll gives path (not following symlinks) to uid.
func lchown(t testing.TB, uid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Lchown(p, uid, uid); err != nil {
			t.Fatalf("lchown %s: %v", p, err)
		}
	}
}

// mountTmpfs mounts a small tmpfs at dir (skipping when mounting is not allowed) and unmounts it
// at cleanup.
func mountTmpfs(t testing.TB, dir, opts string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		t.Skipf("cannot mount tmpfs at %s (%v): needs CAP_SYS_ADMIN in this mount namespace", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// sharedTempDir returns a t.TempDir() whose ancestors up to /tmp are traversable by other users,
// for tests that run a helper under another uid.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyTestBinary copies the running test binary into dir (mode 0755) so another uid can run it.
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "safefs.test")
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// runAs runs the test binary's remove helper on path as uid and returns its stats and error.
func runRemoveAs(t *testing.T, bin string, uid int, path string) (RemoveStats, error) {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = []string{helperEnv + "=remove", "SAFEFS_TEST_PATH=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var st RemoveStats
	if jerr := json.Unmarshal(out, &st); jerr != nil {
		t.Fatalf("helper as uid %d: output %q: %v (run error %v, stderr %s)", uid, out, jerr, err, stderr.String())
	}
	if err != nil {
		return st, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return st, nil
}

// fastTempDir is a t.TempDir() with a tmpfs mounted on it when running as root, for tests that
// create tens of thousands of files (slow on a shared virtual disk); otherwise the plain dir.
func fastTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		// Unprivileged: /dev/shm is usually a world-writable tmpfs.
		var sfs unix.Statfs_t
		if unix.Statfs("/dev/shm", &sfs) != nil || sfs.Type != unix.TMPFS_MAGIC {
			return dir
		}
		shm, err := os.MkdirTemp("/dev/shm", "safefs-test-")
		if err != nil {
			return dir
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		return shm
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256m,nr_inodes=200000,mode=0700"); err != nil {
		t.Logf("no tmpfs (%v): using the disk", err)
		return dir
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
