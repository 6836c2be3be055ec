// Package xdisplay decides, for both sides of ffl, which files of an X display may be removed:
// the lock /tmp/.X<N>-lock and the socket /tmp/.X11-unix/X<N>. After a SIGKILL an X server
// cannot remove them itself, and a stale lock makes every later server skip that display, so the
// launcher (after stopping a session) and the Epilog (after a killed launcher) remove them, with
// one rule: only files of the session's uid, and only with proof that no server runs on that
// display. "No lock file" proves nothing (xpra 3.1 starts Xvfb with -displayfd, which may leave
// none), so the proof is the kernel's: no listening unix socket is bound to the socket file's
// inode (sock_diag; /proc/net/unix where sock_diag is missing), and the lock, if any, names no
// live process of the uid.
//
// It imports only safefs and proc, so the user-side launcher links nothing of the root core.
package xdisplay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

const (
	// DefaultDir is where X servers keep their locks and socket directory (Xvfb hard-codes it).
	DefaultDir = "/tmp"
	// SocketDirName is the socket directory below Dir.
	SocketDirName = ".X11-unix"
	// SocketDirMode is the socket directory's mode: world-writable with the sticky bit, like /tmp.
	SocketDirMode = 0o1777
	// maxLock caps the lock file read ("%10d\n" is 11 bytes).
	maxLock = 64
)

// Parse parses an X display as recorded in a state file (":N", N a canonical decimal below
// 65536) and returns N; it is the only thing that turns a display into a file name.
func Parse(s string) (int, error) {
	d, ok := strings.CutPrefix(s, ":")
	if !ok || d == "" || len(d) > 5 || (d[0] == '0' && d != "0") {
		return 0, fmt.Errorf("display %q: want \":N\"", s)
	}
	n, err := strconv.Atoi(d)
	if err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != d {
		return 0, fmt.Errorf("display %q: want \":N\"", s)
	}
	return n, nil
}

// ParseLock parses the content of an X lock file: the server's PID, space-padded, one line.
func ParseLock(data []byte) (int, error) {
	s := strings.TrimSpace(string(data))
	if s == "" || len(s) > 10 {
		return 0, fmt.Errorf("X lock %q: not a pid", data)
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != s {
		return 0, fmt.Errorf("X lock %q: not a pid", data)
	}
	return pid, nil
}

// Result says what Remove did.
type Result struct {
	// Removed counts the files removed (or, with dry run, that would be).
	Removed int
	// Live lists the displays left alone because a server still runs there (or might: the
	// proof could not be had), in the order given.
	Live []int
	// Problems has one error per display that could not be judged or removed.
	Problems []error
}

// Err returns the problems as one error (nil when there were none).
func (r Result) Err() error {
	var m *multierror.Error
	for _, p := range r.Problems {
		m = oneline.Append(m, p)
	}
	return oneline.Err(m)
}

// Remove removes, for each display, its lock file and its socket when both are uid's (or
// missing) and its server is proven gone (see the package comment); dir "" means DefaultDir.
// With dryRun it only counts. uid 0 is refused: root's X servers are never ffl's.
func Remove(dir string, displays []int, uid int, dryRun bool) Result {
	var res Result
	if len(displays) == 0 {
		return res
	}
	if uid <= 0 {
		res.Problems = append(res.Problems, fmt.Errorf("X displays of uid %d: refused", uid))
		return res
	}
	if dir == "" {
		dir = DefaultDir
	}
	d, err := safefs.OpenTrusted(dir)
	if err != nil {
		res.Problems = append(res.Problems, fmt.Errorf("X lock dir %s: %w", dir, err))
		return res
	}
	defer d.Close()
	var sockets *os.File
	if f, err := safefs.OpenDirAt(d, SocketDirName); err == nil {
		sockets = f
		defer f.Close()
	} else if !safefs.IsNotExist(err) {
		res.Problems = append(res.Problems, fmt.Errorf("X socket dir %s: %w", filepath.Join(dir, SocketDirName), err))
	}
	var ls *listeners // read once, on the first socket that needs it
	for _, n := range displays {
		if n < 0 || n > 65535 {
			res.Problems = append(res.Problems, fmt.Errorf("display %d: out of range", n))
			continue
		}
		lock, sock, live, err := judge(d, sockets, dir, n, uid, &ls)
		if err != nil {
			res.Problems = append(res.Problems, fmt.Errorf("display :%d: %w: left alone", n, err))
			continue
		}
		if live {
			res.Live = append(res.Live, n)
			continue
		}
		for _, f := range []struct {
			dir  *os.File
			name string
			was  *safefs.Info
		}{{d, lockName(n), lock}, {sockets, socketName(n), sock}} {
			if f.was == nil {
				continue
			}
			if dryRun {
				res.Removed++
				continue
			}
			// The name must still be the inode that was judged (a new server may have
			// started meanwhile and made its own).
			if now, err := safefs.LstatAt(f.dir, f.name); err != nil || now.Ino != f.was.Ino || now.Dev != f.was.Dev {
				continue
			}
			if err := safefs.UnlinkAt(f.dir, f.name, 0); err == nil {
				res.Removed++
			} else if !safefs.IsNotExist(err) {
				res.Problems = append(res.Problems, err)
			}
		}
	}
	return res
}

func lockName(n int) string   { return ".X" + strconv.Itoa(n) + "-lock" }
func socketName(n int) string { return "X" + strconv.Itoa(n) }

// judge looks at display n's files. It returns the lock and socket that may go (nil: missing,
// or not uid's to remove) and live = true when the display must stay whole: its lock names a
// live process of uid, a listening socket is bound to its socket file, either file belongs to
// another user (the display number was reused), or liveness could not be established.
func judge(d, sockets *os.File, dir string, n, uid int, ls **listeners) (lock, sock *safefs.Info, live bool, err error) {
	fi, err := safefs.LstatAt(d, lockName(n))
	switch {
	case safefs.IsNotExist(err):
	case err != nil:
		return nil, nil, true, err
	case fi.UID != uid:
		return nil, nil, true, nil // another user's display now
	case !fi.IsRegular():
		return nil, nil, true, fmt.Errorf("lock %s: not a regular file (mode %#o)", filepath.Join(dir, lockName(n)), fi.Mode&0o170000)
	default:
		data, err := safefs.ReadFileCapped(d, lockName(n), maxLock)
		if err != nil {
			return nil, nil, true, err
		}
		if pid, perr := ParseLock(data); perr == nil {
			id, err := proc.Lookup(pid)
			switch {
			case err == nil && id.UID == uid:
				return nil, nil, true, nil // its server (or what holds its PID as uid) runs
			case err != nil && !errors.Is(err, proc.ErrGone):
				return nil, nil, true, err
			}
		} // garbage: no server wrote it; it only blocks the display
		lock = &fi
	}
	if sockets == nil {
		return lock, nil, false, nil
	}
	si, err := safefs.LstatAt(sockets, socketName(n))
	switch {
	case safefs.IsNotExist(err):
		return lock, nil, false, nil
	case err != nil:
		return nil, nil, true, err
	case si.UID != uid:
		return nil, nil, true, nil
	case !si.IsSocket():
		return lock, nil, false, nil // not a server's; not ours to remove either
	}
	if *ls == nil {
		*ls = readListeners()
	}
	listening, err := (*ls).bound(si, filepath.Join(dir, SocketDirName, socketName(n)))
	if err != nil {
		return nil, nil, true, fmt.Errorf("cannot tell whether a server listens on %s: %w", filepath.Join(dir, SocketDirName, socketName(n)), err)
	}
	if listening {
		return nil, nil, true, nil
	}
	return lock, &si, false, nil
}

// EnsureSocketDir creates <dir>/.X11-unix as root's 1777 when it is missing, and never touches
// it otherwise: an Xvfb started by a user would create it as that user, locking everyone else
// out. One that is not root's 1777 is reported (X servers of other users may then fail).
func EnsureSocketDir(dir string) error {
	if dir == "" {
		dir = DefaultDir
	}
	d, err := safefs.OpenTrusted(dir)
	if err != nil {
		return fmt.Errorf("X dir %s: %w", dir, err)
	}
	defer d.Close()
	path := filepath.Join(dir, SocketDirName)
	fi, err := safefs.LstatAt(d, SocketDirName)
	if err == nil {
		if !fi.IsDir() || fi.UID != 0 || fi.Perm() != SocketDirMode {
			return fmt.Errorf("%s exists but is not root's directory with mode 1777 (uid %d, mode %#o): left alone; X servers of other users may fail", path, fi.UID, fi.Perm())
		}
		return nil
	}
	if !safefs.IsNotExist(err) {
		return fmt.Errorf("%s: %w", path, err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s: missing, and only root should create it", path)
	}
	f, err := safefs.EnsureDirAt(d, SocketDirName, safefs.DirSpec{UID: 0, GID: 0, Mode: SocketDirMode, Exact: true})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
