package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/go-multierror"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/oneline"
)

// DefaultRoot is where procfs is mounted; the package-level functions read it.
const DefaultRoot = "/proc"

// Read caps. Real stat lines are well under 1 KiB and the "Uid:" line is the ninth line of status,
// so 4 KiB holds both with room to spare (environ's cap is MarkerQuery.EnvironCap).
const (
	maxStatSize   = 4 << 10
	maxStatusRead = 4 << 10
	maxBootIDSize = 64
)

// FS reads a procfs tree. Its only purpose is testability: Root points at a fixture directory
// laid out like /proc (PID/stat, PID/status, PID/environ, sys/kernel/random/boot_id). The zero
// value, like the package-level functions, reads DefaultRoot.
type FS struct {
	// Root is the procfs mount point; "" means DefaultRoot.
	Root string
}

func (fs FS) root() string {
	if fs.Root == "" {
		return DefaultRoot
	}
	return fs.Root
}

// pidDir is an open /proc/PID directory. Files opened relative to it belong to the process that
// held PID when the directory was opened, and fail with ESRCH or ENOENT once that process has
// been reaped, even if the PID has been reused since: stat, status and environ read through one
// pidDir always describe one process.
type pidDir struct {
	pid int
	fd  int
}

// isGoneErrno reports whether err means "no such process" as procfs says it.
func isGoneErrno(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// goneOr wraps err with ErrGone when it means the process vanished, keeping the errno too.
func goneOr(pid int, what string, err error) error {
	if isGoneErrno(err) {
		return fmt.Errorf("pid %d: %s: %w (%w)", pid, what, ErrGone, err)
	}
	return fmt.Errorf("pid %d: %s: %w", pid, what, err)
}

func (fs FS) openPID(pid int) (pidDir, error) {
	if pid <= 0 {
		return pidDir{}, fmt.Errorf("pid %d: not a process id", pid)
	}
	path := filepath.Join(fs.root(), strconv.Itoa(pid))
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return pidDir{}, goneOr(pid, "open "+path, err)
	}
	return pidDir{pid: pid, fd: fd}, nil
}

func (d pidDir) close() { _ = unix.Close(d.fd) }

// read reads up to len(buf) bytes of the named file into buf and returns them; a longer file is
// cut at len(buf) and truncated says so.
func (d pidDir) read(name string, buf []byte) (data []byte, truncated bool, err error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false, goneOr(d.pid, "open "+name, err)
	}
	defer unix.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, false, goneOr(d.pid, "read "+name, err)
		}
		if m == 0 {
			return buf[:n], false, nil
		}
		n += m
	}
	// Full buffer: probe for one more byte to tell "exactly full" from "cut".
	var one [1]byte
	for {
		m, err := unix.Read(fd, one[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return buf[:n], err == nil && m > 0, nil
	}
}

// stat reads and parses the directory's stat and checks it names the PID we opened.
func (d pidDir) stat(buf []byte) (Stat, error) {
	data, truncated, err := d.read("stat", buf)
	if err != nil {
		return Stat{}, err
	}
	if truncated {
		return Stat{}, fmt.Errorf("pid %d: stat longer than %d bytes", d.pid, len(buf))
	}
	if len(data) == 0 {
		// procfs returns an empty read for a task torn down between open and read.
		return Stat{}, fmt.Errorf("pid %d: empty stat: %w", d.pid, ErrGone)
	}
	st, err := ParseStat(data)
	if err != nil {
		return Stat{}, fmt.Errorf("pid %d: %w", d.pid, err)
	}
	if st.PID != d.pid {
		return Stat{}, fmt.Errorf("pid %d: stat names pid %d", d.pid, st.PID)
	}
	return st, nil
}

// uid reads the real uid from the directory's status. A PID that names a thread rather than a
// process (/proc/TID exists for every thread, unlisted) is no process: ErrGone.
func (d pidDir) uid(buf []byte) (int, error) {
	data, _, err := d.read("status", buf)
	if err != nil {
		return 0, err
	}
	tgid, uid, err := parseStatus(data)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", d.pid, err)
	}
	if tgid != d.pid {
		return 0, fmt.Errorf("pid %d: a thread of process %d, not a process: %w", d.pid, tgid, ErrGone)
	}
	return uid, nil
}

// ReadStat reads and parses PID's stat file. A missing process yields an error wrapping ErrGone.
func (fs FS) ReadStat(pid int) (Stat, error) {
	d, err := fs.openPID(pid)
	if err != nil {
		return Stat{}, err
	}
	defer d.close()
	return d.stat(make([]byte, maxStatSize))
}

// ReadStat reads /proc/PID/stat; see FS.ReadStat.
func ReadStat(pid int) (Stat, error) { return FS{}.ReadStat(pid) }

// inspect returns stat and real uid of pid, both read through one pidDir (one process).
// Zombies are returned as they are; callers decide.
func (fs FS) inspect(pid int) (Stat, int, error) {
	d, err := fs.openPID(pid)
	if err != nil {
		return Stat{}, 0, err
	}
	defer d.close()
	st, err := d.stat(make([]byte, maxStatSize))
	if err != nil {
		return Stat{}, 0, err
	}
	uid, err := d.uid(make([]byte, maxStatusRead))
	if err != nil {
		return Stat{}, 0, err
	}
	return st, uid, nil
}

// Lookup returns the Identity of the process now running as pid, to be recorded (state file,
// supervisor.json) and handed to Signal later. A missing PID or a zombie yields ErrGone: a
// zombie's identity is not worth recording, it cannot be signalled and will never run again.
func (fs FS) Lookup(pid int) (Identity, error) {
	st, uid, err := fs.inspect(pid)
	if err != nil {
		return Identity{}, err
	}
	if st.Zombie() {
		return Identity{}, fmt.Errorf("pid %d: zombie: %w", pid, ErrGone)
	}
	return Identity{PID: pid, StartTime: st.StartTime, UID: uid}, nil
}

// Lookup returns the Identity of pid from /proc; see FS.Lookup.
func Lookup(pid int) (Identity, error) { return FS{}.Lookup(pid) }

// Alive reports whether id.PID is still the recorded process (same start time and real uid) and
// not a zombie. It answers false only when that is proven (no such PID, another process, a
// zombie); when /proc cannot be read for another reason it answers true, because "cannot tell"
// must not let a cleanup path believe a process is gone.
func (fs FS) Alive(id Identity) bool {
	st, uid, err := fs.inspect(id.PID)
	if err != nil {
		return !errors.Is(err, ErrGone) && id.PID > 0
	}
	return !st.Zombie() && st.StartTime == id.StartTime && uid == id.UID
}

// Alive reports whether id is still running; see FS.Alive.
func (id Identity) Alive() bool { return FS{}.Alive(id) }

// BootID returns the kernel's boot id (sys/kernel/random/boot_id), a UUID that changes at every
// boot. State files record it so that a record written before a reboot, whose PIDs and start
// times mean nothing any more, is recognised as stale instead of acted upon.
func (fs FS) BootID() (string, error) {
	path := filepath.Join(fs.root(), "sys", "kernel", "random", "boot_id")
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBootIDSize+1))
	if err != nil {
		return "", fmt.Errorf("boot id: read %s: %w", path, err)
	}
	id := string(bytes.TrimSpace(data))
	if !isUUID(id) {
		return "", fmt.Errorf("boot id: %s holds %q, not a UUID", path, id)
	}
	return id, nil
}

// BootID returns /proc/sys/kernel/random/boot_id; see FS.BootID.
func BootID() (string, error) { return FS{}.BootID() }

// isUUID accepts the kernel's boot_id format: 8-4-4-4-12 lowercase hex digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// scanner walks the PID directories of one procfs tree, reusing its read buffers.
type scanner struct {
	fs        FS
	statBuf   []byte
	statusBuf []byte
}

func (fs FS) newScanner() *scanner {
	return &scanner{fs: fs, statBuf: make([]byte, maxStatSize), statusBuf: make([]byte, maxStatusRead)}
}

// walk calls fn for every process of the tree with its open directory, stat and (when withUID)
// real uid. Processes that vanish mid-walk are skipped silently: that is normal. Entries that
// cannot be read for another reason are skipped too, and reported together in the returned error;
// callers get every process that could be read either way.
func (s *scanner) walk(withUID bool, fn func(d pidDir, st Stat, uid int)) error {
	return s.walkCtx(context.Background(), withUID, nil, fn)
}

// walkCtx is walk that stops when ctx is done (checked between processes) and skips the PIDs
// for which want (if set) says false before opening anything.
func (s *scanner) walkCtx(ctx context.Context, withUID bool, want func(pid int) bool, fn func(d pidDir, st Stat, uid int)) error {
	dir, err := os.Open(s.fs.root())
	if err != nil {
		return fmt.Errorf("scan %s: %w", s.fs.root(), err)
	}
	defer dir.Close()
	var errs *multierror.Error
	for ctx.Err() == nil {
		names, rerr := dir.Readdirnames(512)
		for _, name := range names {
			if ctx.Err() != nil {
				break
			}
			pid, err := parseDecimal([]byte(name))
			if err != nil || pid == 0 {
				continue // not a PID directory: self, sys, cpuinfo, ...
			}
			if want != nil && !want(pid) {
				continue
			}
			if err := s.one(pid, withUID, fn); err != nil && !errors.Is(err, ErrGone) {
				errs = oneline.Append(errs, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			errs = oneline.Append(errs, fmt.Errorf("scan %s: %w", s.fs.root(), rerr))
			break
		}
	}
	return oneline.Err(errs)
}

func (s *scanner) one(pid int, withUID bool, fn func(d pidDir, st Stat, uid int)) error {
	d, err := s.fs.openPID(pid)
	if err != nil {
		return err
	}
	defer d.close()
	st, err := d.stat(s.statBuf)
	if err != nil {
		return err
	}
	uid := -1
	if withUID {
		if uid, err = d.uid(s.statusBuf); err != nil {
			return err
		}
	}
	fn(d, st, uid)
	return nil
}

// Scan walks the tree once and returns every process for which keep(stat, real uid) is true; a
// nil keep keeps all. It reads only stat and status (no environ), so it is cheap enough to run in
// a loop. Processes vanishing mid-scan are skipped. The result is always usable: a non-nil error
// lists entries that could not be read for other reasons (they are missing from the result).
// One scan is not an atomic snapshot; cleanup paths scan again until nothing is found.
func (fs FS) Scan(keep func(st Stat, uid int) bool) ([]Identity, error) {
	var ids []Identity
	err := fs.newScanner().walk(true, func(d pidDir, st Stat, uid int) {
		if keep == nil || keep(st, uid) {
			ids = append(ids, Identity{PID: st.PID, StartTime: st.StartTime, UID: uid})
		}
	})
	return ids, err
}

// Scan walks /proc; see FS.Scan.
func Scan(keep func(st Stat, uid int) bool) ([]Identity, error) { return FS{}.Scan(keep) }

// FindByMarker returns the live processes of real uid uid whose environment holds an entry
// NAME=VALUE with VALUE starting with valuePrefix: FindMarked with one prefix and no context.
// An empty valuePrefix matches every value of NAME.
func (fs FS) FindByMarker(uid int, name, valuePrefix string) ([]Identity, error) {
	var ids []Identity
	_, err := fs.FindMarked(context.Background(), MarkerQuery{UID: uid, Name: name, Prefixes: []string{valuePrefix}},
		func(id Identity, _ int) { ids = append(ids, id) })
	return ids, err
}

// FindByMarkers is FindByMarker for many prefixes in ONE /proc scan: it returns, for every
// process of uid whose NAME value starts with one of prefixes, the index of the first such
// prefix. Cleaning up many jobs (a sweep of thousands of stale sessions) then costs one scan,
// not one per job.
func (fs FS) FindByMarkers(uid int, name string, prefixes []string) (map[Identity]int, error) {
	out := map[Identity]int{}
	_, err := fs.FindMarked(context.Background(), MarkerQuery{UID: uid, Name: name, Prefixes: prefixes},
		func(id Identity, i int) { out[id] = i })
	return out, err
}

// FindByMarkers searches /proc; see FS.FindByMarkers.
func FindByMarkers(uid int, name string, prefixes []string) (map[Identity]int, error) {
	return FS{}.FindByMarkers(uid, name, prefixes)
}

// FindByMarker searches /proc; see FS.FindByMarker.
func FindByMarker(uid int, name, valuePrefix string) ([]Identity, error) {
	return FS{}.FindByMarker(uid, name, valuePrefix)
}

// FindByArgument returns the live processes of uid (uid 0 is refused: never root's) whose
// command line has arg as one whole argument after the program's name; only the first
// maxCmdlineRead bytes of each are read, and ctx ends the walk. For an X server that carries no
// marker (xpra 6 starts Xvfb with an environment of its own) but names a session's own file
// (-auth XAUTHORITY) on its command line.
func (fs FS) FindByArgument(ctx context.Context, uid int, arg string) ([]Identity, error) {
	if uid <= 0 {
		return nil, fmt.Errorf("processes of uid %d: refused", uid)
	}
	var ids []Identity
	want := []byte("\x00" + arg + "\x00")
	buf := make([]byte, maxCmdlineRead)
	err := fs.newScanner().walkCtx(ctx, true, nil, func(d pidDir, st Stat, u int) {
		if u != uid || st.Zombie() {
			return
		}
		data, _, err := d.read("cmdline", buf)
		if err == nil && bytes.Contains(data, want) {
			ids = append(ids, Identity{PID: st.PID, StartTime: st.StartTime, UID: u})
		}
	})
	return ids, err
}

// FindByArgument searches /proc; see FS.FindByArgument.
func FindByArgument(ctx context.Context, uid int, arg string) ([]Identity, error) {
	return FS{}.FindByArgument(ctx, uid, arg)
}

// Children returns the live (non-zombie) direct children of ppid.
func (fs FS) Children(ppid int) ([]Identity, error) {
	return fs.Scan(func(st Stat, _ int) bool { return st.PPID == ppid && !st.Zombie() })
}

// Children scans /proc; see FS.Children.
func Children(ppid int) ([]Identity, error) { return FS{}.Children(ppid) }
