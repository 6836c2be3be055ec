package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/execenv"
	"github.com/ffl-hpc/ffl/pkg/front"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// Manager runs the sessions of one job on one node for one launcher: it picks and binds ports,
// starts and stops sessions, and stops all of them at once on the grace path.
type Manager struct {
	s          Settings
	runtimeDir string
	mu         sync.Mutex
	sessions   map[int]*Session
	reserved   map[int]bool
	lent       map[int]*front.Front // ports held by the caller (the proxy port), by port
	// hosts holds, by port, the one address a session listens on when it could not have both
	// loopback families (pickPort's second pass); its URL names that address literally.
	hosts    map[int]string
	stopping bool
	warning  *endWarning // the end warning, once given (WarnAll)
	ended    chan int
	wg       sync.WaitGroup
}

// StartRequest asks for one session. Port 0 picks a free port of the range.
type StartRequest struct {
	Port int    `json:"port,omitempty"`
	URL  string `json:"url,omitempty"`
	// Reuse returns the session already running on Port instead of refusing the request
	// (`ffl-launch proxy`, which jupyter-server-proxy may run again for a live session).
	Reuse bool `json:"reuse,omitempty"`
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
	if s.RefreshInterval <= 0 {
		s.RefreshInterval = 15 * time.Second
	}
	// The caller's PATH and LANG reach xpra and Firefox, and find xpra's interpreter for the
	// draw check: only the PATH entries nobody but root and the user can change stay (no ".",
	// no relative or group-writable directory), and LANG must be a plain locale name.
	if s.Path == "" {
		s.Path = execenv.DefaultPath
	}
	if safe := execenv.Path(s.Path, s.Layout.UID); safe != s.Path {
		s.Log.WithFields(logrus.Fields{"path": s.Path, "kept": safe}).Debug("PATH entries another user could change (or relative ones) dropped for xpra and Firefox")
		s.Path = safe
	}
	s.Lang = execenv.Lang(s.Lang)
	if s.StartURL == "" {
		s.StartURL = "about:blank"
	}
	if s.ScreenSize == "" {
		s.ScreenSize = DefaultScreenSize
	}
	if s.ContentProcesses <= 0 {
		s.ContentProcesses = DefaultContentProcesses
	}
	if s.Probe == nil {
		s.Probe = VisibleProbe{}
	}
	draw := s.DrawCheck
	if draw == nil && s.Reaper != nil {
		// The supervisor's reaper runs already: the check's python3 must be owned by it.
		r := s.Reaper
		draw = func(ctx context.Context, xpraPath, path string) error {
			return prereq.CheckDrawWith(ctx, r, xpraPath, path)
		}
	}
	// `xpra --version` (a Python start, about 0.05 s) runs beside the prerequisite checks (two
	// more): all three are on the path of the launcher's first session. A missing program or
	// module is reported before a version that could not be read, as when they ran in turn.
	type versionResult struct {
		v   xpra.Version
		err error
	}
	version := make(chan versionResult, 1)
	if s.XpraVersion == (xpra.Version{}) {
		go func() {
			v, err := xpraVersion(context.Background(), s.Reaper, s.Xpra, s.Path)
			version <- versionResult{v, err}
		}()
	} else {
		version <- versionResult{v: s.XpraVersion}
	}
	if err := CheckPrerequisites(context.Background(), s.Xpra, s.Firefox, s.Path, draw); err != nil {
		<-version
		return nil, err
	}
	if vr := <-version; vr.err != nil {
		return nil, vr.err
	} else if s.XpraVersion == (xpra.Version{}) {
		s.XpraVersion = vr.v
		s.Log.WithField("xpra_version", vr.v.String()).Debug("xpra version")
	}
	if s.DownloadDir != "" {
		if err := checkDownloadDir(s.DownloadDir, s.Layout); err != nil {
			return nil, err
		}
		if err := EnsureDownloadDir(s.DownloadDir); err != nil {
			return nil, err
		}
	}
	dir, err := runtimedir.Prepare(s.Layout)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	return &Manager{s: s, runtimeDir: dir, sessions: map[int]*Session{}, reserved: map[int]bool{},
		lent: map[int]*front.Front{}, hosts: map[int]string{}, ended: make(chan int, 64)}, nil
}

// RuntimeDir is the job's node-local runtime directory this manager uses.
func (m *Manager) RuntimeDir() string { return m.runtimeDir }

// Settings returns the manager's settings (defaults filled in).
func (m *Manager) Settings() Settings { return m.s }

// Ended delivers the port of every session that ended by itself (the user closed Firefox).
func (m *Manager) Ended() <-chan int { return m.ended }

func (m *Manager) notifyEnded(port int) {
	select {
	case m.ended <- port:
	default:
	}
}

// Lend gives the manager a port the caller holds (the supervisor's proxy port): a start on
// that port uses it, and a stopped session leaves it idle instead of releasing it.
func (m *Manager) Lend(f *front.Front) {
	m.mu.Lock()
	m.lent[f.Port()] = f
	m.mu.Unlock()
}

// Start starts one session and returns when it is ready (Firefox visible) or failed; a failed
// start leaves nothing behind.
func (m *Manager) Start(ctx context.Context, req StartRequest) (Info, error) {
	url := req.URL
	if url == "" {
		url = m.s.StartURL
	}
	if err := CheckStartURL(ctx, url); err != nil {
		return Info{}, err
	}
	if req.Port == 0 {
		f, err := m.pickPort(nil, true, "")
		if err != nil {
			return Info{}, err
		}
		return m.startOne(ctx, f, true, url)
	}
	m.mu.Lock()
	lent := m.lent[req.Port]
	m.mu.Unlock()
	if lent == nil && (req.Port < m.s.PortMin || req.Port > m.s.PortMax) {
		return Info{}, fmt.Errorf("%w: port %d is outside the allowed range %d-%d: pick a port in the range or omit --port", ErrBadInput, req.Port, m.s.PortMin, m.s.PortMax)
	}
	// With Reuse, two callers asking for the same port at once (jupyter-server-proxy's command
	// and an owner's visit to the idle proxy port) end up with the one session. A session that
	// was ready and ends while the caller waits (it is being stopped, or Firefox was closed: the
	// HTML5 client reconnects at once) is not the caller's answer: once it is gone (released
	// before Done), a new one starts. A failed start is the answer, not retried.
	for {
		if s := m.session(req.Port); s != nil && req.Reuse {
			info, err := s.waitStarted(ctx)
			if errors.Is(err, ErrNotFound) && s.wasReady.Load() {
				continue
			}
			return info, err
		}
		err := m.reserve(req.Port)
		if err == nil {
			break
		}
		if !req.Reuse || !errors.Is(err, errReserved) {
			return Info{}, err
		}
		select {
		case <-ctx.Done():
			return Info{}, context.Cause(ctx)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if lent != nil {
		return m.startOne(ctx, lent, false, url)
	}
	f, err := m.bind(req.Port, nil, "")
	if err != nil {
		m.release(req.Port)
		if errors.Is(err, syscall.EADDRINUSE) {
			return Info{}, fmt.Errorf("%w: %w: port %d on %s is already in use: choose another with --port, or omit --port to pick a free one", ErrBadInput, ErrPortInUse, req.Port, m.s.BindAddress)
		}
		return Info{}, fmt.Errorf("port %d: %w", req.Port, err)
	}
	return m.startOne(ctx, f, true, url)
}

// startOne starts a session behind f (already bound; owned says whether the session releases
// it). A failed start leaves nothing of the session; f shows the failure to its clients.
func (m *Manager) startOne(ctx context.Context, f *front.Front, owned bool, url string) (Info, error) {
	l := m.s.Layout
	port := f.Port()
	s := &Session{
		m:        m,
		st:       &m.s,
		port:     port,
		marker:   l.Marker(port),
		created:  time.Now(),
		paths:    sessionPaths{Home: l.HomeSessionDir(port), Runtime: filepath.Join(m.runtimeDir, layout.SessionDirName(port))},
		front:    f,
		exited:   make(chan struct{}),
		display:  make(chan int, 1),
		stopDone: make(chan struct{}),
		stopping: make(chan struct{}),
		log:      m.s.Log.WithFields(logrus.Fields{"port": port, "session": l.Marker(port)}),
	}
	s.ownFront.Store(owned)
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		m.release(port)
		return Info{}, ErrStopping
	}
	m.sessions[port] = s
	m.mu.Unlock()

	f.Starting()
	err := s.start(ctx, url)
	if err != nil {
		// The front shows why to a client that is waiting (the Jupyter user's browser).
		f.Failed(oneline.Line(err.Error()))
		s.ownFront.Store(false) // a failed start's port is released below, after the cleanup
		// Undo everything of this attempt, whatever step failed; the grace path may run too.
		if stopErr := s.Stop(context.Background(), m.s.CleanupTimeout); stopErr != nil {
			err = oneline.Append(err, stopErr)
		}
		if owned {
			_ = f.Close()
		}
		return Info{}, err
	}
	s.wasReady.Store(true)
	f.Ready(s.paths.socket())
	if s.notice.title != "" {
		if err := s.showWindow(s.notice.title, s.notice.body); err != nil {
			s.log.WithError(err).Warn("temporary profile notice not shown")
		} else {
			s.log.Info("temporary profile notice shown")
		}
	}
	m.warnIfDue(s)
	m.wg.Add(1)
	go s.watch()
	return s.Info(), nil
}

// Bind holds a port of this job's range for the caller (the supervisor's proxy port): the
// first free one after a random offset. onDemand, if set, is called with the port when the
// owner visits it while no session is behind it (the front's OnDemand); a request is relayed
// only with the secret (front.Options.ProxySecret).
//
// The proxy port always has both loopback families: jupyter-server-proxy dials "localhost"
// (its named servers hard-code it), which resolves to ::1 first, so a port held on [::1] by
// another user would hand that user the notebook user's requests, cookies included.
func (m *Manager) Bind(onDemand func(port int), secret string) (*front.Front, error) {
	f, err := m.pickPort(onDemand, false, secret)
	if err != nil {
		return nil, err
	}
	m.release(f.Port())
	return f, nil
}

// bind holds one port for a session of this job, on BindAddress (and, for 127.0.0.1, on [::1]
// too, so nobody else can listen there for clients that resolve "localhost" to ::1 first); a
// non-empty secret makes it the proxy port (front.Options.ProxySecret).
func (m *Manager) bind(port int, onDemand func(port int), secret string) (*front.Front, error) {
	return front.Listen(m.s.BindAddress, port, m.frontOptions(port, onDemand, false, secret))
}

func (m *Manager) frontOptions(port int, onDemand func(port int), one bool, secret string) front.Options {
	opts := front.Options{UID: m.s.Layout.UID, StartHold: m.s.StartTimeout + 5*time.Second, Log: m.s.Log, IdleHold: 5 * time.Second, OneAddress: one, ProxySecret: secret, KeyboardLayout: m.s.KeyboardLayout}
	opts.IdleTimeout = m.s.IdleTimeout
	// The reconnect bug is in the HTML5 client xpra 3.x ships; xpra 4 and later use xpra-html5.
	opts.NoClientReconnect = m.s.XpraVersion.Major > 0 && !m.s.XpraVersion.AtLeast(4, 0)
	if onDemand != nil {
		opts.OnDemand = func() { onDemand(port) }
	}
	return opts
}

// bindOneFamily holds port on one loopback address alone, 127.0.0.1 else ::1, when the other
// is held by someone else: the session's URL and ssh line then name that address literally
// (never "localhost"), so no client ffl directs there reaches the other family's holder.
func (m *Manager) bindOneFamily(port int, onDemand func(port int), secret string) (*front.Front, error) {
	var err error
	for _, host := range []string{"127.0.0.1", "::1"} {
		var f *front.Front
		if f, err = front.Listen(host, port, m.frontOptions(port, onDemand, true, secret)); err == nil {
			m.mu.Lock()
			m.hosts[port] = host
			m.mu.Unlock()
			m.s.Log.WithField("port", port).Warnf("every free port of %d-%d is held on one loopback family by another process; this session listens on %s only: open it by the printed URL, not by localhost", m.s.PortMin, m.s.PortMax, host)
			return f, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return nil, err
		}
	}
	return nil, err
}

// hostOf is the address a session's URL names.
func (m *Manager) hostOf(port int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.hosts[port]; ok {
		return h
	}
	host := m.s.BindAddress
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return host
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
	delete(m.hosts, port)
	m.mu.Unlock()
}

// pickPort binds the first free port of the range after a random offset: concurrent starts
// by many users then rarely try the same port, and the bind itself decides (a port ffl holds
// cannot be taken by anyone else, and ffl never probes a port and binds it later).
//
// A port counts as free when both loopback families are (bind); a port another process holds
// on one family is skipped. When no port is free that way and oneFamily is set (a session's
// port, whose URL ffl prints), a second pass takes a port on the one family still free
// (bindOneFamily): one user binding [::1] (or 127.0.0.1) on every port of the range would
// otherwise deny sessions to everyone on the node. The proxy port never takes that pass (see
// Bind).
func (m *Manager) pickPort(onDemand func(port int), oneFamily bool, secret string) (*front.Front, error) {
	n := m.s.PortMax - m.s.PortMin + 1
	off := rand.IntN(n)
	passes := []func(int, func(int), string) (*front.Front, error){m.bind}
	if oneFamily && m.s.BindAddress == "127.0.0.1" {
		passes = append(passes, m.bindOneFamily)
	}
	for _, bind := range passes {
		for i := 0; i < n; i++ {
			port := m.s.PortMin + (off+i)%n
			m.mu.Lock()
			_, lent := m.lent[port]
			m.mu.Unlock()
			if lent {
				continue
			}
			if err := m.reserve(port); err != nil {
				if errors.Is(err, errReserved) {
					continue
				}
				return nil, err
			}
			f, err := bind(port, onDemand, secret)
			if err == nil {
				return f, nil
			}
			m.release(port)
			if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EACCES) {
				return nil, fmt.Errorf("port %d: %w", port, err)
			}
		}
	}
	return nil, fmt.Errorf("%w: %w: no free port in %d-%d on %s: widen port_min/port_max in ffl.toml", ErrBadInput, ErrPortInUse, m.s.PortMin, m.s.PortMax, m.s.BindAddress)
}

// errReserved marks a port this manager already uses.
var errReserved = errors.New("port reserved")

// Stop stops one session of this manager; other sessions are not touched.
func (m *Manager) Stop(ctx context.Context, port int) error {
	s := m.session(port)
	if s == nil {
		return fmt.Errorf("%w: port %d: list sessions with 'ffl-launch list'", ErrNotFound, port)
	}
	return s.Stop(ctx, m.s.CleanupTimeout)
}

// Wait returns when the session on port has ended (stopped, or Firefox closed), or ctx is done.
func (m *Manager) Wait(ctx context.Context, port int) error {
	s := m.session(port)
	if s == nil {
		return fmt.Errorf("%w: port %d", ErrNotFound, port)
	}
	select {
	case <-s.stopDone:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (m *Manager) session(port int) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[port]
}

// List returns the running sessions, by port.
func (m *Manager) List() []Info {
	m.mu.Lock()
	list := make([]*Session, 0, len(m.sessions))
	for _, s := range m.sessions {
		list = append(list, s)
	}
	m.mu.Unlock()
	out := make([]Info, 0, len(list))
	for _, s := range list {
		if s.front.State() == front.Ready {
			out = append(out, s.Info())
		}
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
		errs *multierror.Error
		wg   sync.WaitGroup
	)
	for _, s := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Stop(ctx, m.s.CleanupTimeout); err != nil {
				mu.Lock()
				errs = oneline.Append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return oneline.Err(errs)
}

// Close removes the job's directories this launcher made once every session is gone: the
// home job subtree. The Prolog-made runtime dir itself stays for the Epilog; the fallback one
// is removed by RemoveRuntimeJobDir. Files of a supervisor are removed by the caller.
func (m *Manager) Close() error {
	m.wg.Wait()
	l := m.s.Layout
	if _, err := safefs.RemoveAll(l.HomeJobDir(), safefs.RemoveOptions{UID: l.UID, Deadline: time.Now().Add(5 * time.Second)}); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", l.HomeJobDir(), err)
	}
	return nil
}

// RemoveRuntimeJobDir removes the launcher's node-local job dir when it is the fallback (or a
// private) one, nobody else would; the Prolog's dir is the Epilog's (runtimedir.Release).
func (m *Manager) RemoveRuntimeJobDir() error {
	return runtimedir.Release(m.s.Layout, m.runtimeDir, time.Now().Add(5*time.Second))
}
