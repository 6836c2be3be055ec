package jupyter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// prestartWait is how long a server without a reason to prestart is watched for a session that
// should not start (a prestart begins within a second of the port being held).
const prestartWait = 5 * time.Second

// TestPrestartRecent is jupyter_prestart's default, "recent", as a user meets it: a user with
// no recorded visit gets a notebook server without Firefox (no session, no memory) until the
// click on the Firefox card; that visit is recorded in the user's state dir; the user's next
// server has Firefox ready before any click, and the click finds it there.
func TestPrestartRecent(t *testing.T) {
	e := env(t)
	e.requireProxy(t)
	defer e.hub.dumpOnFailure(t)
	u := e.users["ffluser2"]
	record := filepath.Join(u.Home, ".firefox-launcher", lifecycle.VisitFile)
	// A record an earlier test or stack left would make this user a recent visitor already.
	if err := os.Remove(record); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}

	// 1. No visit recorded: the server starts without Firefox.
	s := e.newSession(t, u.Name)
	s.spawn(t)
	t.Logf("job %s: %s", s.job.ID, s.job.waitLogLine(t, `jupyter_prestart = \"recent\": no earlier visit recorded`, 30*time.Second))
	time.Sleep(prestartWait)
	if ps := s.job.sessionProcs(); len(ps) != 0 {
		t.Fatalf("job %s: a session runs before any visit of a user without a recorded one: %v", s.job.ID, describe(ps))
	}
	s.launch(t, "first visit of a user without a recorded visit")
	var at time.Time
	if !slurmtest.WaitUntil(10*time.Second, func() bool {
		data, err := os.ReadFile(record)
		if err != nil {
			return false
		}
		at, err = time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
		return err == nil
	}) {
		t.Fatalf("no visit recorded in %s after the visit", record)
	}
	var st unix.Stat_t
	if err := unix.Lstat(record, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != 0o600 || int(st.Uid) != u.UID {
		t.Errorf("%s: mode %#o, uid %d (%v); want a regular 0600 file of %s", record, st.Mode, st.Uid, err, u.Name)
	}
	if d := time.Since(at); d < -time.Minute || d > 5*time.Minute {
		t.Errorf("%s records %v, not the visit just made", record, at)
	}
	if err := e.hub.StopServer(u.Name); err != nil {
		t.Fatal(err)
	}
	s.job.assertClean(t, nil)
	s.b.Close()

	// 2. The next server: Firefox starts with it, ready before anyone clicks.
	s = e.newSession(t, u.Name)
	s.spawn(t)
	t.Logf("job %s: %s", s.job.ID, s.job.waitLogLine(t, `within 14 days: starting the Jupyter proxy port's session`, 30*time.Second))
	t.Logf("job %s, before any visit: %s", s.job.ID, s.job.waitLogLine(t, "session ready", 90*time.Second))
	s.launch(t, "first visit of a user with a recent visit (prestarted)")
	if err := e.hub.StopServer(u.Name); err != nil {
		t.Fatal(err)
	}
	s.job.assertClean(t, nil)
}
