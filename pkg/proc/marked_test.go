package proc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestFixtureFindMarked: the cheap filters (NotBefore), the environ cap, the recorded
// identities looked at first, and a context that ends the scan.
func TestFixtureFindMarked(t *testing.T) {
	big := strings.Repeat("X="+strings.Repeat("y", 1000)+"\x00", 550) // 0.55 MB
	fs := writeFixture(t, append(slices.Clone(fixtureSession),
		fixtureProc{pid: 130, ppid: 1, comm: "marker first, huge env", state: 'S', start: 600, uid: 1000, environ: "FFL_SESSION=1/n1/8003/\x00" + big},
		fixtureProc{pid: 131, ppid: 1, comm: "marker hidden behind 0.5 MB", state: 'S', start: 610, uid: 1000, environ: big + "FFL_SESSION=1/n1/8003/\x00"},
		fixtureProc{pid: 132, ppid: 1, comm: "marker cut by the cap", state: 'S', start: 620, uid: 1000, environ: strings.Repeat("y", DefaultEnvironCap-8) + "\x00FFL_SESSION=1/n1/8003/\x00"},
	))
	find := func(ctx context.Context, q MarkerQuery) ([]int, ScanStats, error) {
		var pids []int
		st, err := fs.FindMarked(ctx, q, func(id Identity, _ int) { pids = append(pids, id.PID) })
		return pids, st, err
	}
	q := MarkerQuery{UID: 1000, Name: "FFL_SESSION", Prefixes: []string{"1/n1/"}}
	pids, st, err := find(context.Background(), q)
	if err != nil || !slices.Equal(sortedPIDs(pids), []int{100, 101, 107, 108, 130}) {
		t.Errorf("default cap: %v, %v", pids, err)
	}
	if st.Environs == 0 || st.Skipped != 0 {
		t.Errorf("stats %+v", st)
	}
	// A larger cap (the largest) finds the marker hidden past the default one.
	q.EnvironCap = 1 << 20
	if pids, _, _ := find(context.Background(), q); !slices.Contains(pids, 131) || !slices.Contains(pids, 132) {
		t.Errorf("1 MiB cap: %v", pids)
	}
	q.EnvironCap = 0
	// NotBefore: processes that started earlier are skipped unread.
	q.NotBefore = 575
	pids, st, _ = find(context.Background(), q)
	if !slices.Equal(sortedPIDs(pids), []int{108, 130}) || st.Skipped == 0 {
		t.Errorf("NotBefore 575: %v, %+v", pids, st)
	}
	q.NotBefore = 0
	// First: recorded identities come first (in order); a stale one (start time changed) is
	// looked at in the walk like any other process.
	q.First = []Identity{{PID: 108, StartTime: 580, UID: 1000}, {PID: 101, StartTime: 1, UID: 1000}}
	pids, _, _ = find(context.Background(), q)
	if len(pids) == 0 || pids[0] != 108 || !slices.Equal(sortedPIDs(pids), []int{100, 101, 107, 108, 130}) {
		t.Errorf("First: %v", pids)
	}
	// A context that is done: nothing more is read, the error says the scan was cut short.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pids, _, err = find(ctx, q)
	if !errors.Is(err, context.Canceled) || len(pids) != 0 {
		t.Errorf("cancelled: %v, %v", pids, err)
	}
	if _, _, err := find(context.Background(), MarkerQuery{UID: 1000, Name: "FFL_SESSION", EnvironCap: -1}); err == nil {
		t.Error("negative cap accepted")
	}
}
