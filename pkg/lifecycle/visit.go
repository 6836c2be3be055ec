package lifecycle

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// VisitFile is the record, in the user's state dir, of the last time the user's browser opened
// the Firefox of a Jupyter proxy port: one line, that time in RFC 3339 (UTC). It is what
// jupyter_prestart = "recent" reads when the next notebook server starts. The line, not the
// file's mtime, is the record: a clock of a home's file server is not the node's.
const VisitFile = "jupyter-visit"

// visitEvery bounds how often the record is written: a tab that reconnects, or several tabs,
// rewrite it at most once a minute, against a window of days.
const visitEvery = time.Minute

// visitRecorder writes VisitFile when the HTML5 client of the proxy port's session connects.
type visitRecorder struct {
	stateDir string
	uid      int
	log      *logrus.Entry
	now      func() time.Time

	mu   sync.Mutex
	last time.Time
}

// record writes the visit, unless one was written within visitEvery. A failure is logged, not
// returned: the session works without the record, only the next server's first click waits.
func (v *visitRecorder) record() {
	now := v.now()
	v.mu.Lock()
	if !v.last.IsZero() && now.Sub(v.last) < visitEvery {
		v.mu.Unlock()
		return
	}
	v.last = now
	v.mu.Unlock()
	if err := writeVisit(v.stateDir, v.uid, now); err != nil {
		v.log.WithError(err).Warn("recording the visit for jupyter_prestart = \"recent\"")
	}
}

// openStateDir opens stateDir (no symlink on its path) and requires it to be uid's and
// writable by nobody else: the visit record's dir, and the persistent profile's parent
// (endStartupTracking).
func openStateDir(stateDir string, uid int) (*os.File, error) {
	d, err := safefs.OpenDir(stateDir)
	if err != nil {
		return nil, err
	}
	if err := safefs.CheckOwner(d, uid, true); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// writeVisit replaces VisitFile in stateDir (openStateDir) with the time at.
func writeVisit(stateDir string, uid int, at time.Time) error {
	d, err := openStateDir(stateDir, uid)
	if err != nil {
		return err
	}
	defer d.Close()
	return safefs.ReplaceFile(d, VisitFile, []byte(at.UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// lastVisit reads VisitFile in stateDir: the zero time, without an error, when there is none yet.
func lastVisit(stateDir string, uid int) (time.Time, error) {
	d, err := openStateDir(stateDir, uid)
	if safefs.IsNotExist(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	defer d.Close()
	data, err := safefs.ReadFileCapped(d, VisitFile, 64)
	if safefs.IsNotExist(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(data)))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s/%s: not a time (%w): it is rewritten at the next visit", stateDir, VisitFile, err)
	}
	return t, nil
}

// prestartRecent decides jupyter_prestart = "recent": start now when the last visit lies
// within window before now. why is the log line either way.
func prestartRecent(stateDir string, uid int, window time.Duration, now time.Time) (start bool, why string) {
	last, err := lastVisit(stateDir, uid)
	switch {
	case err != nil:
		return false, fmt.Sprintf("jupyter_prestart = \"recent\": no record of an earlier visit (%v): Firefox starts at the first visit", err)
	case last.IsZero():
		return false, "jupyter_prestart = \"recent\": no earlier visit recorded: Firefox starts at the first visit"
	case now.Sub(last) > window:
		return false, fmt.Sprintf("jupyter_prestart = \"recent\": the last visit (%s) is older than %s: Firefox starts at the first visit", last.UTC().Format(time.RFC3339), humanDays(window))
	case last.After(now.Add(time.Hour)):
		// A record from the future (a clock set back, a hand edit) proves no recent visit.
		return false, fmt.Sprintf("jupyter_prestart = \"recent\": the last visit's time (%s) lies ahead of this node's clock: Firefox starts at the first visit", last.UTC().Format(time.RFC3339))
	}
	return true, fmt.Sprintf("jupyter_prestart = \"recent\": a visit on %s, within %s: starting the Jupyter proxy port's session before the first visit", last.UTC().Format(time.RFC3339), humanDays(window))
}

// humanDays writes a window of whole days as "14 days".
func humanDays(d time.Duration) string {
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}
