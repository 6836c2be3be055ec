package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// ProfileHolder is what ffl writes in <state>/profile.lock while a session uses the persistent
// profile. Firefox's own lock (a symlink "IP:+PID") cannot tell a live holder on another node
// from a dead one, and a PID means nothing after a reboot; this record can: the node, the boot
// of that node, the job, the launcher's identity and the session's marker.
type ProfileHolder struct {
	Node     string        `json:"node"`
	BootID   string        `json:"boot_id"`
	Job      string        `json:"job"`
	Port     int           `json:"port"`
	Marker   string        `json:"marker"`
	Launcher proc.Identity `json:"launcher"`
	Since    time.Time     `json:"since"`
	// PIDNS is the PID namespace of Launcher's PID (layout.State.PIDNS): under Slurm's
	// namespace/linux with CLONE_NEWPID each job has its own, and another job's launcher
	// sees neither this launcher nor its session's processes.
	PIDNS uint64 `json:"pid_ns,omitempty"`
}

// String names the holder for the log and the notice.
func (h ProfileHolder) String() string {
	return fmt.Sprintf("node %s, job %s, port %d, since %s", h.Node, h.Job, h.Port, h.Since.Format(time.RFC3339))
}

// profileLockMax caps the read of the lock record.
const profileLockMax = 4 << 10

// JobLive answers whether a Slurm job is still running (true when unsure): it decides whether
// a profile holder on another node is gone. nil means squeue.
type JobLive func(ctx context.Context, job string) bool

// SqueueJobLive asks squeue (found in path, run through run: see squeue) for the job's state.
// Only a definite answer that the job is over (unknown to Slurm, or in a final state) is false:
// a missing squeue, a timeout or an error keeps the lock, since a live session's profile must
// never be taken.
func SqueueJobLive(run prereq.Runner, path string) JobLive {
	return func(ctx context.Context, job string) bool {
		if _, err := strconv.ParseUint(job, 10, 64); err != nil {
			return true // local-<pid> of another node: nothing can prove it gone
		}
		bin, err := prereq.LookPath("squeue", path)
		if err != nil {
			return true
		}
		out, err := squeue(ctx, run, bin, path, job, "%T", true)
		text := strings.TrimSpace(string(out))
		if err != nil {
			return !strings.Contains(text, "Invalid job id")
		}
		switch text {
		case "":
			return false // no longer listed (purged after MinJobAge)
		case "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
			"DEADLINE", "OUT_OF_MEMORY", "REVOKED", "SPECIAL_EXIT":
			return false
		}
		return true
	}
}

// profileLock is the persistent profile held by one session.
type profileLock struct {
	path   string
	holder ProfileHolder
	data   []byte
}

// acquireProfile takes the persistent profile for session s: it writes the holder record with
// an atomic link (exclusive also on NFS), and when a record exists, replaces it only when its
// holder is proven gone (staleHolder). It returns (nil, holder) when a live session holds it.
// With the record held, Firefox's own lock files left by a dead holder are removed: any
// Firefox still using the profile would be that holder's.
func (s *Session) acquireProfile(ctx context.Context) (*profileLock, *ProfileHolder, error) {
	st := s.st
	l := st.Layout
	me := ProfileHolder{Node: l.Node, BootID: st.BootID, Job: l.JobKey, Port: s.port, Marker: s.marker,
		Launcher: st.Self, Since: time.Now().UTC(), PIDNS: st.PIDNS}
	data, err := json.Marshal(me)
	if err != nil {
		return nil, nil, err
	}
	data = append(data, '\n')
	path := l.ProfileLockPath()
	for attempt := 0; attempt < 3; attempt++ {
		err := linkNew(path, data)
		if err == nil {
			lock := &profileLock{path: path, holder: me, data: data}
			removeFirefoxLock(l.PersistentProfileDir())
			return lock, nil, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, nil, fmt.Errorf("profile lock %s: %w", path, err)
		}
		old, raw, err := readHolder(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // released meanwhile
		}
		if err != nil {
			// Not a record ffl wrote (or one cut short): without a holder to check, it is
			// stale only when old enough that no writer can still be at it.
			if fi, serr := os.Lstat(path); serr == nil && time.Since(fi.ModTime()) > time.Minute {
				s.log.WithError(err).Warn("profile lock unreadable and older than a minute: replacing it")
				if s.takeOver(path, raw) {
					continue
				}
			}
			return nil, &ProfileHolder{Node: "?", Job: "?"}, nil
		}
		if why := s.staleHolder(ctx, old); why != "" {
			s.log.WithFields(logrus.Fields{"holder": old.String(), "why": why}).Info("persistent profile: clearing a stale lock")
			if s.takeOver(path, raw) {
				continue
			}
		}
		return nil, &old, nil
	}
	return nil, nil, fmt.Errorf("profile lock %s: changed hands three times while taking it", path)
}

// takeOver removes the stale record raw at path, only while path still holds exactly raw: it
// is renamed aside first (atomic), then compared; a record someone else wrote in between is
// put back (link: never over a newer one).
func (s *Session) takeOver(path string, raw []byte) bool {
	aside := path + ".stale-" + randHex()
	if err := os.Rename(path, aside); err != nil {
		return false
	}
	got, err := os.ReadFile(aside)
	if err == nil && string(got) == string(raw) {
		_ = os.Remove(aside)
		return true
	}
	_ = os.Link(aside, path)
	_ = os.Remove(aside)
	return false
}

// staleHolder says why holder h is gone, or "" when it may be alive. On this node: another
// boot, or neither its launcher nor any process of its session is alive. On another node:
// only Slurm can say, and only an ended job counts.
func (s *Session) staleHolder(ctx context.Context, h ProfileHolder) string {
	st := s.st
	l := st.Layout
	if h.Node == l.Node {
		if h.BootID != st.BootID {
			return "this node has rebooted since"
		}
		alive, hidden := proc.AliveIn(ctx, h.Launcher, h.PIDNS)
		switch {
		case alive:
			return ""
		case hidden:
			// Another job's PID namespace, out of this one's sight (Slurm's namespace/linux
			// with CLONE_NEWPID): neither its launcher nor its session's processes can be
			// seen from here, so, as for another node, only Slurm's word that the job ended
			// frees the profile.
			if !s.jobLive()(ctx, h.Job) {
				return "its job " + h.Job + " has ended (squeue)"
			}
			return ""
		}
		if h.Marker != "" {
			ids, err := proc.FindByMarker(l.UID, layout.MarkerVar, h.Marker)
			if err != nil || len(ids) > 0 {
				return ""
			}
		}
		return "its launcher and session processes are gone"
	}
	if !s.jobLive()(ctx, h.Job) {
		return "its job " + h.Job + " has ended (squeue)"
	}
	return ""
}

// jobLive is how this session asks Slurm whether a job still runs (Deps.JobLive, or squeue).
func (s *Session) jobLive() JobLive {
	if s.st.JobLive != nil {
		return s.st.JobLive
	}
	return SqueueJobLive(runner(s.st.Reaper), s.st.Path)
}

// release removes the holder record when it is still this session's.
func (p *profileLock) release() error {
	got, err := os.ReadFile(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("profile lock %s: %w", p.path, err)
	}
	if string(got) != string(p.data) {
		return nil // not ours any more: leave it
	}
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release profile lock %s: %w", p.path, err)
	}
	return nil
}

// readHolder reads and parses a lock record.
func readHolder(path string) (ProfileHolder, []byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return ProfileHolder{}, nil, err
	}
	defer f.Close()
	buf := make([]byte, profileLockMax+1)
	n, _ := f.Read(buf)
	raw := buf[:n]
	var h ProfileHolder
	if n > profileLockMax {
		return h, raw, errors.New("profile lock too large")
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return h, raw, fmt.Errorf("profile lock %s: %w", path, err)
	}
	return h, raw, nil
}

// linkNew creates path with data, atomically and exclusively: the data goes to a unique
// temporary name first, which is then hard-linked to path (EEXIST when it exists; link is
// atomic on NFS too, where O_EXCL was not before v3).
func linkNew(path string, data []byte) error {
	tmp := path + ".new-" + randHex()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	defer os.Remove(tmp)
	if werr != nil || cerr != nil {
		return errors.Join(werr, cerr)
	}
	return os.Link(tmp, path)
}

func randHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// removeFirefoxLock removes Firefox's own lock files of a profile whose ffl record this session
// holds: the "lock" symlink (IP:+PID; a PID reused on this node, or any holder on another node,
// would make Firefox show "Firefox is already running") and ".parentlock". The symlink is
// removed, never followed.
func removeFirefoxLock(profile string) {
	for _, name := range []string{"lock", ".parentlock"} {
		_ = os.Remove(filepath.Join(profile, name))
	}
}

// chooseProfile decides the session's profile: the persistent one when configured and free,
// else a throwaway one in the session tree, with a notice for the log and for a window over
// Firefox when the persistent one was wanted.
func (s *Session) chooseProfile(ctx context.Context) error {
	st := s.st
	l := st.Layout
	s.profileDir = s.paths.profile()
	if !st.PersistentProfile {
		return nil
	}
	lock, holder, err := s.acquireProfile(ctx)
	var why string
	switch {
	case err != nil:
		why = "ffl could not take it: " + err.Error()
	case lock == nil:
		why = "another session uses it (" + holder.String() + "); Firefox can run only once on one profile"
	}
	if why != "" {
		s.log.WithField("reason", why).Warn("persistent profile not available: this session uses a temporary profile")
		s.notice = noticeText(l.PersistentProfileDir(), why, st.DownloadDir)
		return nil
	}
	dir, err := safefs.MkdirAll(l.StateDir, layout.ProfileDir, 0o700, l.UID)
	if err != nil {
		_ = lock.release()
		return fmt.Errorf("%w: create the profile %s: %v: set state_dir in ffl.toml to a directory you own", ErrBadInput, l.PersistentProfileDir(), err)
	}
	dir.Close()
	s.lock, s.profileDir = lock, l.PersistentProfileDir()
	// A holder that was killed may have left cut downloads: tidy them now.
	s.tidyDownloads()
	s.log.WithField("profile", s.profileDir).Info("persistent profile")
	return nil
}

// tidyDownloads removes the empty placeholders of downloads cut short in s.profileDir.
func (s *Session) tidyDownloads() {
	cut, err := tidyCutDownloads(s.profileDir, s.st.Layout.UID)
	for _, c := range cut {
		s.log.WithFields(logrus.Fields{"download": c.Target, "kept": c.Kept}).Warn("a download was cut short by the end of the session: what had arrived is kept as " + filepath.Base(c.Kept))
	}
	if err != nil {
		s.log.WithError(err).Warn("cut downloads")
	}
}

// NoticeTitle starts the title of the window a session that fell back to a throwaway profile
// shows over Firefox.
const NoticeTitle = "ffl: temporary profile"

// noticeText is the window a session that fell back to a throwaway profile shows over Firefox
// (the start page stays Firefox's tab: what the user asked for).
func noticeText(profile, why, downloads string) endWarning {
	var b strings.Builder
	fmt.Fprintf(&b, "This Firefox uses a temporary profile.\n\nYour saved profile (%s) is not available:\n%s.\n\n", profile, strings.ReplaceAll(why, "; ", ".\n"))
	b.WriteString("Bookmarks, history, saved logins and cookies of this session\nare not kept when it ends.")
	if downloads != "" {
		fmt.Fprintf(&b, "\n\nDownloads are kept as usual, in %s", downloads)
	}
	return endWarning{title: NoticeTitle + ": bookmarks, history and logins of this session are not kept", body: b.String()}
}

// StartupMarker is the file Firefox creates in a profile when it starts and removes once its
// start is over (nsIAppStartup.trackStartupCrashEnd: a few tens of seconds after the start, or
// when Firefox is asked to quit). Firefox finds it at its next start, younger than 6 hours, as a
// start that crashed, and then throws away the profile's startup and script caches
// (startupCache/) and builds them again: measured (Firefox 153 alone on Xvfb, ffl's user.js,
// 3-4 runs each) 1.02 s to the page painted on a profile with the marker against 0.71 s on the
// same profile without it, and 1.37 s on a new profile; 472 against 441 MiB PSS.
const StartupMarker = ".startup-incomplete"

// endStartupTracking removes StartupMarker from the persistent profile in stateDir, as
// Firefox's quit does. ffl ends a session with SIGTERM, which ends Firefox without that quit: a
// session shorter than Firefox's own tracking window (under a minute here) left the marker, and
// every start of the profile in the next 6 hours rebuilt the caches. Called only for a session
// that ffl stopped after Firefox had shown its window and whose processes all ended from the
// TERM, so a start that did crash, or a Firefox killed while it wrote, keeps Firefox's own
// recovery. The state dir and the profile are opened as the visit record's state dir is
// (openStateDir: no symlink, the user's, writable by nobody else), the profile below the state
// dir's fd; the marker is unlinked, never followed.
func endStartupTracking(stateDir string, uid int) error {
	state, err := openStateDir(stateDir, uid)
	if err != nil {
		return err
	}
	defer state.Close()
	dir, err := safefs.OpenDirAtOwned(state, layout.ProfileDir, uid)
	if err != nil {
		return err
	}
	defer dir.Close()
	if err := safefs.UnlinkAt(dir, StartupMarker, 0); err != nil && !safefs.IsNotExist(err) {
		return err
	}
	return nil
}
