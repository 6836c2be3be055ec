package lifecycle

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// TestPrestartRecent: jupyter_prestart = "recent" starts early only on a record of a visit
// within the window; no record, an old one, one from the future, garbage, a symlink or a
// state dir of another owner all mean the first visit starts Firefox, with the reason logged.
func TestPrestartRecent(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	const window = 14 * 24 * time.Hour
	uid := os.Getuid()
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		uid     int
		want    bool
		why     string
	}{
		{"no state dir yet", func(t *testing.T, dir string) { testutil.Must(t, os.Remove(dir)) }, uid, false, "no earlier visit recorded"},
		{"no record", func(t *testing.T, dir string) {}, uid, false, "no earlier visit recorded"},
		{"yesterday", func(t *testing.T, dir string) { testutil.Must(t, writeVisit(dir, uid, now.Add(-24*time.Hour))) }, uid, true, "a visit on 2026-12-06T12:00:00Z, within 14 days"},
		{"at the window's edge", func(t *testing.T, dir string) { testutil.Must(t, writeVisit(dir, uid, now.Add(-window))) }, uid, true, "within 14 days"},
		{"older than the window", func(t *testing.T, dir string) {
			testutil.Must(t, writeVisit(dir, uid, now.Add(-window-time.Minute)))
		}, uid, false, "the last visit (2026-11-23T11:59:00Z) is older than 14 days"},
		{"from the future", func(t *testing.T, dir string) { testutil.Must(t, writeVisit(dir, uid, now.Add(48*time.Hour))) }, uid, false, "lies ahead of this node's clock"},
		{"garbage", func(t *testing.T, dir string) {
			testutil.Must(t, os.WriteFile(filepath.Join(dir, VisitFile), []byte("yesterday\n"), 0o600))
		}, uid, false, "not a time"},
		{"symlink", func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			testutil.Must(t, os.WriteFile(other, []byte(now.Format(time.RFC3339)+"\n"), 0o600))
			testutil.Must(t, os.Symlink(other, filepath.Join(dir, VisitFile)))
		}, uid, false, "symlink"},
		{"state dir of another uid", func(t *testing.T, dir string) {
			testutil.Must(t, writeVisit(dir, uid, now.Add(-time.Hour)))
		}, uid + 4242, false, "no record of an earlier visit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			testutil.Must(t, os.Mkdir(dir, 0o700))
			tt.prepare(t, dir)
			got, why := prestartRecent(dir, tt.uid, window, now)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("prestartRecent = %v, %q; want %v and a reason containing %q", got, why, tt.want, tt.why)
			}
			if strings.ContainsAny(why, "\n\r") {
				t.Errorf("reason is not one line: %q", why)
			}
		})
	}
}

// TestVisitRecorder: a visit writes the record the next server reads; visits within a minute
// write it once; a state dir the recorder cannot use is logged, never fatal.
func TestVisitRecorder(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	start := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	clock.Store(start.UnixNano())
	var logged bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logged)
	v := &visitRecorder{stateDir: dir, uid: os.Getuid(), log: logrus.NewEntry(log), now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }}
	v.record()
	if last, err := lastVisit(dir, os.Getuid()); err != nil || !last.Equal(start) {
		t.Fatalf("after a visit: lastVisit = %v, %v; want %v", last, err, start)
	}
	clock.Add(int64(30 * time.Second))
	v.record()
	if last, _ := lastVisit(dir, os.Getuid()); !last.Equal(start) {
		t.Errorf("a visit 30 s later rewrote the record: %v", last)
	}
	clock.Add(int64(31 * time.Second))
	v.record()
	if last, _ := lastVisit(dir, os.Getuid()); !last.Equal(start.Add(61 * time.Second)) {
		t.Errorf("a visit 61 s later: record %v, want %v", last, start.Add(61*time.Second))
	}
	if fi, err := os.Lstat(filepath.Join(dir, VisitFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record: %v, %v; want a 0600 file", fi, err)
	}
	gone := &visitRecorder{stateDir: filepath.Join(dir, "missing"), uid: os.Getuid(), log: logrus.NewEntry(log), now: time.Now}
	gone.record()
	if !strings.Contains(logged.String(), `recording the visit for jupyter_prestart = \"recent\"`) {
		t.Errorf("a state dir that is gone: log %q, want the warning", logged.String())
	}
}
