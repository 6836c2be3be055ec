package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/execenv"
	"github.com/ffl-hpc/ffl/pkg/front"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

// Info is what a user or program needs to reach a session.
type Info struct {
	Port    int       `json:"port"`
	Node    string    `json:"node"`
	Job     string    `json:"job"`
	URL     string    `json:"url"`
	Display string    `json:"display,omitempty"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
	SSH     string    `json:"ssh"`
	// HTTPMS is how long xpra took to serve its HTML5 page, WindowMS until Firefox's first
	// window was mapped and had painted (the moment the session is reported ready), both in
	// milliseconds from xpra's start.
	HTTPMS   int64 `json:"http_ms"`
	WindowMS int64 `json:"window_ms"`
}

// Session is one xpra server with Firefox in it, behind one port.
type Session struct {
	// m is the session's manager: for the session's address (Info), its port's release and
	// the news that it ended. st is the manager's settings, fixed once NewManager returns.
	m       *Manager
	st      *Settings
	port    int
	paths   sessionPaths
	marker  string
	created time.Time
	log     *logrus.Entry
	// front is the port; ownFront says the session releases it when it stops (a lent front,
	// the supervisor's proxy port, only goes idle). A failed start clears ownFront (it releases
	// the port itself after its cleanup) while the grace path's stop may read it: atomic.
	front    *front.Front
	ownFront atomic.Bool

	// profileDir is the profile Firefox runs with; lock is set while it is the persistent one.
	profileDir string
	lock       *profileLock
	// notice is shown in a window over Firefox once the session is ready when it fell back
	// to a throwaway profile (zero otherwise).
	notice endWarning

	// cmd and xpra are set once by the start (startXpra) and read by a stop that may run
	// during the start (a SIGTERM while Firefox starts): that read goes through started. The
	// start holds procMu from before xpra's exec to the record, and execs nothing once the
	// session is stopping.
	procMu  sync.Mutex
	cmd     *exec.Cmd
	xpra    proc.Identity
	exited  chan struct{}
	display chan int // xpra's display number, once
	ready   Readiness

	stateMu sync.Mutex
	state   layout.State

	// wasReady is set once the start has succeeded: a session that ends after it is not a
	// failed start (Manager.Start with Reuse then starts a new one).
	wasReady atomic.Bool

	stopOnce sync.Once
	stopDone chan struct{}
	stopErr  error
	stopping chan struct{}
}

// Info describes the session for users and programs.
func (s *Session) Info() Info {
	l := s.st.Layout
	addr := net.JoinHostPort(s.m.hostOf(s.port), strconv.Itoa(s.port))
	s.stateMu.Lock()
	display := s.state.Display
	s.stateMu.Unlock()
	_, xpraID := s.started()
	return Info{
		Port:     s.port,
		Node:     l.Node,
		Job:      l.JobKey,
		URL:      "http://" + addr + "/",
		Display:  display,
		PID:      xpraID.PID,
		Created:  s.created,
		SSH:      fmt.Sprintf("ssh -N -L %d:%s %s", s.port, addr, l.Node),
		HTTPMS:   s.ready.HTTP.Milliseconds(),
		WindowMS: s.ready.Window.Milliseconds(),
	}
}

// waitStarted returns the session's Info once its start has finished.
func (s *Session) waitStarted(ctx context.Context) (Info, error) {
	for {
		switch s.front.State() {
		case front.Ready:
			return s.Info(), nil
		case front.Failed, front.Closed, front.Idle:
			select {
			case <-s.stopDone:
				return Info{}, fmt.Errorf("%w: the session on port %d ended", ErrNotFound, s.port)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return Info{}, context.Cause(ctx)
		case <-s.stopDone:
			return Info{}, fmt.Errorf("%w: the session on port %d ended", ErrNotFound, s.port)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// start creates the session's directories and files, starts xpra and waits until it is ready.
func (s *Session) start(ctx context.Context, url string) error {
	st := s.st
	l := st.Layout
	rtDir := filepath.Dir(s.paths.Runtime)
	if len(s.paths.socket()) > maxSocketPath {
		return fmt.Errorf("%w: xpra's socket path %s is longer than %d bytes: set a shorter runtime_dir or temp_dir in ffl.toml", ErrBadInput, s.paths.socket(), maxSocketPath)
	}
	rtParent, err := safefs.OpenDir(rtDir)
	if err != nil {
		return fmt.Errorf("open runtime dir %s: %w", rtDir, err)
	}
	defer rtParent.Close()
	// The node-local session dir comes first: it is the record an Epilog looks for, so a launcher
	// killed at any later step is still cleaned up.
	rt, err := safefs.MkdirAt(rtParent, layout.SessionDirName(s.port), 0o700, l.UID)
	if err != nil {
		return fmt.Errorf("create %s: %w", s.paths.Runtime, err)
	}
	defer rt.Close()
	for _, d := range runtimeSubdirs {
		f, err := safefs.MkdirAt(rt, d, 0o700, l.UID)
		if err != nil {
			return fmt.Errorf("create %s/%s: %w", s.paths.Runtime, d, err)
		}
		f.Close()
	}
	s.st.failpoint(StepDirsCreated)
	s.state = layout.State{
		Schema: layout.StateSchema, Job: l.JobKey, Node: l.Node, BootID: st.BootID, UID: l.UID,
		User: st.User, Port: s.port, Created: s.created.UTC(), Marker: s.marker,
		SessionDir: s.paths.Home, RuntimeDir: s.paths.Runtime, Supervisor: st.Self,
		Processes: []proc.Identity{}, PIDNS: st.PIDNS,
	}
	if err := s.writeState(); err != nil {
		return err
	}
	s.st.failpoint(StepStateWritten)

	if err := os.MkdirAll(l.StateDir, 0o700); err != nil {
		return fmt.Errorf("%w: state dir %s: %v: set state_dir in ffl.toml (or FFL_CONFIG) to a directory you can write", ErrBadInput, l.StateDir, err)
	}
	rel, err := filepath.Rel(l.StateDir, s.paths.Home)
	if err != nil {
		return err
	}
	home, err := safefs.MkdirAll(l.StateDir, rel, 0o700, l.UID)
	if err != nil {
		return fmt.Errorf("%w: create %s: %v: set state_dir in ffl.toml to a directory you own", ErrBadInput, s.paths.Home, err)
	}
	defer home.Close()
	for _, d := range homeSubdirs {
		f, err := safefs.MkdirAt(home, d, 0o700, l.UID)
		if err != nil {
			return fmt.Errorf("create %s/%s: %w", s.paths.Home, d, err)
		}
		f.Close()
	}
	if err := s.chooseProfile(ctx); err != nil {
		return err
	}
	files := []struct {
		dir  *os.File
		name string
		data []byte
	}{
		{home, "Xauthority", nil},
		{nil, "user.js", []byte(UserJS(st.ContentProcesses, st.DownloadDir, filepath.Join(s.paths.Runtime, "cache")))},
		{nil, "xpra.conf", []byte("# ffl: no default start commands\nstart =\n")},
	}
	prof, err := os.OpenFile(s.profileDir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open profile %s: %w", s.profileDir, err)
	}
	defer prof.Close()
	files[1].dir = prof
	xc, err := safefs.OpenDirAt(home, "xpraconf")
	if err != nil {
		return fmt.Errorf("open %s/xpraconf: %w", s.paths.Home, err)
	}
	defer xc.Close()
	files[2].dir = xc
	if dirs := userDirsFile(st.DownloadDir); dirs != "" {
		cfg, err := safefs.OpenDirAt(home, "config")
		if err != nil {
			return fmt.Errorf("open %s/config: %w", s.paths.Home, err)
		}
		defer cfg.Close()
		files = append(files, struct {
			dir  *os.File
			name string
			data []byte
		}{cfg, "user-dirs.dirs", []byte(dirs)})
	}
	for _, f := range files {
		if err := safefs.ReplaceFile(f.dir, f.name, f.data, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(f.dir.Name(), f.name), err)
		}
	}
	return s.launch(ctx, url)
}

// launch starts xpra and waits until the probe says the session is ready.
func (s *Session) launch(ctx context.Context, url string) error {
	dr, started, err := s.startXpra(url)
	if err != nil {
		return err
	}
	defer dr.Close()
	s.st.failpoint(StepXpraStarted)
	go s.readDisplay(dr)
	return s.waitReady(ctx, started)
}

// startXpra starts xpra with Firefox as its child, in its own process group, its output in the
// session's log, and records its identity; it returns the read end of xpra's --displayfd pipe
// and when xpra started.
func (s *Session) startXpra(url string) (*os.File, time.Time, error) {
	st := s.st
	var logs []*os.File
	for _, p := range []string{s.paths.xpraLog(), s.paths.firefoxLog()} {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|os.O_APPEND|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("session log: %w", err)
		}
		defer f.Close()
		logs = append(logs, f)
	}
	ff := firefoxCommand(st.Firefox, s.paths, s.profileDir, st.Home, st.FirefoxArgs, []string{url})
	args := xpraArgs(st.XpraVersion, s.paths, 3, st.ScreenSize, ff, append(idleArgs(st.XpraVersion, st.IdleTimeout), st.XpraArgs...))
	xpraBin, err := prereq.LookPath(st.Xpra, st.Path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %s not found: install the Debian package xpra", ErrMissing, st.Xpra)
	}
	dr, dw, err := os.Pipe()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("displayfd pipe: %w", err)
	}
	// The write end is xpra's alone once it runs: closed here in every case.
	defer dw.Close()
	// The session's own home as the working directory and an environment built here
	// (xpraEnv), never the launcher's: see pkg/execenv.
	cmd := execenv.Command(filepath.Join(s.paths.Home, "home"), xpraEnv(s.paths, st.User, st.Path, st.Lang, s.marker), xpraBin, args...)
	cmd.Stdin = nil
	// Files, not pipes: a daemonized grandchild holding a pipe would make Wait hang (golang/go#23019).
	cmd.Stdout = logs[0]
	cmd.Stderr = logs[0]
	cmd.ExtraFiles = []*os.File{dw}
	// Its own process group, so the whole group can be signalled without touching the launcher.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// xpra is started and recorded under procMu, and not at all once the session is stopping:
	// the stop's look at xpra (started) then either waits for the record or comes after a start
	// that did not happen. Without that, a stop between the exec and the record found no xpra
	// to signal, nor its marker (not in its environment until the exec is done), and removed
	// the session's directories around a running xpra (TestSupervisorTermDuringStart).
	s.procMu.Lock()
	select {
	case <-s.stopping:
		s.procMu.Unlock()
		dr.Close()
		return nil, time.Time{}, &StartError{Port: s.port, Reason: "the session was stopped before xpra started", Err: ErrStopping}
	default:
	}
	started := time.Now()
	if err := s.startCmd(cmd); err != nil {
		s.procMu.Unlock()
		dr.Close()
		return nil, time.Time{}, fmt.Errorf("start %s: %w", xpraBin, err)
	}
	go func() {
		// The only Wait on xpra; the reaper never touches an owned PID.
		_ = cmd.Wait()
		if st.Reaper != nil {
			st.Reaper.Disown(cmd.Process.Pid)
		}
		close(s.exited)
	}()
	id, err := proc.Lookup(cmd.Process.Pid)
	if err != nil {
		id = proc.Identity{PID: cmd.Process.Pid, UID: st.Layout.UID}
	}
	s.cmd, s.xpra = cmd, id
	s.procMu.Unlock()
	s.recordProcesses([]proc.Identity{s.xpra})
	s.log.WithField("pid", s.xpra.PID).Debug("xpra started")
	return dr, started, nil
}

// readDisplay reads the display number xpra writes to its --displayfd pipe, records it in the
// state file and hands it to waitDisplay (closing s.display either way).
func (s *Session) readDisplay(dr io.Reader) {
	line, _ := bufio.NewReader(io.LimitReader(dr, 64)).ReadString('\n')
	if n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), ":")); err == nil && n >= 0 {
		s.stateMu.Lock()
		s.state.Display = ":" + strconv.Itoa(n)
		s.stateMu.Unlock()
		if err := s.writeState(); err != nil {
			s.log.WithError(err).Warn("update state file")
		}
		s.display <- n
	}
	close(s.display)
}

// waitReady waits, up to the start timeout, until the probe says Firefox is visible, or xpra
// exits first (then its exit is the reason).
func (s *Session) waitReady(ctx context.Context, started time.Time) error {
	st := s.st
	ctx, cancel := context.WithTimeoutCause(ctx, st.StartTimeout, fmt.Errorf("not ready within %s (start_timeout)", st.StartTimeout))
	defer cancel()
	s.st.failpoint(StepWaitingReady)
	type result struct {
		r   Readiness
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := st.Probe.Wait(ctx, ProbeTarget{
			Socket: s.paths.socket(), XpraLog: s.paths.xpraLog(), Display: s.waitDisplay, Xauthority: s.paths.xauthority(),
			XDir: st.XDir, Started: started, Encoding: st.XpraVersion.Encoding(),
			Serving: func() { s.front.Serve(s.paths.socket()) },
		})
		done <- result{r, err}
	}()
	exited := func() error {
		return &StartError{Port: s.port, Reason: "xpra exited before the session was ready (" + s.cmd.ProcessState.String() + ")", Tail: s.tails()}
	}
	select {
	case <-s.exited:
		cancel()
		<-done
		return exited()
	case res := <-done:
		if res.err != nil {
			// A probe that failed because the X server went away is usually xpra on its way out
			// (Firefox crashed, xpra exits with its children): its exit is the better explanation.
			select {
			case <-s.exited:
				return exited()
			case <-time.After(2 * time.Second):
			}
			return &StartError{Port: s.port, Reason: res.err.Error(), Tail: s.tails(), Err: res.err}
		}
		s.ready = res.r
	}
	if err := s.ready.ReleaseErr; err != nil {
		s.log.WithError(err).Warn("xpra's empty clipboard claim could not be released: Firefox's start may wait for it")
	}
	if err := s.ready.WatchErr; err != nil {
		s.log.WithError(err).Debug("the X server did not report changes: the readiness probe looked at the display every poll instead")
	}
	s.log.WithFields(logrus.Fields{"pid": s.xpra.PID, "display": s.Info().Display, "http_ms": s.ready.HTTP.Milliseconds(),
		"window_ms": s.ready.Window.Milliseconds(), "title": s.ready.Title, "clipboard_released": strings.Join(s.ready.Released, ",")}).Info("session ready")
	return nil
}

// waitDisplay returns xpra's display number once it has written it.
func (s *Session) waitDisplay(ctx context.Context) (int, error) {
	select {
	case n, ok := <-s.display:
		if ok {
			return n, nil
		}
		s.stateMu.Lock()
		d := s.state.Display
		s.stateMu.Unlock()
		if n, err := xdisplay.Parse(d); err == nil {
			return n, nil
		}
		return 0, errors.New("xpra closed its display fd without a display")
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
}

// tails quotes the last lines of xpra's and Firefox's logs for a failed start.
func (s *Session) tails() string {
	var parts []string
	if t := lastLines(s.paths.xpraLog(), 4); t != "" {
		parts = append(parts, "xpra: "+t)
	}
	if t := lastLines(s.paths.firefoxLog(), 3); t != "" {
		parts = append(parts, "firefox: "+t)
	}
	return strings.Join(parts, " || ")
}

// startCmd starts cmd and registers its PID with the reaper before anything can reap it.
func (s *Session) startCmd(cmd *exec.Cmd) error {
	if r := s.st.Reaper; r != nil {
		return r.Start(cmd)
	}
	return cmd.Start()
}

// lastLines returns the last n non-empty lines of a (small) log file, joined with " | ".
func lastLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 16<<10 {
		_, _ = f.Seek(-16<<10, io.SeekEnd)
	}
	data, _ := io.ReadAll(io.LimitReader(f, 16<<10))
	var lines []string
	for _, ln := range bytes.Split(data, []byte("\n")) {
		if t := strings.TrimSpace(string(ln)); t != "" {
			lines = append(lines, t)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// watch waits for the session to end by itself (the user closed Firefox, xpra exited with its
// children) and then cleans up what is left, as a stop would.
func (s *Session) watch() {
	defer s.m.wg.Done()
	t := time.NewTicker(s.st.RefreshInterval)
	defer t.Stop()
	// Record the ready session's processes now, off the start's critical path, and again at
	// each tick (Firefox starts content processes as pages load).
	s.refresh()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
			s.refresh()
		case <-s.exited:
			select {
			case <-s.stopping:
				return
			default:
			}
			s.log.WithField("pid", s.xpra.PID).Info("xpra exited by itself (Firefox closed); cleaning up the session")
			if err := s.Stop(context.Background(), s.st.CleanupTimeout); err != nil {
				s.log.WithError(err).Warn("cleanup after exit")
			}
			s.m.notifyEnded(s.port)
			return
		}
	}
}

// Done is closed when the session has stopped and its directories are gone.
func (s *Session) Done() <-chan struct{} { return s.stopDone }

// sessionProcesses returns every live process of this session: those carrying the marker (xpra
// passes its environment to what it starts, also to what escapes its process group: crashhelper,
// and xpra 3.1's Xvfb; xpra 6's Xvfb has none: see stop) and the recorded identities that are
// still alive. Each one is the job user's.
// One /proc scan: with many sessions stopping at once on a small node, scans are the cost.
func (s *Session) sessionProcesses() []proc.Identity {
	uid := s.st.Layout.UID
	seen := map[int]proc.Identity{}
	add := func(ids []proc.Identity) {
		for _, id := range ids {
			if id.PID > 1 && id.UID == uid {
				seen[id.PID] = id
			}
		}
	}
	if ids, err := proc.FindByMarker(uid, layout.MarkerVar, s.marker); err == nil {
		add(ids)
	} else {
		s.log.WithError(err).Warn("marker scan")
	}
	s.stateMu.Lock()
	recorded := append([]proc.Identity(nil), s.state.Processes...)
	s.stateMu.Unlock()
	for _, id := range recorded {
		if id.Alive() {
			add([]proc.Identity{id})
		}
	}
	out := make([]proc.Identity, 0, len(seen))
	for _, id := range seen {
		out = append(out, id)
	}
	return out
}

// refresh records the session's current processes in the state file, so that a cleanup after a
// SIGKILL of the launcher has their identities even where the marker cannot be read.
func (s *Session) refresh() {
	s.recordProcesses(s.sessionProcesses())
}

func (s *Session) recordProcesses(ids []proc.Identity) {
	s.stateMu.Lock()
	known := map[int]bool{}
	for _, id := range s.state.Processes {
		known[id.PID] = true
	}
	changed := false
	for _, id := range ids {
		if !known[id.PID] {
			s.state.Processes = append(s.state.Processes, id)
			known[id.PID] = true
			changed = true
		}
	}
	s.stateMu.Unlock()
	if changed {
		if err := s.writeState(); err != nil {
			s.log.WithError(err).Warn("update state file")
		}
	}
}

func (s *Session) writeState() error {
	s.stateMu.Lock()
	data, err := s.state.Marshal()
	s.stateMu.Unlock()
	if err != nil {
		return err
	}
	dir, err := safefs.OpenDir(s.paths.Runtime)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer dir.Close()
	// Not fsynced: the state matters across a SIGKILL of the launcher, not a power loss (after a
	// reboot its processes are gone and /run is empty).
	if err := safefs.ReplaceFile(dir, layout.StateFile, data, 0o600); err != nil {
		return fmt.Errorf("write state %s: %w", filepath.Join(s.paths.Runtime, layout.StateFile), err)
	}
	return nil
}

// Stop ends the session: its port stops relaying (an owned one is released), TERM to xpra and
// to every other process of the session (each checked by PID + start time + uid), KILL to what
// is left after grace, then the display's stale X files and the session's directories are
// removed. Cancelling ctx skips the rest of the grace (KILL now). Safe to call more than once
// and concurrently; later calls wait for the first.
func (s *Session) Stop(ctx context.Context, grace time.Duration) error {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.stopErr = s.stop(ctx, grace)
		s.m.release(s.port)
		close(s.stopDone)
	})
	select {
	case <-s.stopDone:
		return s.stopErr
	case <-ctx.Done():
		<-s.stopDone
		return s.stopErr
	}
}

// started returns xpra's command and identity once the start has run it (nil and zero before).
func (s *Session) started() (*exec.Cmd, proc.Identity) {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	return s.cmd, s.xpra
}

func (s *Session) stop(ctx context.Context, grace time.Duration) error {
	t0 := time.Now()
	var errs *multierror.Error
	// The port first: no client reaches a session that is going away. An owned port is
	// released at the end, so that nobody else binds it before the session is gone.
	if s.front.State() == front.Ready {
		s.front.Idle()
	}
	// Whether Firefox ended before ffl's TERM (the user closed it, or it crashed): then ffl
	// leaves Firefox's start tracking alone (endStartupTracking).
	endedBefore := false
	select {
	case <-s.exited:
		endedBefore = true
	default:
	}
	// xpra first: when it gets TERM in time it ends its own tree cleanly (0.2-0.35 s). A start
	// that has not run xpra by this look runs none (startXpra).
	_, xpraID := s.started()
	if xpraID.PID > 0 {
		if err := proc.Signal(xpraID, unix.SIGTERM); err != nil && !errors.Is(err, proc.ErrGone) {
			errs = oneline.Append(errs, fmt.Errorf("TERM xpra %d: %w", xpraID.PID, err))
		}
	}
	s.st.failpoint(StepGrace)
	// Processes can appear while we stop (a content process forked in the TERM phase): the
	// shared routine looks again until a scan finds nothing, a bounded number of times. No reap
	// hook: a zombie counts as gone, and the Reaper reaps adopted orphans on SIGCHLD; a /proc
	// walk per poll per session cost more CPU than 8 sessions' grace.
	res := proc.MarkedEnder{
		Find:  func(context.Context) ([]proc.Identity, error) { return s.sessionProcesses(), nil },
		Grace: max(grace-time.Since(t0), 0), Poll: 10 * time.Millisecond, KillWait: time.Second,
		// xpra has its TERM: an empty first look is confirmed 25 ms later (see MarkedEnder).
		Signalled: xpraID.PID > 0, Settle: 25 * time.Millisecond,
	}.End(ctx)
	termed, killed := res.Termed, res.Killed
	if res.Errs != nil {
		errs = oneline.Append(errs, res.Errs)
	}
	if len(res.Left) > 0 {
		errs = oneline.Append(errs, fmt.Errorf("session %d: %d processes could not be ended", s.port, len(res.Left)))
	}
	if cmd, id := s.started(); cmd != nil {
		select {
		case <-s.exited:
		case <-time.After(time.Second):
			errs = oneline.Append(errs, fmt.Errorf("xpra %d not reaped", id.PID))
		}
	}
	// xpra 6 starts Xvfb with an environment of its own (no marker), and its SIGTERM path can
	// exit before its cleanup kills Xvfb (its exit and its cleanup race; TestRealSessionXpra6
	// found the Xvfb left): once xpra is gone, the user's process that has this session's own
	// Xauthority as an argument (-auth) is the session's X server, and it ends like the rest.
	// One /proc walk when it is gone already (xpra 3.1 ends its Xvfb itself).
	xauth := s.paths.xauthority()
	xres := proc.MarkedEnder{
		Find: func(ctx context.Context) ([]proc.Identity, error) {
			return proc.FindByArgument(ctx, s.st.Layout.UID, xauth)
		},
		Grace: max(grace-time.Since(t0), 200*time.Millisecond), Poll: 10 * time.Millisecond, KillWait: time.Second,
	}.End(ctx)
	termed, killed = termed+xres.Termed, killed+xres.Killed
	if xres.Errs != nil {
		errs = oneline.Append(errs, xres.Errs)
	}
	if len(xres.Left) > 0 {
		errs = oneline.Append(errs, fmt.Errorf("session %d: its X server could not be ended", s.port))
	}
	// After a KILL, Xvfb cannot remove its socket (and lock) itself, and a stale one makes later
	// servers skip that display; the shared routine decides which may go (the user's, server
	// gone).
	s.stateMu.Lock()
	display := s.state.Display
	s.stateMu.Unlock()
	if n, err := xdisplay.Parse(display); err == nil {
		if err := xdisplay.Remove(s.st.XDir, []int{n}, s.st.Layout.UID, false).Err(); err != nil {
			errs = oneline.Append(errs, err)
		}
	}
	uid := s.st.Layout.UID
	// Firefox is gone: a download it was writing is cut short, and the profile is free.
	if s.profileDir != "" {
		s.tidyDownloads()
	}
	if s.lock != nil && s.wasReady.Load() && !endedBefore && killed == 0 && len(res.Left) == 0 && len(xres.Left) == 0 {
		if err := endStartupTracking(s.st.Layout.StateDir, uid); err != nil {
			s.log.WithError(err).Warn("Firefox's start marker left in the profile: its next start rebuilds its caches")
		}
	}
	if s.lock != nil {
		if err := s.lock.release(); err != nil {
			errs = oneline.Append(errs, err)
		}
	}
	removal := time.Now().Add(2 * time.Second)
	var freed int64
	for i, dir := range []string{s.paths.Home, s.paths.Runtime} {
		if i == 1 {
			s.st.failpoint(StepRemoving)
		}
		st, err := safefs.RemoveAll(dir, safefs.RemoveOptions{UID: uid, Deadline: removal})
		freed += st.Bytes
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = oneline.Append(errs, fmt.Errorf("remove session %d dir %s: %w", s.port, dir, err))
		}
	}
	if s.ownFront.Load() {
		if err := s.front.Close(); err != nil {
			errs = oneline.Append(errs, fmt.Errorf("release port %d: %w", s.port, err))
		}
	}
	_, xpraID = s.started()
	s.log.WithFields(logrus.Fields{"pid": xpraID.PID, "termed": termed, "killed": killed, "bytes_freed": freed,
		"duration_ms": time.Since(t0).Milliseconds()}).Info("session stopped")
	return oneline.Err(errs)
}
