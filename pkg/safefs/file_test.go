package safefs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

func TestWriteFileAtomic(t *testing.T) {
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	base := t.TempDir()
	build(t, base, "dir/", "outside=precious", "dir/link->"+filepath.Join(base, "outside"),
		"dir/busy/x=1", "dir/old=old content")
	d := mustOpenDir(t, filepath.Join(base, "dir"))

	t.Run("new file with exact perm", func(t *testing.T) {
		if err := WriteFileAtomic(d, "new", []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(base, "dir/new"))
		if err != nil || fi.Mode() != 0o644 {
			t.Fatalf("mode = %v (%v), want 0644 despite umask 077", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(base, "dir/new")); string(b) != "hello" {
			t.Errorf("content %q", b)
		}
	})
	t.Run("replaces by rename", func(t *testing.T) {
		var before, after unix.Stat_t
		if err := unix.Lstat(filepath.Join(base, "dir/old"), &before); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(d, "old", []byte("new content"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Lstat(filepath.Join(base, "dir/old"), &after); err != nil {
			t.Fatal(err)
		}
		if before.Ino == after.Ino {
			t.Error("file rewritten in place, not replaced")
		}
		if b, _ := os.ReadFile(filepath.Join(base, "dir/old")); string(b) != "new content" {
			t.Errorf("content %q", b)
		}
	})
	t.Run("symlink replaced, target untouched", func(t *testing.T) {
		if err := WriteFileAtomic(d, "link", []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(base, "dir/link"))
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("link is %v (%v), want a regular file", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(base, "outside")); string(b) != "precious" {
			t.Errorf("symlink target written: %q", b)
		}
	})
	t.Run("errors leave no temp file", func(t *testing.T) {
		before := listNames(t, filepath.Join(base, "dir"))
		tests := []struct {
			name    string
			perm    os.FileMode
			wantErr error
		}{
			{"busy", 0o600, unix.ENOTEMPTY}, // rename over a non-empty directory fails
			{"a/b", 0o600, ErrInvalidName},
			{"..", 0o600, ErrInvalidName},
			{"x", 0o600 | os.ModeSetuid, ErrBadMode},
			{strings.Repeat("n", 256), 0o600, unix.ENAMETOOLONG},
		}
		for _, tc := range tests {
			err := WriteFileAtomic(d, tc.name, []byte("data"), tc.perm)
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == unix.ENOTEMPTY && errors.Is(err, unix.EISDIR)) {
				t.Errorf("WriteFileAtomic(%.20q) = %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		if after := listNames(t, filepath.Join(base, "dir")); strings.Join(after, "/") != strings.Join(before, "/") {
			t.Errorf("directory changed: %q, want %q", after, before)
		}
	})
	t.Run("ENOSPC leaves no temp file", func(t *testing.T) {
		testutil.RequireRoot(t, "mounts a tiny tmpfs")
		small := filepath.Join(base, "small")
		if err := os.Mkdir(small, 0o700); err != nil {
			t.Fatal(err)
		}
		mountTmpfs(t, small, "size=64k")
		sd := mustOpenDir(t, small)
		err := WriteFileAtomic(sd, "state.json", bytes.Repeat([]byte("x"), 1<<20), 0o600)
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("WriteFileAtomic on a full fs = %v, want ENOSPC", err)
		}
		if left := listNames(t, small); len(left) != 0 {
			t.Errorf("left behind: %q", left)
		}
	})
	t.Run("readers never see a torn file", func(t *testing.T) {
		a := bytes.Repeat([]byte("a"), 64<<10)
		b := bytes.Repeat([]byte("b"), 128<<10)
		if err := WriteFileAtomic(d, "state", a, 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		var bad []string
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := ReadFileCapped(d, "state", 1<<20)
				if err != nil || (!bytes.Equal(got, a) && !bytes.Equal(got, b)) {
					bad = append(bad, fmt.Sprintf("len %d: %v", len(got), err))
				}
			}
		}()
		for i := 0; i < 200; i++ {
			data := a
			if i%2 == 0 {
				data = b
			}
			if err := WriteFileAtomic(d, "state", data, 0o600); err != nil {
				t.Error(err)
				break
			}
		}
		close(done)
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("%d torn or failed reads, first: %s", len(bad), bad[0])
		}
		for _, n := range listNames(t, filepath.Join(base, "dir")) {
			if strings.Contains(n, ".tmp-") {
				t.Errorf("temp file left: %q", n)
			}
		}
	})
}

func TestReadFileCapped(t *testing.T) {
	base := t.TempDir()
	build(t, base, "small=hello", "empty=", "fifo|", "dir/", "link->small", "outside/secret=s")
	huge, err := os.Create(filepath.Join(base, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	if err := huge.Truncate(1 << 34); err != nil { // sparse: reading it all would take minutes
		t.Fatal(err)
	}
	huge.Close()
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(base, "dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
	}
	d := mustOpenDir(t, base)
	proc := mustOpenDir(t, fmt.Sprintf("/proc/%d", os.Getpid())) // /proc/self is a symlink

	tests := []struct {
		dir     *os.File
		name    string
		max     int64
		want    string
		wantErr error
	}{
		{d, "small", 100, "hello", nil},
		{d, "small", 5, "hello", nil},
		{d, "small", 4, "", ErrTooLarge},
		{d, "empty", 0, "", nil},
		{d, "huge", 64 << 10, "", ErrTooLarge},
		{d, "fifo", 100, "", ErrNotRegular},
		{d, "dir", 100, "", ErrNotRegular},
		{d, "link", 100, "", ErrSymlink},
		{d, "dev", 100, "", ErrNotRegular},
		{d, "missing", 100, "", os.ErrNotExist},
		{d, "outside/secret", 100, "", ErrInvalidName},
		{d, "small", -1, "", os.ErrInvalid},
		// procfs reports size 0: the cap must hold while reading.
		{proc, "status", 10, "", ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dev" && os.Geteuid() != 0 {
				t.Skip("mknod needs root")
			}
			got, err := ReadFileCapped(tc.dir, tc.name, tc.max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ReadFileCapped(%q, %d) = %q, %v; want %v", tc.name, tc.max, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("ReadFileCapped(%q, %d) = %q, %v; want %q", tc.name, tc.max, got, err, tc.want)
			}
		})
	}
	// The FIFO was never opened for reading: a writer finds no reader.
	if fd, err := unix.Open(filepath.Join(base, "fifo"), unix.O_WRONLY|unix.O_NONBLOCK, 0); err != unix.ENXIO {
		if err == nil {
			unix.Close(fd)
		}
		t.Errorf("open FIFO for writing = %v, want ENXIO (no reader)", err)
	}
	// A large /proc file that fits is read whole.
	got, err := ReadFileCapped(proc, "status", 1<<20)
	if err != nil || !bytes.HasPrefix(got, []byte("Name:")) || !bytes.Contains(got, []byte("\nPid:")) {
		t.Errorf("ReadFileCapped(/proc/self/status) = %.40q, %v", got, err)
	}
}

func TestOnlyWritableBy(t *testing.T) {
	for _, c := range []struct {
		owner, gid, mode uint32
		uid              int
		want             bool
	}{
		{0, 0, 0o755, 1000, true},
		{0, 0, 0o775, -1, true},     // group root
		{0, 50, 0o775, -1, false},   // group staff: its members
		{0, 0, 0o1777, 1000, false}, // /tmp
		{1000, 1000, 0o700, 1000, true},
		{1000, 1000, 0o700, -1, false}, // root only
		{1001, 1001, 0o755, 1000, false},
	} {
		if got := OnlyWritableBy(c.owner, c.gid, c.mode, c.uid); got != c.want {
			t.Errorf("owner %d gid %d mode %#o uid %d: %v, want %v", c.owner, c.gid, c.mode, c.uid, got, c.want)
		}
	}
}
