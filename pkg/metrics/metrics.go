// Package metrics keeps the counters an admin alerts on for ffl's root hooks (the Epilog, the
// Prolog and the sweep) in a node_exporter textfile-collector file, so a fleet's cleanup is a
// Prometheus query instead of a log line nobody aggregates.
//
// Every hook run is its own short-lived process, so the counters live in the file itself: a run
// takes an exclusive lock next to the file, reads the counts the file holds, adds its own,
// writes the result to a temporary file in the same directory and renames it over the old one.
// node_exporter therefore always reads a whole file (old or new, never half of one), and two
// Epilogs ending at once on one node both count. A file that is missing, or holds lines this
// package did not write, starts those series from zero: Prometheus' rate() and increase() treat
// that as a counter reset, which is what it is.
//
// The file's directory must exist (node_exporter's, typically /var/lib/prometheus/node-exporter,
// made by the prometheus-node-exporter package): a missing directory is ErrNoDirectory, which the
// hooks treat as "metrics are off on this node". A directory that any user may write is refused
// (ErrUnsafeDirectory): any user could fake the numbers there. All file operations are relative
// to the directory's descriptor, never follow a symlink and create with O_EXCL.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Hook names the root-run command a Run is about; it is the "hook" label of every series.
type Hook string

// The hooks that record metrics.
const (
	HookEpilog Hook = "epilog"
	HookProlog Hook = "prolog"
	HookSweep  Hook = "sweep"
)

// hooks lists every Hook: a series with another hook label is not this package's.
var hooks = []Hook{HookEpilog, HookProlog, HookSweep}

// Run is what one hook run did: the numbers of its summary log line.
type Run struct {
	Hook Hook
	// Jobs counts the jobs the run looked at (1 for an Epilog or Prolog with a usable job).
	Jobs int
	// JobsWithLeftovers counts those that had something to end or remove (an Epilog off its
	// fast path that found a session, a process or a directory of the job).
	JobsWithLeftovers int
	// Sessions counts the sessions ended or removed.
	Sessions int
	// Termed and Killed count SIGTERMs and SIGKILLs delivered; Left counts processes still alive
	// at the end.
	Termed, Killed, Left int
	// Refused counts processes and files left alone on principle (root's, another user's, no
	// marker, a mount point).
	Refused int
	// Dirs and Files count the trees and the entries inside them removed; Bytes their size.
	Dirs, Files int
	Bytes       int64
	// Errors counts the problems logged: ffl's own failures, what the cleanup-errors alert is
	// for. Another user's squats and plants are Foreign, never Errors.
	Errors int
	// Foreign counts entries of other users found where ffl keeps its own (squats, plants):
	// left alone, a user's doing.
	Foreign int
	// Duration is how long the run took.
	Duration time.Duration
	// TimedOut is true when the run stopped at its time bound (--timeout, epilog.timeout).
	TimedOut bool
}

// DurationBuckets are the upper bounds, in seconds, of the run-duration histogram: from a fast
// path's milliseconds to a sweep's ten-minute bound.
var DurationBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// bounds is DurationBuckets and +Inf, in a slice of its own.
func bounds() []float64 {
	return append(append(make([]float64, 0, len(DurationBuckets)+1), DurationBuckets...), math.Inf(1))
}

// Errors of Record.
var (
	// ErrNoDirectory means the file's directory does not exist: metrics are off on this node.
	ErrNoDirectory = errors.New("directory does not exist")
	// ErrUnsafeDirectory means the directory is not a directory, or a user other than root may
	// write to it (a non-root owner, group-writable by a non-root group, world-writable): that
	// user could replace the file root writes, or plant a symlink for the rename.
	ErrUnsafeDirectory = errors.New("refusing a directory a user other than root may write (chown root:root, chmod go-w)")
	// ErrLocked means another run held the lock until the context ended.
	ErrLocked = errors.New("lock held by another run")
)

// MaxFileSize caps how much of an existing file is read: ffl's file is a few kilobytes.
const MaxFileSize = 1 << 20

// Record adds run to the counters in the file at path (a "*.prom" file in node_exporter's
// textfile directory) and returns when the new file is in place. ctx bounds the wait for the
// lock; the reads and writes are of a local directory and are not interruptible. now is the
// time written as ffl_last_run_timestamp_seconds.
func Record(ctx context.Context, path string, run Run, now time.Time) error {
	if !validHook(run.Hook) {
		return fmt.Errorf("metrics: unknown hook %q", run.Hook)
	}
	dirPath, name := filepath.Split(path)
	if name == "" || !filepath.IsAbs(path) {
		return fmt.Errorf("metrics file %q: must be an absolute file name", path)
	}
	dir, err := openDir(dirPath)
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	defer dir.Close()
	unlock, err := lock(ctx, dir, "."+name+".lock")
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	defer unlock()

	s, err := readSeries(dir, name)
	if err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	s.add(run, now)
	if err := writeAtomic(dir, name, s.render()); err != nil {
		return fmt.Errorf("metrics file %s: %w", path, err)
	}
	return nil
}

func validHook(h Hook) bool {
	for _, k := range hooks {
		if h == k {
			return true
		}
	}
	return false
}

// openDir opens the directory (no symlink as its last component) and refuses one that a user
// other than root may write (safefs.OnlyWritableBy): node_exporter's textfile directory is
// root's.
func openDir(path string) (*os.File, error) {
	fd, err := unix.Open(filepath.Clean(path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", path, ErrNoDirectory)
		}
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: not a directory (or a symlink): %w", path, ErrUnsafeDirectory)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	dir := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		dir.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	// Root (the hooks) accepts a directory only root can write; a process of another uid (a
	// test) one only it and root can write.
	if !safefs.OnlyWritableBy(st.Uid, st.Gid, st.Mode, os.Geteuid()) {
		dir.Close()
		return nil, fmt.Errorf("%s (owner uid %d, group %d, mode %04o): %w", path, st.Uid, st.Gid, st.Mode&0o7777, ErrUnsafeDirectory)
	}
	return dir, nil
}

// lockPoll is how often a held lock is tried again.
const lockPoll = 10 * time.Millisecond

// lock takes an exclusive flock on name in dir (created 0600 when missing), trying again until
// ctx ends. The lock file is separate from the metrics file because the rename replaces that.
func lock(ctx context.Context, dir *os.File, name string) (unlock func(), err error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("lock file %s: not a regular file", name)
	}
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { unix.Close(fd) }, nil // closing releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, fmt.Errorf("%s: %w (%v)", name, ErrLocked, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// readSeries reads the counts of an existing file; a missing file is an empty set.
func readSeries(dir *os.File, name string) (series, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return series{}, nil
	}
	if errors.Is(err, unix.ELOOP) {
		return series{}, nil // a symlink: replaced by the rename, never read
	}
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > MaxFileSize {
		return series{}, nil // not ours to read; the rename replaces it
	}
	buf := make([]byte, st.Size()+1)
	n, _ := f.Read(buf)
	return parse(string(buf[:min(n, MaxFileSize)])), nil
}

// writeAtomic writes data to a new temporary file in dir (a name node_exporter ignores: it
// reads only *.prom), makes it durable and renames it to name.
func writeAtomic(dir *os.File, name string, data []byte) error {
	dfd := int(dir.Fd())
	tmp := fmt.Sprintf(".%s.%d.%x.tmp", name, os.Getpid(), rand.Uint32())
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(data)
	if werr == nil {
		werr = unix.Fchmod(fd, 0o644) // whatever the umask: node_exporter runs as its own user
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(dfd, tmp, dfd, name)
	}
	if werr != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", name, werr)
	}
	_ = unix.Fsync(dfd) // the rename itself durable; a failure here loses at most this run
	return nil
}

// family is one metric of the file: its name, type, help text and the labels of its series.
type family struct {
	name, typ, help string
	// label, with values, is the second label after hook (outcome); "" for none.
	label  string
	values []string
}

// families is every metric ffl writes, in the order they appear in the file.
var families = []family{
	{name: "ffl_runs_total", typ: "counter", help: "Runs of the hook."},
	{name: "ffl_jobs_total", typ: "counter", help: "Jobs the hook looked at."},
	{name: "ffl_jobs_with_leftovers_total", typ: "counter", help: "Jobs that left ffl processes or files for the hook to end or remove."},
	{name: "ffl_sessions_cleaned_total", typ: "counter", help: "ffl sessions ended or removed."},
	{name: "ffl_processes_total", typ: "counter", help: "Leftover processes by outcome: termed (SIGTERM sent), killed (SIGKILL sent), left (still alive at the end).", label: "outcome", values: []string{"termed", "killed", "left"}},
	{name: "ffl_refused_total", typ: "counter", help: "Processes and files left alone on principle (root's, another user's, without the job's marker, a mount point)."},
	{name: "ffl_dirs_removed_total", typ: "counter", help: "Job and session directory trees removed."},
	{name: "ffl_files_removed_total", typ: "counter", help: "Entries removed inside those trees."},
	{name: "ffl_bytes_freed_total", typ: "counter", help: "Size of the regular files removed, in bytes."},
	{name: "ffl_errors_total", typ: "counter", help: "Problems met and logged (each is a warning line in the hook's log)."},
	{name: "ffl_foreign_total", typ: "counter", help: "Entries of other users found where ffl keeps its own (a squatted ffl-<uid>, planted ffl-<n> dirs): left alone, a user's doing, not an error of ffl's."},
	{name: "ffl_timeouts_total", typ: "counter", help: "Runs that stopped at their time bound (epilog.timeout, --timeout)."},
	{name: "ffl_run_duration_seconds", typ: "histogram", help: "How long one run of the hook took."},
	{name: "ffl_last_run_timestamp_seconds", typ: "gauge", help: "When the hook last finished a run (Unix time)."},
}

// series maps a series, written exactly as in the file ("name{labels}"), to its value.
type series map[string]float64

func key(name string, h Hook, extra ...string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(`{hook="`)
	b.WriteString(string(h))
	b.WriteByte('"')
	for i := 0; i+1 < len(extra); i += 2 {
		b.WriteString("," + extra[i] + `="` + extra[i+1] + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

// le renders a bucket bound the way Prometheus client libraries do.
func le(b float64) string {
	if math.IsInf(b, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(b, 'g', -1, 64)
}

// add folds one run into the counts.
func (s series) add(r Run, now time.Time) {
	h := r.Hook
	s[key("ffl_runs_total", h)]++
	s[key("ffl_jobs_total", h)] += float64(r.Jobs)
	s[key("ffl_jobs_with_leftovers_total", h)] += float64(r.JobsWithLeftovers)
	s[key("ffl_sessions_cleaned_total", h)] += float64(r.Sessions)
	s[key("ffl_processes_total", h, "outcome", "termed")] += float64(r.Termed)
	s[key("ffl_processes_total", h, "outcome", "killed")] += float64(r.Killed)
	s[key("ffl_processes_total", h, "outcome", "left")] += float64(r.Left)
	s[key("ffl_refused_total", h)] += float64(r.Refused)
	s[key("ffl_dirs_removed_total", h)] += float64(r.Dirs)
	s[key("ffl_files_removed_total", h)] += float64(r.Files)
	s[key("ffl_bytes_freed_total", h)] += float64(r.Bytes)
	s[key("ffl_errors_total", h)] += float64(r.Errors)
	s[key("ffl_foreign_total", h)] += float64(r.Foreign)
	if r.TimedOut {
		s[key("ffl_timeouts_total", h)]++
	} else {
		s[key("ffl_timeouts_total", h)] += 0
	}
	d := max(r.Duration, 0).Seconds()
	for _, b := range bounds() {
		k := key("ffl_run_duration_seconds_bucket", h, "le", le(b))
		if d <= b {
			s[k]++
		} else {
			s[k] += 0
		}
	}
	s[key("ffl_run_duration_seconds_sum", h)] += d
	s[key("ffl_run_duration_seconds_count", h)]++
	s[key("ffl_last_run_timestamp_seconds", h)] = float64(now.UnixMilli()) / 1000
}

// known reports whether k is a series this package writes: anything else in an existing file
// (an older version's series, an admin's edit, garbage) is dropped rather than carried along.
func known(k string) bool {
	for _, f := range families {
		for _, h := range hooks {
			switch {
			case f.typ == "histogram":
				if k == key(f.name+"_sum", h) || k == key(f.name+"_count", h) {
					return true
				}
				for _, b := range bounds() {
					if k == key(f.name+"_bucket", h, "le", le(b)) {
						return true
					}
				}
			case f.label != "":
				for _, v := range f.values {
					if k == key(f.name, h, f.label, v) {
						return true
					}
				}
			default:
				if k == key(f.name, h) {
					return true
				}
			}
		}
	}
	return false
}

// parse reads "series value" lines; comments, unknown series and bad values are skipped.
func parse(text string) series {
	s := series{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		k, v := line[:i], line[i+1:]
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || !known(k) {
			continue
		}
		s[k] = f
	}
	return s
}

// render writes the text exposition format: per family HELP, TYPE, then its series sorted
// (histogram buckets in bound order, as Prometheus expects).
func (s series) render() []byte {
	var b strings.Builder
	b.WriteString("# ffl (Firefox Launcher for Slurm): written by ffl-epilog and ffl-prolog; do not edit.\n")
	for _, f := range families {
		var keys []string
		for k := range s {
			if strings.HasPrefix(k, f.name+"{") || (f.typ == "histogram" && strings.HasPrefix(k, f.name+"_")) {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			continue
		}
		sort.Slice(keys, func(i, j int) bool { return seriesLess(keys[i], keys[j]) })
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
		for _, k := range keys {
			b.WriteString(k + " " + formatValue(s[k]) + "\n")
		}
	}
	return []byte(b.String())
}

// seriesLess orders by hook, then histogram part (buckets by bound, then sum, count), then key.
func seriesLess(a, b string) bool {
	ha, hb := hookOf(a), hookOf(b)
	if ha != hb {
		return ha < hb
	}
	ra, rb := rank(a), rank(b)
	if ra != rb {
		return ra < rb
	}
	return a < b
}

func hookOf(k string) string {
	_, rest, _ := strings.Cut(k, `hook="`)
	h, _, _ := strings.Cut(rest, `"`)
	return h
}

// rank places a histogram's buckets by their bound, then _sum, then _count; other series 0.
func rank(k string) float64 {
	switch {
	case strings.Contains(k, "_bucket{"):
		_, rest, _ := strings.Cut(k, `le="`)
		v, _, _ := strings.Cut(rest, `"`)
		if v == "+Inf" {
			return math.MaxFloat64 / 4
		}
		f, _ := strconv.ParseFloat(v, 64)
		return f
	case strings.Contains(k, "_sum{"):
		return math.MaxFloat64 / 2
	case strings.Contains(k, "_count{"):
		return math.MaxFloat64
	}
	return 0
}

// formatValue writes numbers without an exponent (byte counts and timestamps stay readable).
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// HookBudget bounds what recording costs a hook: the wait for the lock (the reads and writes
// are of a small file in a local directory, and another run holds the lock for as long as
// those take). Small enough for a hook's last step after its timeout, even on the watchdog's
// path: ffl-epilog doctor keeps epilog.timeout a second below PrologEpilogTimeout.
const HookBudget = 200 * time.Millisecond

// RecordForHook is Record the way the root hooks call it, after their work: path "" does
// nothing, a missing directory means metrics are off on this node (a debug line), any other
// problem is one warning line. It never fails the hook and returns within HookBudget plus the
// file operations.
func RecordForHook(path string, run Run, log *logrus.Entry) {
	if path == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), HookBudget)
	defer cancel()
	err := Record(ctx, path, run, time.Now())
	switch {
	case err == nil:
		log.WithField("metrics_file", path).Debug("metrics recorded")
	case errors.Is(err, ErrNoDirectory):
		log.WithField("metrics_file", path).Debug("metrics off: no such directory")
	default:
		log.WithError(err).Warn("metrics not recorded")
	}
}
