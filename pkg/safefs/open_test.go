package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

func TestOpenDir(t *testing.T) {
	root := t.TempDir()
	build(t, root, "real/sub/", "file=x", "real/sub/leaf/")
	build(t, root, "link->real", "real/sublink->sub", "abs->"+filepath.Join(root, "real"))

	openers := map[string]func(string) (*os.File, error){
		"openat2": OpenDir,
		"walk":    func(p string) (*os.File, error) { return openDirWalk(filepath.Clean(p)) },
	}
	tests := []struct {
		name    string
		path    string
		wantErr error // nil: must succeed
	}{
		{"plain", root + "/real/sub/leaf", nil},
		{"unclean", root + "//real/./sub/../sub/", nil},
		{"root", "/", nil},
		{"symlink last", root + "/link", ErrSymlink},
		{"symlink first", root + "/link/sub", ErrSymlink},
		{"symlink middle", root + "/real/sublink/leaf", ErrSymlink},
		{"absolute symlink", root + "/abs/sub", ErrSymlink},
		{"proc magic link", "/proc/self/cwd", ErrSymlink},
		{"missing", root + "/nope", os.ErrNotExist},
		{"file", root + "/file", unix.ENOTDIR},
		{"relative", "real/sub", os.ErrInvalid},
	}
	for oname, open := range openers {
		for _, tc := range tests {
			t.Run(oname+"/"+tc.name, func(t *testing.T) {
				f, err := open(tc.path)
				if tc.wantErr != nil {
					if err == nil {
						f.Close()
						t.Fatalf("open(%q) succeeded, want %v", tc.path, tc.wantErr)
					}
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("open(%q) = %v, want %v", tc.path, err, tc.wantErr)
					}
					if tc.path != "real/sub" && !strings.Contains(err.Error(), "/") {
						t.Errorf("error %q does not name the path", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("open(%q): %v", tc.path, err)
				}
				defer f.Close()
				var st1, st2 unix.Stat_t
				if err := unix.Fstat(int(f.Fd()), &st1); err != nil {
					t.Fatal(err)
				}
				if err := unix.Stat(tc.path, &st2); err != nil {
					t.Fatal(err)
				}
				if st1.Ino != st2.Ino || st1.Dev != st2.Dev {
					t.Fatalf("open(%q) opened another directory", tc.path)
				}
				if f.Name() != filepath.Clean(tc.path) {
					t.Errorf("Name() = %q, want %q", f.Name(), filepath.Clean(tc.path))
				}
			})
		}
	}
}

func TestOpenDirAt(t *testing.T) {
	root := t.TempDir()
	build(t, root, "dir/", "file=x", "link->dir", "dangling->nowhere")
	d := mustOpenDir(t, root)
	tests := []struct {
		name    string
		wantErr error
	}{
		{"dir", nil},
		{"link", ErrSymlink},
		{"dangling", ErrSymlink},
		{"file", unix.ENOTDIR},
		{"missing", os.ErrNotExist},
		{"", ErrInvalidName},
		{".", ErrInvalidName},
		{"..", ErrInvalidName},
		{"dir/", ErrInvalidName},
		{"a/b", ErrInvalidName},
		{"nul\x00", ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenDirAt(d, tc.name)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if want := filepath.Join(root, tc.name); f.Name() != want {
					t.Errorf("Name() = %q, want %q", f.Name(), want)
				}
				return
			}
			if err == nil {
				f.Close()
				t.Fatalf("OpenDirAt(%q) succeeded, want %v", tc.name, tc.wantErr)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("OpenDirAt(%q) = %v, want %v", tc.name, err, tc.wantErr)
			}
			if tc.wantErr == unix.ENOTDIR && errors.Is(err, ErrSymlink) {
				t.Errorf("a regular file reported as symlink: %v", err)
			}
		})
	}
}

func TestCheckOwner(t *testing.T) {
	testutil.RequireRoot(t, "chowns directories to another uid")
	root := t.TempDir()
	tests := []struct {
		name     string
		owner    int
		mode     os.FileMode
		uid      int
		forbidGO bool
		wantErr  []error
	}{
		{"own private", 0, 0o700, 0, true, nil},
		{"own group writable allowed", 0, 0o770, 0, false, nil},
		{"own group writable refused", 0, 0o770, 0, true, []error{ErrNotOwned, ErrBadMode}},
		{"own other writable refused", 0, 0o702, 0, true, []error{ErrNotOwned, ErrBadMode}},
		{"other owner", otherUID, 0o700, 0, false, []error{ErrNotOwned}},
		{"expected other owner", otherUID, 0o755, otherUID, true, nil},
		{"negative uid", 0, 0o700, -1, false, []error{os.ErrInvalid}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(root, "d"+string(rune('a'+i)))
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			lchown(t, tc.owner, p)
			f := mustOpenDir(t, p)
			err := CheckOwner(f, tc.uid, tc.forbidGO)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckOwner succeeded, want %v", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("CheckOwner = %v, want it to wrap %v", err, want)
				}
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
		})
	}
}

func TestMkdirAt(t *testing.T) {
	testutil.RequireRoot(t, "chowns directories to another uid")
	// A restrictive umask must not change the requested mode.
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })

	root := t.TempDir()
	outside := t.TempDir()
	build(t, root, "wrongmode/", "theirs/", "file=x", "link->"+outside, "good/")
	if err := os.Chmod(filepath.Join(root, "wrongmode"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "good"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "theirs"), 0o750); err != nil {
		t.Fatal(err)
	}
	lchown(t, otherUID, filepath.Join(root, "theirs"))
	d := mustOpenDir(t, root)

	tests := []struct {
		name     string
		mode     os.FileMode
		wantUID  int
		wantErr  error
		wantOwn  int
		existing bool
	}{
		{name: "new", mode: 0o750, wantUID: -1, wantOwn: 0},
		{name: "new-for-user", mode: 0o700, wantUID: otherUID, wantOwn: otherUID},
		{name: "new-world", mode: 0o777, wantUID: -1, wantOwn: 0},
		{name: "good", mode: 0o750, wantUID: -1, wantOwn: 0, existing: true},
		{name: "wrongmode", mode: 0o700, wantUID: -1, wantErr: ErrBadMode, existing: true},
		{name: "theirs", mode: 0o750, wantUID: -1, wantErr: ErrNotOwned, existing: true},
		{name: "theirs", mode: 0o750, wantUID: otherUID, wantOwn: otherUID, existing: true},
		{name: "link", mode: 0o700, wantUID: -1, wantErr: ErrSymlink, existing: true},
		{name: "file", mode: 0o700, wantUID: -1, wantErr: unix.ENOTDIR, existing: true},
		{name: "setuid", mode: 0o700 | os.ModeSetuid, wantUID: -1, wantErr: ErrBadMode},
		{name: "sticky", mode: 0o700 | os.ModeSticky, wantUID: -1, wantErr: ErrBadMode},
		{name: "a/b", mode: 0o700, wantUID: -1, wantErr: ErrInvalidName},
		{name: "..", mode: 0o700, wantUID: -1, wantErr: ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, "/", "_"), func(t *testing.T) {
			f, err := MkdirAt(d, tc.name, tc.mode, tc.wantUID)
			if tc.wantErr != nil {
				if err == nil {
					f.Close()
					t.Fatalf("MkdirAt(%q) succeeded, want %v", tc.name, tc.wantErr)
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("MkdirAt(%q) = %v, want %v", tc.name, err, tc.wantErr)
				}
				if !tc.existing && tc.wantErr != ErrInvalidName && exists(filepath.Join(root, tc.name)) {
					t.Errorf("refused MkdirAt(%q) left a directory behind", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("MkdirAt(%q): %v", tc.name, err)
			}
			defer f.Close()
			fi, err := os.Lstat(filepath.Join(root, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != tc.mode || fi.Mode()&(os.ModeSetgid|os.ModeSetuid|os.ModeSticky) != 0 {
				t.Errorf("mode = %v, want dir %v", fi.Mode(), tc.mode)
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != tc.wantOwn {
				t.Errorf("owner = %d, want %d", uid, tc.wantOwn)
			}
		})
	}
	if got := snapshot(t, outside); got != `"" drwx------ uid=0` {
		t.Errorf("outside changed: %s", got)
	}
}

func TestMkdirAll(t *testing.T) {
	testutil.RequireRoot(t, "chowns a directory to another uid")
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	root := filepath.Join(base, "root")
	build(t, base, "outside/", "root/x/", "root/x/link->"+outside, "root/theirs/")
	lchown(t, otherUID, filepath.Join(root, "theirs"))
	if err := os.Chmod(filepath.Join(root, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outside)

	tests := []struct {
		rel     string
		wantErr error
		leaf    string // relative to root, when it succeeds
	}{
		{"a/b/c", nil, "a/b/c"},
		{"a/b/c", nil, "a/b/c"}, // again: existing dirs pass the checks
		{"./a//d/", nil, "a/d"},
		{"", nil, ""},
		{"x/link/sub", ErrSymlink, ""},
		{"theirs/sub", ErrNotOwned, ""},
		{"a/../../outside", ErrInvalidName, ""},
		{"/abs", os.ErrInvalid, ""},
	}
	for _, tc := range tests {
		f, err := MkdirAll(root, tc.rel, 0o700, -1)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("MkdirAll(%q) = %v, want %v", tc.rel, err, tc.wantErr)
			}
			if err == nil {
				f.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("MkdirAll(%q): %v", tc.rel, err)
			continue
		}
		want := filepath.Join(root, tc.leaf)
		if f.Name() != want {
			t.Errorf("MkdirAll(%q) leaf name %q, want %q", tc.rel, f.Name(), want)
		}
		var a, b unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &a); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(want, &b); err != nil {
			t.Fatal(err)
		}
		if a.Ino != b.Ino {
			t.Errorf("MkdirAll(%q) returned another directory than %s", tc.rel, want)
		}
		f.Close()
	}
	if got := snapshot(t, outside); got != before {
		t.Errorf("outside changed:\n%s\nwant\n%s", got, before)
	}
	if exists(filepath.Join(root, "theirs", "sub")) {
		t.Error("MkdirAll created a directory inside another user's directory")
	}
	// A symlinked root itself is refused too.
	if _, err := MkdirAll(filepath.Join(root, "x", "link"), "y", 0o700, -1); !errors.Is(err, ErrSymlink) {
		t.Errorf("MkdirAll with a symlinked root = %v, want ErrSymlink", err)
	}
}
