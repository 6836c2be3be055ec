package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Settings is everything a Manager needs; the launcher builds it from slurmenv, config and flags.
type Settings struct {
	Layout layout.Layout
	// User is the job owner's name (USER/LOGNAME of the session).
	User string
	// Xpra and Firefox are the commands (resolved through PATH at start).
	Xpra, Firefox         string
	XpraArgs, FirefoxArgs []string
	// StartURL is opened by Firefox when a request names none.
	StartURL string
	// BindAddress is where xpra listens (default 127.0.0.1).
	BindAddress      string
	PortMin, PortMax int
	// PortAttempts bounds the retries after xpra's "Address already in use".
	PortAttempts int
	MaxSessions  int
	// StartTimeout bounds one session's start until HTTP 200.
	StartTimeout time.Duration
	// CleanupTimeout is the grace between TERM and KILL when a session stops.
	CleanupTimeout time.Duration
	// BootID and Self identify this launcher in the state files.
	BootID string
	Self   proc.Identity
	// Path and Lang are passed to the session's environment.
	Path, Lang string
	Log        *logrus.Entry
	// Reaper reaps orphans adopted by this launcher (child subreaper); nil when not a subreaper.
	Reaper *proc.Reaper
	// Failpoint, when set, is called at each named step of a session's life (see Steps); the
	// end-to-end tests use it to SIGKILL the launcher exactly there and prove the Epilog still
	// leaves nothing behind.
	Failpoint func(step string)
	// RefreshInterval is how often a running session's process list is re-recorded (default 15 s).
	RefreshInterval time.Duration
}

// Steps a Failpoint is called at, in order of a session's life.
const (
	StepDirsCreated  = "dirs-created"  // node-local and home dirs exist, no state yet
	StepStateWritten = "state-written" // state file written, xpra not started
	StepXpraStarted  = "xpra-started"  // xpra started, identity recorded
	StepWaitingReady = "waiting-ready" // polling for HTTP 200
	StepGrace        = "grace"         // TERM sent to the session's processes
	StepRemoving     = "removing"      // processes gone, directories being removed
)

func (m *Manager) failpoint(step string) {
	if m.s.Failpoint != nil {
		m.s.Failpoint(step)
	}
}

// Manager runs the sessions of one job on one node for one launcher: it picks ports, starts and
// stops sessions, and stops all of them at once on the grace path.
type Manager struct {
	s          Settings
	runtimeDir string
	mu         sync.Mutex
	sessions   map[int]*Session
	reserved   map[int]bool
	stopping   bool
	ended      chan int
	wg         sync.WaitGroup
}

// StartRequest asks for one session. Port 0 picks a free port of the range.
type StartRequest struct {
	Port int    `json:"port,omitempty"`
	URL  string `json:"url,omitempty"`
}

// NewManager checks the prerequisites and prepares the job's node-local runtime directory: the
// Prolog's <runtime>/job-<key> when it exists and is the user's, else <temp>/ffl-<uid>/job-<key>.
func NewManager(s Settings) (*Manager, error) {
	if err := s.Layout.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if s.PortMin < 1 || s.PortMax > 65535 || s.PortMin > s.PortMax {
		return nil, fmt.Errorf("%w: port range %d-%d: set port_min <= port_max within 1-65535", ErrBadInput, s.PortMin, s.PortMax)
	}
	if s.Log == nil {
		s.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if s.PortAttempts < 1 {
		s.PortAttempts = 1
	}
	if s.RefreshInterval <= 0 {
		s.RefreshInterval = 15 * time.Second
	}
	if s.Path == "" {
		s.Path = "/usr/local/bin:/usr/bin:/bin"
	}
	if err := CheckPrerequisites(s.Xpra, s.Firefox, s.Path); err != nil {
		return nil, err
	}
	dir, err := PrepareRuntimeJobDir(s.Layout)
	if err != nil {
		return nil, err
	}
	return &Manager{s: s, runtimeDir: dir, sessions: map[int]*Session{}, reserved: map[int]bool{}, ended: make(chan int, 64)}, nil
}

// CheckPrerequisites fails early, naming the Debian package, when xpra or Firefox is missing: a
// missing Firefox would otherwise leave xpra running with no window (FACTS.md).
func CheckPrerequisites(xpra, firefox, path string) error {
	for _, c := range []struct{ bin, pkg string }{{xpra, "xpra"}, {firefox, "firefox-esr"}} {
		if _, err := lookPath(c.bin, path); err != nil {
			return fmt.Errorf("%w: %s not found (PATH=%s): install the Debian package %s (apt-get install %s) or set its path in ffl.toml", ErrMissing, c.bin, path, c.pkg, c.pkg)
		}
	}
	return nil
}

func lookPath(bin, path string) (string, error) {
	if filepath.IsAbs(bin) {
		st, err := os.Stat(bin)
		if err != nil {
			return "", err
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s: not executable", bin)
		}
		return bin, nil
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, bin)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fs.ErrNotExist
}

// PrepareRuntimeJobDir returns the job's node-local runtime dir, creating the fallback one when
// the Prolog made none. Every component is opened without following symlinks and checked to be
// the user's: /tmp is shared, another user could have planted ffl-<uid> there.
func PrepareRuntimeJobDir(l layout.Layout) (string, error) {
	pref := l.PreferredRuntimeJobDir()
	f, err := safefs.OpenDir(pref)
	if err == nil {
		defer f.Close()
		if err := safefs.CheckOwner(f, l.UID, true); err != nil {
			return "", fmt.Errorf("%w: runtime dir %s: %v: ask the admin to check ffl-prolog", ErrBadInput, pref, err)
		}
		return pref, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: runtime dir %s: %v", ErrBadInput, pref, err)
	}
	rel := filepath.Join(layout.UserTempName(l.UID), layout.JobDirName(l.JobKey))
	f, err = safefs.MkdirAll(l.TempDir, rel, 0o700, l.UID)
	if err != nil {
		return "", fmt.Errorf("%w: node-local dir %s: %v: set temp_dir in ffl.toml to a directory you can write, or remove the foreign entry", ErrBadInput, filepath.Join(l.TempDir, rel), err)
	}
	f.Close()
	return l.FallbackRuntimeJobDir(), nil
}

// RuntimeDir is the job's node-local runtime directory this manager uses.
func (m *Manager) RuntimeDir() string { return m.runtimeDir }

// Ended delivers the port of every session that ended by itself (the user closed Firefox).
func (m *Manager) Ended() <-chan int { return m.ended }

// Start starts one session and returns when it is ready (HTTP 200) or failed; a failed start
// leaves nothing behind.
func (m *Manager) Start(ctx context.Context, req StartRequest) (Info, error) {
	url := req.URL
	if url == "" {
		url = m.s.StartURL
	}
	if req.Port != 0 {
		if req.Port < m.s.PortMin || req.Port > m.s.PortMax {
			return Info{}, fmt.Errorf("%w: port %d is outside the allowed range %d-%d: pick a port in the range or omit --port", ErrBadInput, req.Port, m.s.PortMin, m.s.PortMax)
		}
		if err := m.reserve(req.Port); err != nil {
			return Info{}, err
		}
		if !portFree(m.s.BindAddress, req.Port) {
			m.release(req.Port)
			return Info{}, fmt.Errorf("%w: %w: port %d on %s is already in use: choose another with --port, or omit --port to pick a free one", ErrBadInput, ErrPortInUse, req.Port, m.s.BindAddress)
		}
		info, err := m.startOne(ctx, req.Port, url)
		if errors.Is(err, ErrPortInUse) {
			err = fmt.Errorf("%w: %w", ErrBadInput, err)
		}
		return info, err
	}
	var errs error
	tried := map[int]bool{}
	for attempt := 0; attempt < m.s.PortAttempts; attempt++ {
		port, err := m.pickPort(tried)
		if err != nil {
			return Info{}, multierror.Append(errs, err).ErrorOrNil()
		}
		tried[port] = true
		info, err := m.startOne(ctx, port, url)
		if err == nil {
			return info, nil
		}
		if !errors.Is(err, ErrPortInUse) {
			return Info{}, err
		}
		m.s.Log.WithFields(logrus.Fields{"port": port, "attempt": attempt + 1}).Info("port taken by someone else meanwhile; trying another")
		errs = multierror.Append(errs, err)
	}
	return Info{}, fmt.Errorf("no port after %d attempts: %w", m.s.PortAttempts, errs)
}

func (m *Manager) reserve(port int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return ErrStopping
	}
	if m.s.MaxSessions > 0 && len(m.reserved) >= m.s.MaxSessions {
		return fmt.Errorf("%w: this job already has %d sessions (max_sessions): stop one first", ErrBadInput, len(m.reserved))
	}
	if m.reserved[port] {
		return fmt.Errorf("%w: %w: port %d is already a session of this job", ErrBadInput, errReserved, port)
	}
	m.reserved[port] = true
	return nil
}

func (m *Manager) release(port int) {
	m.mu.Lock()
	delete(m.reserved, port)
	delete(m.sessions, port)
	m.mu.Unlock()
}

// pickPort reserves the first free port of the range after a random offset: concurrent starts
// by many users then rarely race for the same port, and xpra's own bind decides the rest.
func (m *Manager) pickPort(tried map[int]bool) (int, error) {
	n := m.s.PortMax - m.s.PortMin + 1
	off := rand.IntN(n)
	for i := 0; i < n; i++ {
		port := m.s.PortMin + (off+i)%n
		if tried[port] {
			continue
		}
		if err := m.reserve(port); err != nil {
			if errors.Is(err, errReserved) {
				continue
			}
			return 0, err
		}
		if portFree(m.s.BindAddress, port) {
			return port, nil
		}
		m.release(port)
	}
	return 0, fmt.Errorf("%w: no free port in %d-%d on %s: widen port_min/port_max in ffl.toml", ErrBadInput, m.s.PortMin, m.s.PortMax, m.s.BindAddress)
}

// portFree says whether the port can be bound now. It is only a hint (someone may bind it next);
// xpra's own bind is the arbiter.
func portFree(addr string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// errReserved marks a port this manager already uses.
var errReserved = errors.New("port reserved")

// Stop stops one session of this manager; other sessions are not touched.
func (m *Manager) Stop(ctx context.Context, port int) error {
	m.mu.Lock()
	s := m.sessions[port]
	m.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: port %d: list sessions with 'ffl-launch list'", ErrNotFound, port)
	}
	return s.Stop(ctx, m.s.CleanupTimeout)
}

// List returns the running sessions, by port.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.sessions))
	for _, s := range m.sessions {
		out = append(out, s.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

// Len is the number of sessions starting or running.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.reserved)
}

// StopAll is the grace path: it refuses new sessions and stops every session concurrently, each
// with the cleanup timeout as grace. Cancelling ctx (a second signal) turns every remaining wait
// into an immediate KILL. It returns when all sessions are stopped and their directories removed.
func (m *Manager) StopAll(ctx context.Context) error {
	m.mu.Lock()
	m.stopping = true
	list := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		list = append(list, s)
	}
	m.mu.Unlock()
	var (
		mu   sync.Mutex
		errs error
		wg   sync.WaitGroup
	)
	for _, s := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Stop(ctx, m.s.CleanupTimeout); err != nil {
				mu.Lock()
				errs = multierror.Append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// Close removes the job's directories this launcher made once every session is gone: the
// home job subtree and the node-local session remains. The Prolog-made runtime dir itself stays
// for the Epilog; the fallback one is removed. Files of a supervisor are removed by the caller.
func (m *Manager) Close() error {
	m.wg.Wait()
	var errs error
	l := m.s.Layout
	if _, err := safefs.RemoveAll(l.HomeJobDir(), safefs.RemoveOptions{UID: l.UID, Deadline: time.Now().Add(5 * time.Second)}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = multierror.Append(errs, fmt.Errorf("remove %s: %w", l.HomeJobDir(), err))
	}
	return errs
}

// RemoveRuntimeJobDir removes the launcher's node-local job dir when it is the fallback one
// (nobody else would), or only its contents' leftovers when the Prolog made it.
func (m *Manager) RemoveRuntimeJobDir() error {
	l := m.s.Layout
	if m.runtimeDir != l.FallbackRuntimeJobDir() {
		return nil
	}
	_, err := safefs.RemoveAll(m.runtimeDir, safefs.RemoveOptions{UID: l.UID, Deadline: time.Now().Add(5 * time.Second)})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", m.runtimeDir, err)
	}
	// The per-user parent is left alone: another job of the user may be using it right now.
	return nil
}
