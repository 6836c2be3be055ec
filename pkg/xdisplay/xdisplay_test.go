package xdisplay

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The uids of these tests' X servers (files chowned to them; no account is needed).
const (
	owner = 4343
	other = 4344
)

// xdir is a fresh /tmp look-alike with .X11-unix, both 1777.
func xdir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the display files belong to other uids")
	}
	d := t.TempDir()
	for _, p := range []string{d, filepath.Join(d, SocketDirName)} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func writeLock(t *testing.T, dir string, n, pid, uid int) string {
	t.Helper()
	p := filepath.Join(dir, lockName(n))
	if err := os.WriteFile(p, []byte(fmt.Sprintf("%10d\n", pid)), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
	return p
}

// socket binds the display's socket as uid; listening keeps a listener on it (closed at cleanup).
func socket(t *testing.T, dir string, n, uid int, listening bool) string {
	t.Helper()
	p := filepath.Join(dir, SocketDirName, socketName(n))
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if listening {
		t.Cleanup(func() { ln.Close() })
	} else {
		ln.Close()
	}
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
	return p
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// liveProcess starts a process of uid and returns its pid.
func liveProcess(t *testing.T, uid int) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}

func TestRemove(t *testing.T) {
	const dead = 999_999_999
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, d string) []string // files
		gone  bool                                  // the files must go (else stay)
	}{
		{"stale lock and socket", func(t *testing.T, d string) []string {
			return []string{writeLock(t, d, 7, dead, owner), socket(t, d, 7, owner, false)}
		}, true},
		{"garbage lock, no socket", func(t *testing.T, d string) []string {
			p := filepath.Join(d, lockName(7))
			if err := os.WriteFile(p, []byte("garbage"), 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
			return []string{p}
		}, true},
		{"socket only, no server", func(t *testing.T, d string) []string {
			return []string{socket(t, d, 7, owner, false)}
		}, true},
		{"live server without a lock (Xvfb -displayfd)", func(t *testing.T, d string) []string {
			return []string{socket(t, d, 7, owner, true)}
		}, false},
		{"stale lock but a listening socket", func(t *testing.T, d string) []string {
			return []string{writeLock(t, d, 7, dead, owner), socket(t, d, 7, owner, true)}
		}, false},
		{"lock of a live process of the uid", func(t *testing.T, d string) []string {
			return []string{writeLock(t, d, 7, liveProcess(t, owner), owner), socket(t, d, 7, owner, false)}
		}, false},
		{"lock of another user", func(t *testing.T, d string) []string {
			return []string{writeLock(t, d, 7, dead, other), socket(t, d, 7, owner, false)}
		}, false},
		{"socket of another user", func(t *testing.T, d string) []string {
			return []string{writeLock(t, d, 7, dead, owner), socket(t, d, 7, other, false)}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := xdir(t)
			files := tc.setup(t, d)
			res := Remove(d, []int{7}, owner, false)
			if res.Err() != nil {
				t.Errorf("problems: %v", res.Err())
			}
			for _, f := range files {
				if exists(f) == tc.gone {
					t.Errorf("%s: exists = %v, want %v (result %+v)", f, exists(f), !tc.gone, res)
				}
			}
			if !tc.gone && (len(res.Live) != 1 || res.Removed != 0) {
				t.Errorf("result %+v: want display 7 live, nothing removed", res)
			}
		})
	}
}

func TestRemoveDryRunAndRefusals(t *testing.T) {
	d := xdir(t)
	lock := writeLock(t, d, 8, 999_999_999, owner)
	sock := socket(t, d, 8, owner, false)
	if res := Remove(d, []int{8}, owner, true); res.Removed != 2 || !exists(lock) || !exists(sock) {
		t.Errorf("dry run: %+v, lock %v socket %v", res, exists(lock), exists(sock))
	}
	if res := Remove(d, []int{8}, 0, false); res.Err() == nil || !exists(lock) {
		t.Errorf("uid 0 accepted: %+v", res)
	}
	if res := Remove(d, []int{8}, other, false); res.Removed != 0 || !exists(lock) || !exists(sock) {
		t.Errorf("another uid removed the files: %+v", res)
	}
}

func TestDiagListenersSeesABoundSocket(t *testing.T) {
	d := xdir(t)
	p := socket(t, d, 9, owner, true)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	vfs, err := diagListeners()
	if err != nil {
		t.Skipf("no unix sock_diag here: %v", err)
	}
	dev := unix.Major(st.Dev)<<20 | unix.Minor(st.Dev)
	if !vfs[vfsKey{ino: uint32(st.Ino), dev: dev}] {
		t.Errorf("listener on %s (ino %d) not in the dump (%d listeners)", p, st.Ino, len(vfs))
	}
	paths, err := procNetUnixListeners("/proc/net/unix")
	if err != nil || !paths[p] {
		t.Errorf("/proc/net/unix: %v, has %s: %v", err, p, paths[p])
	}
}

func TestParseProcNetUnix(t *testing.T) {
	in := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 45761 /tmp/.X11-unix/X0\n" +
		"0000000000000000: 00000002 00000000 00000000 0001 03 45762 /tmp/.X11-unix/X1\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 45763 @/tmp/.X11-unix/X0\n" +
		"0000000000000000: 00000002 00000000 00000000 0002 01 45764\n"
	got, err := parseProcNetUnix(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["/tmp/.X11-unix/X0"] || got["/tmp/.X11-unix/X1"] {
		t.Errorf("got %v", got)
	}
	if _, err := parseProcNetUnix(strings.NewReader("garbage\n")); err == nil {
		t.Error("no header accepted")
	}
}

func TestEnsureSocketDir(t *testing.T) {
	d := xdir(t)
	x := filepath.Join(d, "x2")
	if err := os.Mkdir(x, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(x, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSocketDir(x); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(x, SocketDirName))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf(".X11-unix: %v uid %d", fi.Mode(), st.Uid)
	}
	if err := EnsureSocketDir(x); err != nil {
		t.Errorf("second run: %v", err)
	}
	// A user's .X11-unix is reported and never changed.
	x3 := filepath.Join(d, "x3")
	if err := os.Mkdir(x3, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(x3, SocketDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(x3, SocketDirName), owner, owner); err != nil {
		t.Fatal(err)
	}
	if err := EnsureSocketDir(x3); err == nil || !strings.Contains(err.Error(), "left alone") {
		t.Errorf("user's .X11-unix: %v", err)
	}
	if fi, _ := os.Lstat(filepath.Join(x3, SocketDirName)); fi.Sys().(*syscall.Stat_t).Uid != owner || fi.Mode().Perm() != 0o700 {
		t.Error("user's .X11-unix changed")
	}
}
