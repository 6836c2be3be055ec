package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logrustest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"
)

var t0 = time.Unix(1700000000, 250e6)

func value(t *testing.T, path, series string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == series {
			return v
		}
	}
	return "(absent)"
}

func TestRecordAddsUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ffl.prom")
	runs := []Run{
		{Hook: HookEpilog, Jobs: 1, Duration: 3 * time.Millisecond},
		{Hook: HookEpilog, Jobs: 1, JobsWithLeftovers: 1, Sessions: 2, Termed: 6, Killed: 2, Left: 1, Refused: 3,
			Dirs: 2, Files: 40, Bytes: 1 << 20, Errors: 1, Duration: 700 * time.Millisecond},
		{Hook: HookEpilog, Jobs: 1, JobsWithLeftovers: 1, Sessions: 1, Termed: 3, Bytes: 5000, Duration: 10 * time.Second, TimedOut: true},
		{Hook: HookSweep, Sessions: 4, Dirs: 4, Bytes: 123, Duration: 90 * time.Second},
	}
	for i, r := range runs {
		if err := Record(context.Background(), path, r, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
	for _, tt := range []struct{ series, want string }{
		{`ffl_runs_total{hook="epilog"}`, "3"},
		{`ffl_jobs_total{hook="epilog"}`, "3"},
		{`ffl_jobs_with_leftovers_total{hook="epilog"}`, "2"},
		{`ffl_sessions_cleaned_total{hook="epilog"}`, "3"},
		{`ffl_processes_total{hook="epilog",outcome="termed"}`, "9"},
		{`ffl_processes_total{hook="epilog",outcome="killed"}`, "2"},
		{`ffl_processes_total{hook="epilog",outcome="left"}`, "1"},
		{`ffl_refused_total{hook="epilog"}`, "3"},
		{`ffl_dirs_removed_total{hook="epilog"}`, "2"},
		{`ffl_files_removed_total{hook="epilog"}`, "40"},
		{`ffl_bytes_freed_total{hook="epilog"}`, "1053576"},
		{`ffl_errors_total{hook="epilog"}`, "1"},
		{`ffl_timeouts_total{hook="epilog"}`, "1"},
		{`ffl_run_duration_seconds_bucket{hook="epilog",le="0.01"}`, "1"},
		{`ffl_run_duration_seconds_bucket{hook="epilog",le="0.5"}`, "1"},
		{`ffl_run_duration_seconds_bucket{hook="epilog",le="1"}`, "2"},
		{`ffl_run_duration_seconds_bucket{hook="epilog",le="10"}`, "3"},
		{`ffl_run_duration_seconds_bucket{hook="epilog",le="+Inf"}`, "3"},
		{`ffl_run_duration_seconds_sum{hook="epilog"}`, "10.703"},
		{`ffl_run_duration_seconds_count{hook="epilog"}`, "3"},
		{`ffl_last_run_timestamp_seconds{hook="epilog"}`, "1700000002.25"},
		{`ffl_runs_total{hook="sweep"}`, "1"},
		{`ffl_jobs_total{hook="sweep"}`, "0"},
		{`ffl_bytes_freed_total{hook="sweep"}`, "123"},
		{`ffl_run_duration_seconds_bucket{hook="sweep",le="60"}`, "0"},
		{`ffl_run_duration_seconds_bucket{hook="sweep",le="300"}`, "1"},
		{`ffl_timeouts_total{hook="sweep"}`, "0"},
		{`ffl_runs_total{hook="prolog"}`, "(absent)"},
	} {
		if got := value(t, path, tt.series); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.series, got, tt.want)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("file mode = %v, %v; want 0644 (node_exporter reads it as its own user)", st.Mode(), err)
	}
	assertOnly(t, filepath.Dir(path), ".ffl.prom.lock", "ffl.prom")
}

// TestFormat checks the layout Prometheus' text format requires: each family's HELP and TYPE
// once, before its samples, all samples of a family together, buckets in increasing order.
func TestFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ffl.prom")
	for _, h := range []Hook{HookSweep, HookEpilog, HookProlog, HookEpilog} {
		if err := Record(context.Background(), path, Run{Hook: h, Duration: time.Second}, t0); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seenType := map[string]bool{}
	current := ""
	lastLe := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# HELP "):
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 || seenType[f[2]] {
				t.Fatalf("bad or repeated TYPE line %q", line)
			}
			seenType[f[2]], current = true, f[2]
		case strings.HasPrefix(line, "#"):
		default:
			name, _, _ := strings.Cut(line, "{")
			if name != current && strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count") != current {
				t.Fatalf("sample %q outside its family %q", line, current)
			}
			if strings.Contains(line, "_bucket{") {
				r := rank(line[:strings.LastIndexByte(line, ' ')])
				h := hookOf(line)
				if r < lastLe[h] {
					t.Fatalf("bucket %q out of order", line)
				}
				lastLe[h] = r
			}
		}
	}
	if len(seenType) != len(families) {
		t.Errorf("%d families written, want %d", len(seenType), len(families))
	}
}

func TestRecordConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ffl.prom")
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs <- Record(ctx, path, Run{Hook: HookEpilog, Jobs: 1, Bytes: 10}, t0)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := value(t, path, `ffl_runs_total{hook="epilog"}`); got != "20" {
		t.Errorf("runs = %s after %d concurrent runs, want 20 (a lost update)", got, n)
	}
	if got := value(t, path, `ffl_bytes_freed_total{hook="epilog"}`); got != "200" {
		t.Errorf("bytes = %s, want 200", got)
	}
}

func TestRecordLockHeld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ffl.prom")
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	unlock, err := lock(context.Background(), d, ".ffl.prom.lock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = Record(ctx, path, Run{Hook: HookEpilog}, t0)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Record with the lock held = %v, want ErrLocked", err)
	}
	// The promise: a held lock costs the caller its context, not more (generous margin: noisy machine).
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Record returned %v after its 100 ms context", el)
	}
	unlock()
	if err := Record(context.Background(), path, Run{Hook: HookEpilog}, t0); err != nil {
		t.Fatalf("Record after unlock: %v", err)
	}
}

func TestRecordRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) string // returns the path to record to
		want    error
		wantMsg string
	}{
		{"missing dir", func(t *testing.T, dir string) string { return filepath.Join(dir, "nope", "ffl.prom") }, ErrNoDirectory, ""},
		{"world-writable dir", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "ww")
			mustMkdir(t, d, 0o777)
			return filepath.Join(d, "ffl.prom")
		}, ErrUnsafeDirectory, "mode 0777"},
		{"sticky world-writable dir", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "tmp")
			mustMkdir(t, d, 0o1777)
			return filepath.Join(d, "ffl.prom")
		}, ErrUnsafeDirectory, ""},
		{"group-writable by a non-root group", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "grp")
			mustMkdir(t, d, 0o775)
			chownOrSkip(t, d, os.Geteuid(), 50) // staff
			return filepath.Join(d, "ffl.prom")
		}, ErrUnsafeDirectory, "group 50"},
		{"owned by another user", func(t *testing.T, dir string) string {
			d := filepath.Join(dir, "other")
			mustMkdir(t, d, 0o755)
			chownOrSkip(t, d, 65534, 65534) // nobody
			return filepath.Join(d, "ffl.prom")
		}, ErrUnsafeDirectory, "owner uid 65534"},
		{"dir is a symlink", func(t *testing.T, dir string) string {
			mustMkdir(t, filepath.Join(dir, "real"), 0o755)
			if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, "link") + "/ffl.prom"
		}, ErrUnsafeDirectory, ""},
		{"relative", func(*testing.T, string) string { return "ffl.prom" }, nil, "absolute file name"},
		{"a directory name", func(_ *testing.T, dir string) string { return dir + "/" }, nil, "absolute file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.prepare(t, t.TempDir())
			err := Record(context.Background(), path, Run{Hook: HookEpilog}, t0)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Record(%s) = %v, want %v containing %q", path, err, tt.want, tt.wantMsg)
			}
			if strings.ContainsAny(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
	if err := Record(context.Background(), filepath.Join(t.TempDir(), "f.prom"), Run{Hook: "cron"}, t0); err == nil {
		t.Error("an unknown hook was accepted")
	}
}

// TestRecordReplacesWhatItFinds: a symlink, a FIFO or garbage where the file should be is
// replaced, never followed, read or blocked on.
func TestRecordReplacesWhatItFinds(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		check   func(t *testing.T, path string)
	}{
		{"symlink to a victim", func(t *testing.T, path string) {
			victim := filepath.Join(filepath.Dir(path), "victim")
			if err := os.WriteFile(victim, []byte("keep\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, path); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if data, err := os.ReadFile(filepath.Join(filepath.Dir(path), "victim")); err != nil || string(data) != "keep\n" {
				t.Errorf("the symlink's target changed: %q, %v", data, err)
			}
			if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
				t.Errorf("the symlink was not replaced by a file: %v, %v", st, err)
			}
		}},
		{"fifo", func(t *testing.T, path string) {
			if err := unix.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
				t.Errorf("the FIFO was not replaced: %v, %v", st, err)
			}
		}},
		{"garbage and foreign series", func(t *testing.T, path string) {
			junk := "# HELP x y\nffl_runs_total{hook=\"epilog\"} 41\nffl_runs_total{hook=\"cron\"} 7\n" +
				"node_load1 3\nffl_bytes_freed_total{hook=\"epilog\"} -5\nffl_errors_total{hook=\"epilog\"} NaN\n" +
				"ffl_jobs_total{hook=\"epilog\"} 1e3\nnonsense\n\x00\xff\n"
			if err := os.WriteFile(path, []byte(junk), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			for series, want := range map[string]string{
				`ffl_runs_total{hook="epilog"}`:        "42",
				`ffl_jobs_total{hook="epilog"}`:        "1000",
				`ffl_bytes_freed_total{hook="epilog"}`: "0",
				`ffl_errors_total{hook="epilog"}`:      "0",
				`ffl_runs_total{hook="cron"}`:          "(absent)",
				`node_load1`:                           "(absent)",
			} {
				if got := value(t, path, series); got != want {
					t.Errorf("%s = %s, want %s", series, got, want)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ffl.prom")
			tt.prepare(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := Record(ctx, path, Run{Hook: HookEpilog}, t0); err != nil {
				t.Fatal(err)
			}
			tt.check(t, path)
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add("ffl_runs_total{hook=\"epilog\"} 3\n")
	f.Add("# TYPE x counter\nffl_run_duration_seconds_bucket{hook=\"sweep\",le=\"+Inf\"} 2\n")
	f.Fuzz(func(t *testing.T, text string) {
		s := parse(text)
		for k, v := range s {
			if !known(k) || v < 0 {
				t.Fatalf("parse kept %q = %v", k, v)
			}
		}
		// What render writes, parse reads back unchanged.
		back := parse(string(s.render()))
		if len(back) != len(s) {
			t.Fatalf("round trip: %d series, want %d", len(back), len(s))
		}
		for k, v := range s {
			if back[k] != v {
				t.Fatalf("round trip: %s = %v, want %v", k, back[k], v)
			}
		}
	})
}

func mustMkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(names, " ") {
		t.Errorf("directory holds %q, want only %q (a temporary file left behind?)", got, names)
	}
}

// TestNodeExporterReadsIt runs the real node_exporter (Debian's prometheus-node-exporter, or
// $FFL_NODE_EXPORTER) on a loopback port with only the textfile collector, pointed at a
// directory with ffl's file, and checks that it reports no scrape error and ffl's series.
func TestNodeExporterReadsIt(t *testing.T) {
	bin := os.Getenv("FFL_NODE_EXPORTER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("prometheus-node-exporter"); err != nil {
			t.Skip("prometheus-node-exporter not installed (or set FFL_NODE_EXPORTER=/path/to/it)")
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ffl.prom")
	for _, r := range []Run{
		{Hook: HookEpilog, Jobs: 1, JobsWithLeftovers: 1, Sessions: 1, Termed: 4, Killed: 1, Bytes: 4096, Duration: 300 * time.Millisecond},
		{Hook: HookSweep, Duration: 2 * time.Second, TimedOut: true},
	} {
		if err := Record(context.Background(), path, r, t0); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--web.listen-address="+addr, "--collector.disable-defaults",
		"--collector.textfile", "--collector.textfile.directory="+dir)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var body string
	for ctx.Err() == nil {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{
		`node_textfile_scrape_error 0`,
		`ffl_processes_total{hook="epilog",outcome="termed"} 4`,
		`ffl_bytes_freed_total{hook="epilog"} 4096`,
		`ffl_run_duration_seconds_bucket{hook="epilog",le="0.5"} 1`,
		`ffl_run_duration_seconds_count{hook="sweep"} 1`,
		`ffl_timeouts_total{hook="sweep"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("node_exporter's /metrics lacks %q\nnode_exporter's log:\n%s", want, logs.String())
		}
	}
}

func TestRecordForHook(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path string
		wantLevel  string // of the one log line, "" for none
		wantFile   bool
	}{
		{"off", "", "", false},
		{"no directory", filepath.Join(dir, "none", "ffl.prom"), "debug", false},
		{"written", filepath.Join(dir, "ffl.prom"), "debug", true},
		{"refused", filepath.Join(dir, "ww", "ffl.prom"), "warning", false},
	}
	mustMkdir(t, filepath.Join(dir, "ww"), 0o777)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, hook := logrustest.NewNullLogger()
			log.SetLevel(logrus.DebugLevel)
			RecordForHook(tt.path, Run{Hook: HookProlog, Jobs: 1}, logrus.NewEntry(log))
			var levels []string
			for _, e := range hook.AllEntries() {
				levels = append(levels, e.Level.String())
			}
			if strings.Join(levels, ",") != tt.wantLevel {
				t.Errorf("log levels %q, want %q", levels, tt.wantLevel)
			}
			if tt.path != "" {
				_, err := os.Stat(tt.path)
				if (err == nil) != tt.wantFile {
					t.Errorf("file written = %v, want %v", err == nil, tt.wantFile)
				}
			}
		})
	}
}

// chownOrSkip gives path to uid:gid, skipping the test when this process may not (not root).
func chownOrSkip(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another owner")
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}
