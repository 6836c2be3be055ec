package safefs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

func TestRemoveAllAtSymlinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	build(t, base, "outside/keep=precious", "outside/sub/deep=also")
	var spec []string
	dir := "tree"
	const levels = 5
	for level := 0; level < levels; level++ {
		spec = append(spec,
			dir+"/f=data",
			dir+"/todir->"+outside,
			dir+"/tofile->"+filepath.Join(outside, "keep"),
			dir+"/rel->"+strings.Repeat("../", level+1)+"outside",
			dir+"/dotdot->..",
			dir+"/slash->/",
			dir+"/dangling->/nonexistent",
		)
		dir += "/d"
	}
	build(t, base, spec...)
	build(t, base, "top->"+outside) // the name itself is a symlink
	before := snapshot(t, outside)
	b := mustOpenDir(t, base)

	st, err := RemoveAllAt(b, "top", RemoveOptions{UID: -1})
	if err != nil || st != (RemoveStats{Files: 1}) {
		t.Errorf("RemoveAllAt(symlink) = %+v, %v; want the link alone removed", st, err)
	}
	st, err = RemoveAllAt(b, "tree", RemoveOptions{UID: -1})
	if err != nil {
		t.Fatalf("RemoveAllAt: %v", err)
	}
	want := RemoveStats{Files: levels * 7, Dirs: levels, Bytes: levels * int64(len("data"))}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if exists(filepath.Join(base, "tree")) || exists(filepath.Join(base, "top")) {
		t.Error("tree or top link still exists")
	}
	if got := snapshot(t, outside); got != before {
		t.Errorf("outside changed:\n%s\nwant\n%s", got, before)
	}
}

func TestRemoveAllAtOwnership(t *testing.T) {
	testutil.RequireRoot(t, "plants files owned by another uid")
	type tc struct {
		name        string
		uid         int
		spec        []string
		chown       map[int][]string // owner -> paths relative to base
		wantStats   RemoveStats
		wantLeft    []string // relative to base, must still exist
		wantGone    []string
		wantInError []string
	}
	tests := []tc{
		{
			name: "root removes only root's",
			uid:  0,
			spec: []string{"tree/mine=abc", "tree/theirsfile=xyz", "tree/theirsdir/inner=1",
				"tree/sub/ok=1", "tree/sub/theirs2=2", "tree/sub/deep/theirsdeep/x=1",
				"tree/theirlink->/etc", "tree/gone/a/b/c=1"},
			chown: map[int][]string{otherUID: {"tree/theirsfile", "tree/theirsdir", "tree/sub/theirs2",
				"tree/sub/deep/theirsdeep", "tree/theirlink"}},
			wantStats: RemoveStats{Files: 3, Dirs: 3, Bytes: 5, Refused: 5},
			wantLeft: []string{"tree/theirsfile", "tree/theirsdir/inner", "tree/sub/theirs2",
				"tree/sub/deep/theirsdeep/x", "tree/theirlink"},
			wantGone:    []string{"tree/mine", "tree/sub/ok", "tree/gone"},
			wantInError: []string{"theirsfile", "theirsdir", "theirs2", "theirsdeep", "theirlink"},
		},
		{
			name: "user's tree with root's files planted",
			uid:  otherUID,
			spec: []string{"tree/a=1", "tree/d/b=22", "tree/d/rootfile=x", "tree/rootdir/c=1", "tree/e/f/g=1"},
			chown: map[int][]string{otherUID: {"tree", "tree/a", "tree/d", "tree/d/b",
				"tree/rootdir/c", "tree/e", "tree/e/f", "tree/e/f/g"}},
			wantStats:   RemoveStats{Files: 3, Dirs: 2, Bytes: 4, Refused: 2},
			wantLeft:    []string{"tree/d/rootfile", "tree/rootdir/c"},
			wantGone:    []string{"tree/a", "tree/d/b", "tree/e"},
			wantInError: []string{"rootfile", "rootdir"},
		},
		{
			name:        "top not owned",
			uid:         otherUID,
			spec:        []string{"tree/a=1"},
			wantStats:   RemoveStats{Refused: 1},
			wantLeft:    []string{"tree/a"},
			wantInError: []string{"tree"},
		},
		{
			name:      "any owner",
			uid:       -1,
			spec:      []string{"tree/a=1", "tree/d/b=1"},
			chown:     map[int][]string{otherUID: {"tree/a", "tree/d"}, 1234: {"tree/d/b"}},
			wantStats: RemoveStats{Files: 2, Dirs: 2, Bytes: 2},
			wantGone:  []string{"tree"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			build(t, base, tc.spec...)
			for uid, paths := range tc.chown {
				for _, p := range paths {
					lchown(t, uid, filepath.Join(base, p))
				}
			}
			st, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: tc.uid})
			if st != tc.wantStats {
				t.Errorf("stats = %+v, want %+v", st, tc.wantStats)
			}
			if len(tc.wantInError) == 0 {
				if err != nil {
					t.Errorf("RemoveAllAt: %v", err)
				}
			} else {
				if !errors.Is(err, ErrNotOwned) {
					t.Fatalf("RemoveAllAt = %v, want ErrNotOwned", err)
				}
				for _, name := range tc.wantInError {
					if !strings.Contains(err.Error(), "/"+name+": ") {
						t.Errorf("error does not name %s:\n%v", name, err)
					}
				}
			}
			for _, p := range tc.wantLeft {
				if !exists(filepath.Join(base, p)) {
					t.Errorf("%s was removed", p)
				}
			}
			for _, p := range tc.wantGone {
				if exists(filepath.Join(base, p)) {
					t.Errorf("%s was not removed", p)
				}
			}
		})
	}
}

// TestRemoveAllAtRace swaps directories for symlinks to an outside directory while the removal
// runs; nothing outside may ever be removed.
func TestRemoveAllAtRace(t *testing.T) {
	iterations := 200
	if testing.Short() {
		iterations = 20
	}
	for i := 0; i < iterations; i++ {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		spec := []string{"outside/keep=precious", "outside/sub/deep=also", "outside/n/x=1",
			"tree/a/swap->" + outside, "tree/a/sub/nswap->" + outside, "tree/b/x=1",
			"elsewhere/precious=1", "elsewhere/pdir/x=1"}
		for j := 0; j < 30; j++ {
			spec = append(spec, fmt.Sprintf("tree/a/sub/f%d=1", j), fmt.Sprintf("tree/a/sub/n/g%d=1", j),
				fmt.Sprintf("tree/a/sub/n/m/h%d=1", j), fmt.Sprintf("tree/b/sub2/k%d=1", j),
				fmt.Sprintf("tree/c/mv/f%d=1", j), fmt.Sprintf("tree/c/mv/in/f%d=1", j))
		}
		build(t, base, spec...)
		before := snapshot(t, outside)
		elsewhere := filepath.Join(base, "elsewhere")

		afd := openPath(t, filepath.Join(base, "tree/a"))
		bfd := openPath(t, filepath.Join(base, "tree/b"))
		cfd := openPath(t, filepath.Join(base, "tree/c"))
		efd := openPath(t, elsewhere)
		subfd := openPath(t, filepath.Join(base, "tree/a/sub"))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			// Only descriptor-relative operations on a, b and sub: the racer itself must never
			// resolve a name through a swapped-in symlink.
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Atomic exchanges: the name flips between the real directory and the symlink.
				_ = unix.Renameat2(afd, "sub", afd, "swap", unix.RENAME_EXCHANGE)
				_ = unix.Renameat2(subfd, "n", subfd, "nswap", unix.RENAME_EXCHANGE)
				runtime.Gosched()
				_ = unix.Renameat2(afd, "sub", afd, "swap", unix.RENAME_EXCHANGE)
				_ = unix.Renameat2(subfd, "n", subfd, "nswap", unix.RENAME_EXCHANGE)
				// Rename aside, plant a symlink, take it away, put the directory back.
				// Move a subtree out of the tree and back: climbing out of it with ".." lands
				// in "elsewhere", which must be noticed.
				if unix.Renameat(cfd, "mv", efd, "mv") == nil {
					runtime.Gosched()
					_ = unix.Renameat(efd, "mv", cfd, "mv")
				}
				if unix.Renameat(bfd, "sub2", bfd, "aside") == nil {
					_ = unix.Symlinkat(outside, bfd, "sub2")
					runtime.Gosched()
					_ = unix.Unlinkat(bfd, "sub2", 0)
					_ = unix.Renameat(bfd, "aside", bfd, "sub2")
				}
			}
		}()
		_, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: -1})
		close(stop)
		<-done
		for _, fd := range []int{afd, bfd, cfd, efd, subfd} {
			unix.Close(fd)
		}
		if err != nil && !errors.Is(err, ErrRaced) && !errors.Is(err, unix.ENOTEMPTY) {
			t.Logf("iteration %d: RemoveAllAt under race: %v", i, err)
		}
		if got := snapshot(t, outside); got != before {
			t.Fatalf("iteration %d: outside changed:\n%s\nwant\n%s", i, got, before)
		}
		for _, p := range []string{"precious", "pdir/x"} {
			if !exists(filepath.Join(elsewhere, p)) {
				t.Fatalf("iteration %d: elsewhere/%s removed", i, p)
			}
		}
		// Without the racer, a second pass finishes the job.
		if _, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: -1}); err != nil {
			t.Fatalf("iteration %d: second pass: %v", i, err)
		}
		if exists(filepath.Join(base, "tree")) {
			t.Fatalf("iteration %d: tree survived the second pass", i)
		}
		if got := snapshot(t, outside); got != before {
			t.Fatalf("iteration %d: outside changed after second pass:\n%s", i, got)
		}
	}
}

func openPath(t testing.TB, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return fd
}

func TestRemoveAllAtSpecialFiles(t *testing.T) {
	base := t.TempDir()
	names := []string{"new\nline", "\nleading", "trailing\n", "tab\tand space", "back\\slash",
		"-rf", "*", "\xff\xfe not utf8", strings.Repeat("x", 255)}
	var spec []string
	for _, n := range names {
		spec = append(spec, "tree/"+n+"=1", "tree/dir\n"+n[:1]+"/"+n+"=1")
	}
	spec = append(spec, "tree/fifo|", "tree/dir\nx/fifo\nnl|")
	build(t, base, spec...)
	// A bound unix socket (the file stays after the process is done with it).
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	if err := unix.Bind(sock, &unix.SockaddrUnix{Name: filepath.Join(base, "tree", "sock")}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(sock, 1); err != nil {
		t.Fatal(err)
	}
	wantFiles := 2*len(names) + 3
	if os.Geteuid() == 0 {
		// A device node: removing it must not open it.
		if err := unix.Mknod(filepath.Join(base, "tree", "null\ndev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		wantFiles++
	}
	dirs := map[string]bool{}
	for _, n := range names {
		dirs["dir\n"+n[:1]] = true
	}
	dirs["dir\nx"] = true
	st, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := RemoveStats{Files: wantFiles, Dirs: len(dirs) + 1, Bytes: int64(2 * len(names))}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if left := listNames(t, base); len(left) != 0 {
		t.Errorf("left behind: %q", left)
	}
}

func TestRemoveAllAtMode000(t *testing.T) {
	spec := []string{"tree/locked/inner/file=1", "tree/locked/f=22", "tree/readonly/g=1", "tree/writeonly/h=1", "tree/top=1"}
	modes := map[string]os.FileMode{
		"tree/locked/inner": 0, "tree/locked": 0, "tree/readonly": 0o500, "tree/writeonly": 0o300,
	}
	want := RemoveStats{Files: 5, Dirs: 5, Bytes: 6}
	prepare := func(t *testing.T, base string, uid int) {
		build(t, base, spec...)
		for _, p := range []string{"tree", "tree/locked", "tree/locked/inner", "tree/locked/inner/file",
			"tree/locked/f", "tree/readonly", "tree/readonly/g", "tree/writeonly", "tree/writeonly/h", "tree/top"} {
			lchown(t, uid, filepath.Join(base, p))
		}
		for _, p := range []string{"tree/locked/inner", "tree/locked", "tree/readonly", "tree/writeonly"} {
			if err := os.Chmod(filepath.Join(base, p), modes[p]); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Run("caller's own tree", func(t *testing.T) {
		// Any uid: without CAP_DAC_OVERRIDE this needs the chmod of the locked directories.
		base := t.TempDir()
		prepare(t, base, os.Geteuid())
		st, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: -1})
		if err != nil || st != want || exists(filepath.Join(base, "tree")) {
			t.Errorf("RemoveAllAt = %+v, %v; want %+v and the tree gone", st, err, want)
		}
	})
	t.Run("root", func(t *testing.T) {
		testutil.RequireRoot(t, "chowns the tree to another uid")
		for _, uid := range []int{-1, 0, otherUID} {
			base := t.TempDir()
			owner := uid
			if owner < 0 {
				owner = otherUID // root removes any owner's locked dirs without chmod
			}
			prepare(t, base, owner)
			st, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: uid})
			if err != nil || st != want {
				t.Errorf("uid %d: RemoveAllAt = %+v, %v; want %+v", uid, st, err, want)
			}
			if exists(filepath.Join(base, "tree")) {
				t.Errorf("uid %d: tree still exists", uid)
			}
		}
	})
	t.Run("unprivileged owner", func(t *testing.T) {
		testutil.RequireRoot(t, "runs a helper as another uid")
		// The privilege-dropped helper has no CAP_DAC_*: it must chmod its own locked dirs.
		shared := sharedTempDir(t)
		bin := copyTestBinary(t, shared)
		base := filepath.Join(shared, "home")
		if err := os.Mkdir(base, 0o755); err != nil {
			t.Fatal(err)
		}
		lchown(t, otherUID, base)
		prepare(t, base, otherUID)
		st, err := runRemoveAs(t, bin, otherUID, filepath.Join(base, "tree"))
		if err != nil || st != want {
			t.Errorf("as uid %d: RemoveAll = %+v, %v; want %+v", otherUID, st, err, want)
		}
		if exists(filepath.Join(base, "tree")) {
			t.Error("tree still exists")
		}
	})
	t.Run("unprivileged not owner", func(t *testing.T) {
		testutil.RequireRoot(t, "runs a helper as another uid")
		// A locked directory of someone else stays locked and is reported.
		shared := sharedTempDir(t)
		bin := copyTestBinary(t, shared)
		base := filepath.Join(shared, "home")
		build(t, base, "tree/mine=1", "tree/foreign/x=1")
		lchown(t, otherUID, base, filepath.Join(base, "tree"), filepath.Join(base, "tree/mine"))
		if err := os.Chmod(filepath.Join(base, "tree/foreign"), 0); err != nil {
			t.Fatal(err)
		}
		st, err := runRemoveAs(t, bin, otherUID, filepath.Join(base, "tree"))
		if err == nil || !strings.Contains(err.Error(), "foreign") {
			t.Errorf("as uid %d: RemoveAll error = %v, want one naming foreign", otherUID, err)
		}
		if st.Files != 1 || !exists(filepath.Join(base, "tree/foreign/x")) {
			t.Errorf("stats %+v; foreign must stay, mine must go", st)
		}
		if fi, err := os.Stat(filepath.Join(base, "tree/foreign")); err != nil || fi.Mode().Perm() != 0 {
			t.Errorf("foreign dir changed: %v %v", fi.Mode(), err)
		}
	})
}

func TestRemoveAllAtManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	tests := []struct {
		name         string
		dirs, perDir int
		dir          func(t *testing.T) string
	}{
		// 100,000 files on tmpfs (creating them on this disk takes minutes), and wide
		// directories on the disk's file system, whose readdir order is a hash order.
		{"tmpfs 100000", 100, 1000, fastTempDir},
		{"disk 10000", 4, 2500, func(t *testing.T) string { return t.TempDir() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.dir(t)
			root := mustOpenDir(t, base)
			if err := unix.Mkdirat(int(root.Fd()), "tree", 0o755); err != nil {
				t.Fatal(err)
			}
			tree := openPath(t, filepath.Join(base, "tree"))
			defer unix.Close(tree)
			for d := 0; d < tc.dirs; d++ {
				dn := fmt.Sprintf("d%03d", d)
				if err := unix.Mkdirat(tree, dn, 0o755); err != nil {
					t.Fatal(err)
				}
				dfd, err := unix.Openat(tree, dn, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Fatal(err)
				}
				for f := 0; f < tc.perDir; f++ {
					fd, err := unix.Openat(dfd, fmt.Sprintf("file-%d", f), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
					if err != nil {
						t.Fatal(err)
					}
					unix.Close(fd)
				}
				unix.Close(dfd)
			}
			st, err := RemoveAllAt(root, "tree", RemoveOptions{UID: -1, Deadline: time.Now().Add(10 * time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			if want := (RemoveStats{Files: tc.dirs * tc.perDir, Dirs: tc.dirs + 1}); st != want {
				t.Errorf("stats = %+v, want %+v", st, want)
			}
			if exists(filepath.Join(base, "tree")) {
				t.Error("tree still exists")
			}
		})
	}
}

// TestRemoveAllAtDeep removes a 5,000-level tree with RLIMIT_NOFILE at 256: one descriptor per
// level would run out.
func TestRemoveAllAtDeep(t *testing.T) {
	const depth = 5000
	base := fastTempDir(t)
	fd := openPath(t, base)
	// Paths this deep exceed PATH_MAX: build descriptor-relative.
	name := "tree"
	for i := 0; i <= depth; i++ {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
		f, err := unix.Openat(fd, "f\n", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(f)
		name = "d"
	}
	unix.Close(fd)

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 256
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	st, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: -1})
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("RemoveAllAt: %v", err)
	}
	if want := (RemoveStats{Files: depth + 1, Dirs: depth + 1}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if exists(filepath.Join(base, "tree")) {
		t.Error("tree still exists")
	}
}

func TestRemoveAllAtMountPoint(t *testing.T) {
	testutil.RequireRoot(t, "mounts tmpfs and bind mounts")
	base := t.TempDir()
	build(t, base, "tree/sub/mnt/", "tree/sub/file=1", "tree/other=1", "tree/bind/", "bindsrc/keep=1", "mtop/")
	mountTmpfs(t, filepath.Join(base, "tree/sub/mnt"), "size=1m,mode=0755")
	build(t, base, "tree/sub/mnt/inmount=precious")
	// A bind mount has the same st_dev as its source: only the mount id tells it apart.
	if err := unix.Mount(filepath.Join(base, "bindsrc"), filepath.Join(base, "tree/bind"), "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(base, "tree/bind"), unix.MNT_DETACH) })
	mountTmpfs(t, filepath.Join(base, "mtop"), "size=1m")
	build(t, base, "mtop/x=1")

	b := mustOpenDir(t, base)
	st, err := RemoveAllAt(b, "tree", RemoveOptions{UID: -1})
	if !errors.Is(err, ErrMountPoint) {
		t.Fatalf("RemoveAllAt = %v, want ErrMountPoint", err)
	}
	if want := (RemoveStats{Files: 2, Bytes: 2, Refused: 2}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	for _, p := range []string{"tree/sub/mnt/inmount", "tree/bind/keep", "bindsrc/keep"} {
		if !exists(filepath.Join(base, p)) {
			t.Errorf("%s removed across a mount point", p)
		}
	}
	for _, p := range []string{"tree/sub/file", "tree/other"} {
		if exists(filepath.Join(base, p)) {
			t.Errorf("%s not removed", p)
		}
	}
	// The top itself being a mount point: refused, nothing inside touched.
	st, err = RemoveAllAt(b, "mtop", RemoveOptions{UID: -1})
	if !errors.Is(err, ErrMountPoint) || st != (RemoveStats{Refused: 1}) || !exists(filepath.Join(base, "mtop/x")) {
		t.Errorf("RemoveAllAt(mount point) = %+v, %v", st, err)
	}
}

func TestRemoveAllAtEdgeCases(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	build(t, base, "outside/keep=1", "file=12345", "link->outside", "tree/a=1")
	b := mustOpenDir(t, base)

	t.Run("missing is not an error", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			st, err := RemoveAllAt(b, "nope", RemoveOptions{UID: -1})
			if err != nil || st != (RemoveStats{}) {
				t.Errorf("RemoveAllAt(missing) = %+v, %v", st, err)
			}
		}
		if st, err := RemoveAll(filepath.Join(base, "no", "such", "thing"), RemoveOptions{UID: -1}); err != nil || st != (RemoveStats{}) {
			t.Errorf("RemoveAll(missing parent) = %+v, %v", st, err)
		}
	})
	t.Run("a file", func(t *testing.T) {
		st, err := RemoveAll(filepath.Join(base, "file"), RemoveOptions{UID: -1})
		if err != nil || st != (RemoveStats{Files: 1, Bytes: 5}) || exists(filepath.Join(base, "file")) {
			t.Errorf("RemoveAll(file) = %+v, %v", st, err)
		}
	})
	t.Run("symlinked ancestor", func(t *testing.T) {
		_, err := RemoveAll(filepath.Join(base, "link", "keep"), RemoveOptions{UID: -1})
		if !errors.Is(err, ErrSymlink) || !exists(filepath.Join(outside, "keep")) {
			t.Errorf("RemoveAll through a symlink = %v", err)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		for _, p := range []string{"/", "relative/path", ""} {
			if _, err := RemoveAll(p, RemoveOptions{UID: -1}); err == nil {
				t.Errorf("RemoveAll(%q) succeeded", p)
			}
		}
		for _, n := range []string{"", ".", "..", "a/b", "tree/a", "x\x00"} {
			if _, err := RemoveAllAt(b, n, RemoveOptions{UID: -1}); !errors.Is(err, ErrInvalidName) {
				t.Errorf("RemoveAllAt(%q) = %v, want ErrInvalidName", n, err)
			}
		}
		if !exists(filepath.Join(base, "tree/a")) {
			t.Error("an invalid name removed something")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		st, err := RemoveAllAt(b, "tree", RemoveOptions{UID: -1, Deadline: time.Now().Add(-time.Second)})
		if !errors.Is(err, ErrDeadline) || st != (RemoveStats{}) || !exists(filepath.Join(base, "tree/a")) {
			t.Errorf("RemoveAllAt past deadline = %+v, %v", st, err)
		}
		st, err = RemoveAllAt(b, "tree", RemoveOptions{UID: -1, Deadline: time.Now().Add(time.Hour)})
		if err != nil || st != (RemoveStats{Files: 1, Dirs: 1, Bytes: 1}) {
			t.Errorf("RemoveAllAt before deadline = %+v, %v", st, err)
		}
	})
	t.Run("closed parent", func(t *testing.T) {
		d := mustOpenDir(t, base)
		d.Close()
		if _, err := RemoveAllAt(d, "outside", RemoveOptions{UID: -1}); err == nil {
			t.Error("RemoveAllAt on a closed parent succeeded")
		}
		if !exists(filepath.Join(outside, "keep")) {
			t.Error("removed through a closed parent")
		}
	})
}

// BenchmarkRemoveAllAt removes a tree of 2,000 directories with 5 files each.
func BenchmarkRemoveAllAt(b *testing.B) {
	base := b.TempDir()
	root := mustOpenDir(b, base)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tree := fmt.Sprintf("tree%d", i)
		if err := unix.Mkdirat(int(root.Fd()), tree, 0o755); err != nil {
			b.Fatal(err)
		}
		tfd := openPath(b, filepath.Join(base, tree))
		for d := 0; d < 2000; d++ {
			dn := fmt.Sprintf("d%d", d)
			if err := unix.Mkdirat(tfd, dn, 0o755); err != nil {
				b.Fatal(err)
			}
			for f := 0; f < 5; f++ {
				fd, err := unix.Openat(tfd, dn+"/f"+fmt.Sprint(f), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		}
		unix.Close(tfd)
		b.StartTimer()
		st, err := RemoveAllAt(root, tree, RemoveOptions{UID: -1})
		if err != nil || st.Files != 10000 || st.Dirs != 2001 {
			b.Fatalf("RemoveAllAt = %+v, %v", st, err)
		}
	}
}

// TestRemoveAllAtErrorCap: many refusals are all counted, but the error stays readable.
func TestRemoveAllAtErrorCap(t *testing.T) {
	testutil.RequireRoot(t, "plants files owned by another uid")
	base := t.TempDir()
	const n = maxErrors + 10
	var paths []string
	for i := 0; i < n; i++ {
		build(t, base, fmt.Sprintf("tree/f%02d=x", i))
		paths = append(paths, filepath.Join(base, fmt.Sprintf("tree/f%02d", i)))
	}
	build(t, base, "tree/mine=1")
	lchown(t, otherUID, paths...)
	st, err := RemoveAllAt(mustOpenDir(t, base), "tree", RemoveOptions{UID: 0})
	if st != (RemoveStats{Files: 1, Bytes: 1, Refused: n}) {
		t.Errorf("stats = %+v", st)
	}
	if !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "10 more problems not listed") {
		t.Errorf("error = %v", err)
	}
	if got := strings.Count(err.Error(), "not removing"); got != maxErrors {
		t.Errorf("error lists %d refusals, want %d", got, maxErrors)
	}
}
