package proc

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// nsFixture is a fake /proc seen from the node's PID namespace (inode 1000): the reader (pid
// 1, first, so /proc/self names it), a job's namespace (inode 900) whose launcher has PID 7
// there and 200 on the node, and, on the node, a decoy of the same uid whose node PID is 7 and
// whose start time is the launcher's: the number a record names, and nothing else.
func nsFixture(t *testing.T, procs []fixtureProc, ns map[int]uint64, nspid map[int]string) FS {
	t.Helper()
	fs := writeFixture(t, procs)
	for _, p := range procs {
		dir := filepath.Join(fs.Root, strconv.Itoa(p.pid))
		if n, ok := ns[p.pid]; ok {
			if err := os.Mkdir(filepath.Join(dir, "ns"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("pid:["+strconv.FormatUint(n, 10)+"]", filepath.Join(dir, "ns", "pid")); err != nil {
				t.Fatal(err)
			}
		}
		if s, ok := nspid[p.pid]; ok {
			f, err := os.OpenFile(filepath.Join(dir, "status"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("NSpid:\t" + s + "\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	return fs
}

func TestResolve(t *testing.T) {
	reader := fixtureProc{pid: 1, comm: "epilog", state: 'S', start: 10, uid: 0}
	launcher := fixtureProc{pid: 200, ppid: 1, comm: "ffl-launch", state: 'S', start: 600, uid: 1000}
	xpra := fixtureProc{pid: 201, ppid: 200, comm: "xpra", state: 'S', start: 610, uid: 1000}
	decoy := fixtureProc{pid: 7, ppid: 1, comm: "sleep", state: 'S', start: 600, uid: 1000}
	zombie := launcher
	zombie.state = 'Z'
	other := launcher
	other.uid = 1001
	rec := Identity{PID: 7, StartTime: 600, UID: 1000}
	nodeNS := map[int]uint64{1: 1000, 7: 1000, 200: 900, 201: 900}
	nsPIDs := map[int]string{1: "1", 7: "7", 200: "200\t7", 201: "201\t8"}
	for _, tc := range []struct {
		name  string
		procs []fixtureProc
		id    Identity
		ns    uint64
		want  NSResult
		found int
	}{
		{"record without namespace", []fixtureProc{reader, decoy, launcher}, rec, 0, NSSame, 7},
		{"record of the reader's namespace", []fixtureProc{reader, decoy, launcher}, rec, 1000, NSSame, 7},
		{"found under its node pid, not the decoy's", []fixtureProc{reader, decoy, launcher, xpra}, rec, 900, NSFound, 200},
		{"launcher gone, its xpra left", []fixtureProc{reader, decoy, xpra}, rec, 900, NSGone, 0},
		{"start time differs", []fixtureProc{reader, decoy, launcher}, Identity{PID: 7, StartTime: 601, UID: 1000}, 900, NSGone, 0},
		{"a zombie is gone", []fixtureProc{reader, decoy, zombie}, rec, 900, NSGone, 0},
		{"only the decoy: namespace not visible", []fixtureProc{reader, decoy}, rec, 900, NSHidden, 0},
		{"another uid's process is not the record's", []fixtureProc{reader, decoy, other}, rec, 900, NSHidden, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := nsFixture(t, tc.procs, nodeNS, nsPIDs)
			id, res, err := fs.Resolve(context.Background(), tc.id, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want {
				t.Fatalf("Resolve = %v, %v; want %v", id, res, tc.want)
			}
			if tc.found != 0 && id.PID != tc.found {
				t.Errorf("Resolve = %v; want pid %d", id, tc.found)
			}
			if tc.want == NSFound && (id.StartTime != tc.id.StartTime || id.UID != tc.id.UID) {
				t.Errorf("Resolve = %v; want start %d uid %d", id, tc.id.StartTime, tc.id.UID)
			}
		})
	}
}

func TestParseNSLink(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"pid:[4026531836]", 4026531836, true},
		{"pid:[]", 0, false},
		{"mnt:[4026531836]", 0, false},
		{"pid:[0]", 0, false},
		{"pid:[12", 0, false},
		{"pid:[-1]", 0, false},
	} {
		got, err := parseNSLink(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseNSLink(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSelfPIDNamespaceLive(t *testing.T) {
	n, err := SelfPIDNamespace()
	if err != nil {
		t.Skipf("no /proc/self/ns/pid: %v", err)
	}
	id, err := Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got, res, err := Resolve(context.Background(), id, n)
	if err != nil || res != NSSame || got != id {
		t.Errorf("Resolve(self, own namespace %d) = %v, %v, %v; want %v, same", n, got, res, err, id)
	}
}

// TestResolveAll: one walk answers each record of a namespace on its own.
func TestResolveAll(t *testing.T) {
	procs := []fixtureProc{
		{pid: 1, comm: "epilog", state: 'S', start: 10, uid: 0},
		{pid: 7, ppid: 1, comm: "sleep", state: 'S', start: 600, uid: 1000}, // the decoy
		{pid: 200, ppid: 1, comm: "ffl-launch", state: 'S', start: 600, uid: 1000},
		{pid: 202, ppid: 200, comm: "firefox-esr", state: 'S', start: 620, uid: 1000},
	}
	fs := nsFixture(t, procs, map[int]uint64{1: 1000, 7: 1000, 200: 900, 202: 900}, map[int]string{200: "200\t7", 202: "202\t9"})
	ids := []Identity{
		{PID: 7, StartTime: 600, UID: 1000},  // the launcher
		{PID: 8, StartTime: 610, UID: 1000},  // its xpra, exited
		{PID: 9, StartTime: 620, UID: 1000},  // Firefox
		{PID: 9, StartTime: 620, UID: 1001},  // a record naming another uid
		{PID: 10, StartTime: 600, UID: 1000}, // the launcher's start time, another number
	}
	got, res, err := fs.ResolveAll(context.Background(), ids, 900)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		res NSResult
		pid int
	}{{NSFound, 200}, {NSGone, 0}, {NSFound, 202}, {NSHidden, 0}, {NSGone, 0}}
	for i, w := range want {
		if res[i] != w.res || got[i].PID != w.pid {
			t.Errorf("ResolveAll(%v) = %v, %v; want %v, pid %d", ids[i], got[i], res[i], w.res, w.pid)
		}
	}
}
