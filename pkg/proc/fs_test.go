package proc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fixtureProc is one process of a fake procfs tree.
type fixtureProc struct {
	pid, ppid int
	comm      string
	state     byte
	start     uint64
	uid       int
	tgid      int    // status Tgid; 0 means pid (a process, not a thread)
	environ   string // "" with noEnviron: no environ file
	noEnviron bool
	stat      string // raw stat content, overriding the fields above
}

// writeFixture lays out procs under a fresh directory the way procfs does and returns an FS on it.
func writeFixture(t *testing.T, procs []fixtureProc) FS {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(p.pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := p.stat
		if stat == "" {
			stat = statLine(p.pid, p.comm, p.state, p.ppid, p.pid, p.pid, p.start)
		}
		uid := strconv.Itoa(p.uid)
		tgid := p.tgid
		if tgid == 0 {
			tgid = p.pid
		}
		files := map[string]string{
			"stat":   stat,
			"status": statusText(p.comm, tgid, uid+"\t"+uid+"\t"+uid+"\t"+uid),
		}
		if !p.noEnviron {
			files["environ"] = p.environ
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Things procfs also holds, which a scan must ignore.
	for _, d := range []string{"sys/kernel/random", "0123", "tty"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "cpuinfo"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(procs) > 0 {
		if err := os.Symlink(strconv.Itoa(procs[0].pid), filepath.Join(root, "self")); err != nil {
			t.Fatal(err)
		}
	}
	return FS{Root: root}
}

// fixtureSession is a fixture: a session of uid 1000 on job 1, with everything a marker search must not
// confuse with it.
var fixtureSession = []fixtureProc{
	{pid: 100, ppid: 1, comm: "xpra", state: 'S', start: 500, uid: 1000, environ: "A=1\x00FFL_SESSION=1/n1/8001\x00"},
	{pid: 101, ppid: 100, comm: "Web Content", state: 'S', start: 510, uid: 1000, environ: "FFL_SESSION=1/n1/8001\x00B=2\x00"},
	{pid: 102, ppid: 101, comm: "sleep", state: 'Z', start: 520, uid: 1000, environ: "FFL_SESSION=1/n1/8001\x00"},
	{pid: 103, ppid: 1, comm: "other user", state: 'S', start: 530, uid: 1001, environ: "FFL_SESSION=1/n1/8001\x00"},
	{pid: 104, ppid: 1, comm: "job 10", state: 'S', start: 540, uid: 1000, environ: "FFL_SESSION=10/n1/8001\x00"},
	{pid: 105, ppid: 1, comm: "lookalike", state: 'S', start: 550, uid: 1000, environ: "XFFL_SESSION=1/n1/8001\x00"},
	{pid: 106, ppid: 100, comm: "no environ", state: 'S', start: 560, uid: 1000, noEnviron: true},
	{pid: 107, ppid: 1, comm: "(sd-pam)", state: 'S', start: 570, uid: 1000, environ: "FFL_SESSION=1/n1/8002"},
	{pid: 108, ppid: 101, comm: "x) Z 1 1", state: 'R', start: 580, uid: 1000, environ: "FFL_SESSION=1/n1/8001\x00"},
	{pid: 109, ppid: 1, comm: "root", state: 'S', start: 590, uid: 0, environ: "FFL_SESSION=1/n1/8001\x00"},
	// A thread of 100: procfs does not list threads, but a PID read from a file may name one.
	{pid: 120, ppid: 1, comm: "xpra", state: 'S', start: 500, uid: 1000, tgid: 100, environ: "FFL_SESSION=1/n1/8001\x00"},
}

func pidsOf(ids []Identity) []int {
	var pids []int
	for _, id := range ids {
		pids = append(pids, id.PID)
	}
	slices.Sort(pids)
	return pids
}

func TestFixtureLookup(t *testing.T) {
	fs := writeFixture(t, fixtureSession)
	id, err := fs.Lookup(101)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Identity{PID: 101, StartTime: 510, UID: 1000}); id != want {
		t.Errorf("Lookup(101) = %+v, want %+v", id, want)
	}
	st, err := fs.ReadStat(108)
	if err != nil || st.Comm != "x) Z 1 1" || st.State != 'R' || st.PPID != 101 {
		t.Errorf("ReadStat(108) = %+v, %v", st, err)
	}
	for _, pid := range []int{102, 999, 120} { // zombie, missing, thread
		if id, err := fs.Lookup(pid); !errors.Is(err, ErrGone) {
			t.Errorf("Lookup(%d) = %+v, %v; want ErrGone", pid, id, err)
		}
	}
	for _, pid := range []int{0, -1} {
		if id, err := fs.Lookup(pid); err == nil || errors.Is(err, ErrGone) {
			t.Errorf("Lookup(%d) = %+v, %v; want a non-ErrGone error", pid, id, err)
		}
	}
}

func TestFixtureAlive(t *testing.T) {
	fs := writeFixture(t, fixtureSession)
	tests := []struct {
		id   Identity
		want bool
	}{
		{Identity{PID: 101, StartTime: 510, UID: 1000}, true},
		{Identity{PID: 101, StartTime: 511, UID: 1000}, false}, // PID reused
		{Identity{PID: 101, StartTime: 510, UID: 1001}, false}, // another user's
		{Identity{PID: 102, StartTime: 520, UID: 1000}, false}, // zombie
		{Identity{PID: 999, StartTime: 520, UID: 1000}, false}, // no such PID
		{Identity{PID: 120, StartTime: 500, UID: 1000}, false}, // a thread
		{Identity{PID: 0}, false},
	}
	for _, tc := range tests {
		if got := fs.Alive(tc.id); got != tc.want {
			t.Errorf("Alive(%v) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestFixtureFindByMarker(t *testing.T) {
	fs := writeFixture(t, fixtureSession)
	tests := []struct {
		uid          int
		name, prefix string
		want         []int
	}{
		// Not 102 (zombie), 103 (uid), 104 (job 10), 105 (other name), 106 (no environ), 109 (root).
		{1000, "FFL_SESSION", "1/n1/", []int{100, 101, 107, 108}},
		{1000, "FFL_SESSION", "1/n1/8002", []int{107}},
		{1000, "FFL_SESSION", "10/n1/", []int{104}},
		{1000, "FFL_SESSION", "", []int{100, 101, 104, 107, 108}},
		{1001, "FFL_SESSION", "1/n1/", []int{103}},
		{1000, "FFL_SESSION", "2/", nil},
		{4242, "FFL_SESSION", "1/n1/", nil},
	}
	for _, tc := range tests {
		ids, err := fs.FindByMarker(tc.uid, tc.name, tc.prefix)
		if err != nil {
			t.Errorf("FindByMarker(%d, %q, %q): %v", tc.uid, tc.name, tc.prefix, err)
		}
		if got := pidsOf(ids); !slices.Equal(got, tc.want) {
			t.Errorf("FindByMarker(%d, %q, %q) = %v, want %v", tc.uid, tc.name, tc.prefix, got, tc.want)
		}
		for _, id := range ids {
			if id.UID != tc.uid {
				t.Errorf("FindByMarker(%d, ...) returned %v", tc.uid, id)
			}
		}
	}
	if _, err := fs.FindByMarker(0, "FFL_SESSION", "1/"); !errors.Is(err, ErrRefused) {
		t.Errorf("FindByMarker(uid 0) = %v, want ErrRefused", err)
	}
	for _, bad := range []struct{ name, prefix string }{{"", "x"}, {"A=B", "x"}, {"A\x00", "x"}, {"A", "x\x00"}} {
		if _, err := fs.FindByMarker(1000, bad.name, bad.prefix); err == nil {
			t.Errorf("FindByMarker(1000, %q, %q): no error", bad.name, bad.prefix)
		}
	}
	if _, err := fs.FindByMarker(-1, "FFL_SESSION", "1/"); err == nil {
		t.Error("FindByMarker(uid -1): no error")
	}
}

func TestFixtureTree(t *testing.T) {
	fs := writeFixture(t, fixtureSession)
	kids, err := fs.Children(100)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pidsOf(kids), []int{101, 106}; !slices.Equal(got, want) {
		t.Errorf("Children(100) = %v, want %v", got, want)
	}
	kids, err = fs.Children(101) // 102 is a zombie
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pidsOf(kids), []int{108}; !slices.Equal(got, want) {
		t.Errorf("Children(101) = %v, want %v", got, want)
	}
}

func TestFixtureScan(t *testing.T) {
	procs := append(slices.Clone(fixtureSession),
		fixtureProc{pid: 300, uid: 1000, stat: "300 (broken) S 1\n"},
		fixtureProc{pid: 301, uid: 1000, stat: statLine(999, "liar", 'S', 1, 1, 1, 5)},
	)
	fs := writeFixture(t, procs)
	ids, err := fs.Scan(nil)
	// Broken entries are reported but do not hide the others.
	if err == nil || !strings.Contains(err.Error(), "pid 300") || !strings.Contains(err.Error(), "pid 301") {
		t.Errorf("Scan error = %v, want one naming pids 300 and 301", err)
	}
	want := []int{100, 101, 102, 103, 104, 105, 106, 107, 108, 109}
	if got := pidsOf(ids); !slices.Equal(got, want) {
		t.Errorf("Scan(nil) = %v, want %v", got, want)
	}
	var seen []string
	ids, _ = fs.Scan(func(st Stat, uid int) bool {
		seen = append(seen, st.Comm)
		return uid == 1000 && st.State == 'Z'
	})
	if got := pidsOf(ids); !slices.Equal(got, []int{102}) {
		t.Errorf("Scan(zombies of 1000) = %v, want [102]", got)
	}
	if !slices.Contains(seen, "Web Content") || !slices.Contains(seen, "(sd-pam)") {
		t.Errorf("keep saw comms %q", seen)
	}
	if _, err := (FS{Root: filepath.Join(t.TempDir(), "missing")}).Scan(nil); err == nil {
		t.Error("Scan of a missing root: no error")
	}
}

func TestFixtureBootID(t *testing.T) {
	tests := []struct {
		content string
		want    string
		wantErr bool
	}{
		{content: "8f1d3c3e-6f0a-4c5e-9a57-1b2c3d4e5f60\n", want: "8f1d3c3e-6f0a-4c5e-9a57-1b2c3d4e5f60"},
		{content: "8f1d3c3e-6f0a-4c5e-9a57-1b2c3d4e5f60", want: "8f1d3c3e-6f0a-4c5e-9a57-1b2c3d4e5f60"},
		{content: "", wantErr: true},
		{content: "not-a-uuid\n", wantErr: true},
		{content: "8F1D3C3E-6F0A-4C5E-9A57-1B2C3D4E5F60\n", wantErr: true},
		{content: "8f1d3c3e-6f0a-4c5e-9a57-1b2c3d4e5f60x\n", wantErr: true},
		{content: "8f1d3c3e06f0a-4c5e-9a57-1b2c3d4e5f60\n", wantErr: true},
		{content: strings.Repeat("a", 1000), wantErr: true},
	}
	for _, tc := range tests {
		fs := writeFixture(t, nil)
		path := filepath.Join(fs.Root, "sys/kernel/random/boot_id")
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := fs.BootID()
		if tc.wantErr {
			if err == nil {
				t.Errorf("BootID(%q) = %q, want error", tc.content, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("BootID(%q) = %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
	if _, err := writeFixture(t, nil).BootID(); err == nil {
		t.Error("BootID without the file: no error")
	}
}

func TestBootID(t *testing.T) {
	id, err := BootID()
	if err != nil {
		t.Fatal(err)
	}
	again, err := BootID()
	if err != nil || again != id {
		t.Errorf("BootID changed: %q then %q (%v)", id, again, err)
	}
}

// TestFixtureFindByMarkers: one scan for many prefixes gives the same processes as one
// FindByMarker per prefix, each tagged with its first matching prefix.
func TestFixtureFindByMarkers(t *testing.T) {
	fs := writeFixture(t, fixtureSession)
	prefixes := []string{"10/n1/", "1/n1/8002", "1/n1/", "2/"}
	got, err := fs.FindByMarkers(1000, "FFL_SESSION", prefixes)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]int{104: 0, 107: 1, 100: 2, 101: 2, 108: 2}
	if len(got) != len(want) {
		t.Errorf("FindByMarkers = %v, want pids->prefix %v", got, want)
	}
	for id, i := range got {
		if w, ok := want[id.PID]; !ok || w != i {
			t.Errorf("pid %d matched prefix %d (%q), want %d", id.PID, i, prefixes[i], w)
		}
	}
	if _, err := fs.FindByMarkers(0, "FFL_SESSION", prefixes); !errors.Is(err, ErrRefused) {
		t.Errorf("FindByMarkers(uid 0) = %v, want ErrRefused", err)
	}
	if got, err := fs.FindByMarkers(1000, "FFL_SESSION", nil); err != nil || len(got) != 0 {
		t.Errorf("no prefixes: %v %v", got, err)
	}
}

// TestFindByArgument: a whole argument after the program's name, of the uid asked for, alive;
// never a longer argument that starts with it, a prefix of one, another uid's process or root.
func TestFindByArgument(t *testing.T) {
	const auth = "/home/u/s/Xauthority"
	procs := []fixtureProc{
		{pid: 10, comm: "Xvfb", state: 'S', start: 100, uid: 1000},
		{pid: 11, comm: "Xvfb", state: 'S', start: 101, uid: 1000},
		{pid: 12, comm: "Xvfb", state: 'S', start: 102, uid: 1000},
		{pid: 13, comm: "Xvfb", state: 'S', start: 103, uid: 1001},
		{pid: 14, comm: "Xvfb", state: 'Z', start: 104, uid: 1000},
		{pid: 15, comm: "Xvfb", state: 'S', start: 105, uid: 1000},
	}
	fs := writeFixture(t, procs)
	cmdlines := map[int]string{
		10: "Xvfb\x00:3\x00-auth\x00" + auth + "\x00",        // the session's X server
		11: "Xvfb\x00-auth\x00" + auth + ".other\x00",        // a longer argument
		12: "Xvfb\x00-auth\x00/home/u/s/Xauth\x00",           // a prefix of it
		13: "Xvfb\x00-auth\x00" + auth + "\x00",              // another uid's
		14: "Xvfb\x00-auth\x00" + auth + "\x00",              // a zombie
		15: "Xvfb\x00-auth\x00" + auth + "\x00-nolisten\x00", // in the middle
	}
	for pid, c := range cmdlines {
		if err := os.WriteFile(filepath.Join(fs.Root, strconv.Itoa(pid), "cmdline"), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := fs.FindByArgument(context.Background(), 1000, auth)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, id := range ids {
		pids = append(pids, id.PID)
	}
	slices.Sort(pids)
	if !slices.Equal(pids, []int{10, 15}) {
		t.Errorf("FindByArgument = %v, want pids 10 and 15", pids)
	}
	if _, err := fs.FindByArgument(context.Background(), 0, auth); err == nil {
		t.Error("FindByArgument for uid 0: no error, want refused")
	}
}
