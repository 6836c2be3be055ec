package lifecycle

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/front"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Variables the supervisor puts into the wrapped command's environment.
const (
	// EnvControlSocket is the supervisor's API socket (control package), for `ffl-launch
	// start/stop/list/proxy` and Jupyter extensions run by the wrapped command.
	EnvControlSocket = "FFL_CONTROL_SOCKET"
	// EnvProxyPort is a port the supervisor holds for the wrapped command's jupyter-server-proxy
	// entry from the moment it starts: nobody else can take it, so the proxy can never reach
	// another user's session.
	EnvProxyPort = "FFL_PROXY_PORT"
	// EnvProxySecretFile is the 0600 file (in the job's 0700 runtime dir) with the secret the
	// proxy entry must send in every request to EnvProxyPort (front.ProxySecretHeader): the
	// port's owner is proven by the kernel, the notebook server (rather than a web page open
	// in the user's browser) by the secret.
	EnvProxySecretFile = "FFL_PROXY_SECRET_FILE"
)

// ExitSignalBase is added to a signal's number for the exit status (143 for SIGTERM), as
// shells, tini, runc and containerd do.
const ExitSignalBase = 128

// SupervisorConfig is one `ffl-launch run`.
type SupervisorConfig struct {
	// Settings are the sessions' (Self, BootID and Reaper are filled in by Run).
	Settings Settings
	// Sessions to start at once, the first on Port (0: any), Firefox opening URL.
	Sessions int
	Port     int
	URL      string
	// Command is the wrapped command (e.g. jupyterhub-singleuser); empty for none.
	Command []string
	// ProxyPort holds a port for the wrapped command (EnvProxyPort).
	ProxyPort bool
	// ProxyPrestart starts the proxy port's session at once, before the first visit
	// (jupyter_prestart = true).
	ProxyPrestart bool
	// ProxyPrestartRecent, above 0, starts it at once only when the user's browser opened a
	// proxy port's Firefox within that long before (VisitFile in the state dir; jupyter_prestart
	// = "recent"). Every visit to the proxy port's session is recorded, whatever the setting.
	ProxyPrestartRecent time.Duration
	// Announce is called with every initially started session's connection info.
	Announce func(Info)
	// ServeAPI starts the control API on the socket path (the control package; injected so that
	// lifecycle does not import its own client).
	ServeAPI func(socket string, m *Manager) (io.Closer, error)
	// Sweep removes this user's stale sessions of other jobs on this node; run in the background
	// beside the first start.
	Sweep func(ctx context.Context, bootID string)
	// ReclaimJob ends and removes what an earlier, provably dead supervisor of this very job
	// left on this node (a job ID the node has seen before: a controller whose counter was
	// reset); run before anything is created.
	ReclaimJob func(ctx context.Context, bootID string) error
	// EndWarning is how long before the job's time limit every session shows the end warning
	// (0: never); JobEnd says when that is (nil: squeue).
	EndWarning time.Duration
	JobEnd     JobEnd
	// Warnings shows the end warning in every session now, once per value (SIGUSR1: Slurm's
	// --signal=B:USR1@N).
	Warnings <-chan os.Signal
	// Log receives the supervisor's lines.
	Log *logrus.Entry
}

// Supervisor runs one job's sessions on one node until the job ends: it is the process Slurm
// sends SIGTERM to (exec'd or srun), the parent (and child subreaper) of every session process,
// the owner of the control API, and the one that runs the grace path.
type Supervisor struct {
	cfg       SupervisorConfig
	log       *logrus.Entry
	mgr       *Manager
	api       io.Closer
	rtDir     string
	proxy     *front.Front
	child     *exec.Cmd
	childDone chan int
}

// NewSupervisor prepares a supervisor; Run does the work.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	if cfg.Settings.Log == nil {
		cfg.Settings.Log = cfg.Log
	}
	return &Supervisor{cfg: cfg, log: cfg.Log}
}

// Run supervises until the job ends and returns the exit status: 0 when the last session ended
// by itself, the wrapped command's status when it ended, 128+N after signal N (the grace path
// then has stopped every session). An error means the supervisor could not start; nothing of it
// is left then, but for the job's empty runtime dir when the supervisor record could not be
// written (setup says why).
//
// Three parts, each with one way out: setup makes everything and returns how to undo it (a
// failed setup has undone its own steps already), loop waits for the reason to stop and the exit
// status that goes with it, and stop is the one stop path every reason takes.
func (s *Supervisor) Run(ctx context.Context, signals <-chan os.Signal) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, undo, err := s.setup(ctx, cancel)
	if err != nil {
		return 0, err
	}
	why, code, err := s.loop(ctx, r, signals)
	s.stop(why, signals, undo)
	return code, err
}

// running is what the loop watches once setup has succeeded.
type running struct {
	mgr *Manager
	// startErr delivers the initial sessions' start result (nil: all started), once.
	startErr <-chan error
	// endKnown delivers the job's time limit once squeue has told it (never without EndWarning).
	endKnown <-chan time.Time
	// idleExit: the supervisor ends when its last session ends (no wrapped command, and
	// `--sessions 0` not asked; that one waits for `ffl-launch start` until signalled).
	idleExit bool
}

// setup makes the supervisor, in this order: subreaper and reaper, identity, the reclaim of an
// earlier dead run of this job, the background sweep, the manager (and with it the job's
// runtime dir), the supervisor record, the control API, the Jupyter proxy port, the initial
// sessions (in the background), the wrapped command and the end warning's look-up. It returns
// the undo for all of it (stop calls it, with the grace path's context); when a step fails,
// setup has undone the steps before it and returns the error alone. Each return says what it
// undoes.
func (s *Supervisor) setup(ctx context.Context, cancel context.CancelFunc) (*running, func(context.Context), error) {
	if err := proc.SetChildSubreaper(); err != nil {
		s.log.WithError(err).Warn("cannot become child subreaper; orphans of sessions reparent to PID 1")
	}
	reaper := proc.NewReaper()
	go reaper.Run(ctx) // ends with Run's ctx
	bootID, err := proc.BootID()
	if err != nil {
		return nil, nil, fmt.Errorf("boot id: %w", err) // nothing made yet
	}
	self, err := proc.Lookup(os.Getpid())
	if err != nil {
		return nil, nil, fmt.Errorf("own identity: %w", err) // nothing made yet
	}
	// The PID namespace the records' PIDs belong to: under Slurm's namespace/linux with
	// CLONE_NEWPID the job's own, which the Prolog and Epilog (in the node's) must translate.
	// A /proc without ns links (no such kernel feature) records none: 0, the reader's own.
	pidNS, _ := proc.SelfPIDNamespace()
	st := s.cfg.Settings
	st.BootID, st.Self, st.PIDNS, st.Reaper = bootID, self, pidNS, reaper
	l := st.Layout
	if err := s.reclaimEarlierRun(ctx, l, bootID, self); err != nil {
		return nil, nil, err // nothing made yet (what the reclaim removed was a dead run's)
	}
	if s.cfg.Sweep != nil {
		go s.cfg.Sweep(ctx, bootID) // ends with Run's ctx
	}
	mgr, err := NewManager(st)
	if err != nil {
		return nil, nil, err // NewManager leaves nothing when it fails
	}
	s.mgr = mgr
	s.rtDir = mgr.RuntimeDir()
	sockPath := filepath.Join(s.rtDir, layout.ControlSocket)
	if err := claimSupervisor(s.rtDir, layout.Supervisor{
		Schema: layout.StateSchema, Job: l.JobKey, Node: l.Node, BootID: bootID,
		Process: self, Socket: sockPath, Started: time.Now().UTC(), PIDNS: pidNS,
	}); err != nil {
		// No teardown, on purpose: the job's directories may be a live supervisor's (the
		// refusal: two launchers of one job started at once), and teardown would remove its
		// home job subtree and its record. What this run made is at most the job's empty
		// runtime dir, which the Epilog removes and the next run of the job reuses.
		return nil, nil, err
	}
	if s.cfg.ServeAPI != nil {
		if s.api, err = s.cfg.ServeAPI(sockPath, mgr); err != nil {
			s.teardown() // no session yet: the record and the directories
			return nil, nil, err
		}
	}
	s.log.WithFields(logrus.Fields{"pid": self.PID, "socket": sockPath, "cleanup_timeout": st.CleanupTimeout.String()}).Info("supervisor started")
	env := []string{EnvControlSocket + "=" + sockPath}
	if len(s.cfg.Command) > 0 && s.cfg.ProxyPort {
		proxyEnv, err := s.holdProxyPort(ctx, mgr)
		if err != nil {
			s.teardown() // no session yet: the API, the record and the directories
			return nil, nil, err
		}
		env = append(env, proxyEnv...)
	}
	r := &running{mgr: mgr, startErr: s.startSessions(ctx, mgr)}
	s.childDone = make(chan int, 1)
	if len(s.cfg.Command) > 0 {
		if err := s.startChild(reaper, env); err != nil {
			// Sessions may be starting: cancel their starts, then stop what did start.
			cancel()
			s.Shutdown(context.Background())
			return nil, nil, fmt.Errorf("%w: start %s: %v", ErrBadInput, s.cfg.Command[0], err)
		}
	}
	r.endKnown = s.lookUpJobEnd(ctx, reaper, st.Path, l.JobKey)
	r.idleExit = s.child == nil && s.cfg.Sessions > 0
	return r, s.Shutdown, nil
}

// holdProxyPort binds the port held for the wrapped command's Jupyter proxy entry and writes
// its secret; it returns the variables that tell the command both. A visit to the idle proxy
// port (the user closed Firefox earlier, and jupyter-server-proxy never runs its command again)
// starts a new session there; with ProxyPrestart (jupyter_prestart) one starts at once, before
// any visit.
func (s *Supervisor) holdProxyPort(ctx context.Context, mgr *Manager) ([]string, error) {
	startOn := func(port int, why string) {
		s.log.WithField("port", port).Info(why)
		if _, err := mgr.Start(ctx, StartRequest{Port: port, URL: s.cfg.URL, Reuse: true}); err != nil {
			s.log.WithError(err).WithField("port", port).Warn("session for the Jupyter proxy port")
		}
	}
	onDemand := func(port int) { startOn(port, "a visit to the Jupyter proxy port: starting a session") }
	secret, secretFile, err := writeProxySecret(s.rtDir)
	if err != nil {
		return nil, fmt.Errorf("secret for the Jupyter proxy port: %w", err)
	}
	if s.proxy, err = mgr.Bind(onDemand, secret); err != nil {
		return nil, fmt.Errorf("port for the Jupyter proxy: %w", err)
	}
	mgr.Lend(s.proxy)
	s.log.WithField("port", s.proxy.Port()).Info("port held for the Jupyter proxy entry")
	l := s.cfg.Settings.Layout
	switch {
	case s.cfg.ProxyPrestart:
		go startOn(s.proxy.Port(), "jupyter_prestart: starting the Jupyter proxy port's session before the first visit")
	case s.cfg.ProxyPrestartRecent > 0:
		if ok, why := prestartRecent(l.StateDir, l.UID, s.cfg.ProxyPrestartRecent, time.Now()); ok {
			go startOn(s.proxy.Port(), why)
		} else {
			s.log.WithField("port", s.proxy.Port()).Info(why)
		}
	}
	rec := &visitRecorder{stateDir: l.StateDir, uid: l.UID, log: s.log.WithField("port", s.proxy.Port()), now: time.Now}
	s.proxy.OnVisit(rec.record)
	return []string{EnvProxyPort + "=" + strconv.Itoa(s.proxy.Port()), EnvProxySecretFile + "=" + secretFile}, nil
}

// startSessions starts the initial sessions one after the other in the background, the first
// on the asked port, and announces each; the channel gets the first failure (nil: all started).
func (s *Supervisor) startSessions(ctx context.Context, mgr *Manager) <-chan error {
	startErr := make(chan error, 1)
	go func() {
		var first error
		for i := 0; i < s.cfg.Sessions; i++ {
			req := StartRequest{URL: s.cfg.URL}
			if i == 0 {
				req.Port = s.cfg.Port
			}
			info, err := mgr.Start(ctx, req)
			if err != nil {
				first = err
				break
			}
			if s.cfg.Announce != nil {
				s.cfg.Announce(info)
			}
		}
		startErr <- first
	}()
	return startErr
}

// lookUpJobEnd asks once when the job ends, in the background, for the end warning (nil channel:
// no end warning). Once is enough: the time limit does not move for a running job, except by an
// admin's scontrol update, which a SIGUSR1 can cover.
func (s *Supervisor) lookUpJobEnd(ctx context.Context, reaper *proc.Reaper, path, job string) <-chan time.Time {
	if s.cfg.EndWarning <= 0 {
		return nil
	}
	end := s.cfg.JobEnd
	if end == nil {
		end = SqueueJobEnd(reaper, path)
	}
	endKnown := make(chan time.Time, 1)
	go func() {
		if t, ok := end(ctx, job); ok {
			endKnown <- t
		}
	}()
	return endKnown
}

// stopReason is why the loop ended: a signal (the grace path, which a second signal cuts short)
// or something that ended by itself (the wrapped command, the last session, a failed start).
type stopReason struct {
	signal os.Signal
}

// loop runs the end warning and waits for the reason to stop; it returns that reason with the
// exit status Run returns, and the error when the initial sessions could not start.
func (s *Supervisor) loop(ctx context.Context, r *running, signals <-chan os.Signal) (stopReason, int, error) {
	var jobEnd time.Time
	var warnAt <-chan time.Time
	for {
		select {
		case t := <-r.endKnown:
			jobEnd = t
			warnAt = time.After(time.Until(t.Add(-s.cfg.EndWarning)))
			s.log.WithFields(logrus.Fields{"time_limit": t.Format(time.RFC3339), "warn_at": t.Add(-s.cfg.EndWarning).Format(time.RFC3339)}).Info("end warning scheduled")
		case <-warnAt:
			r.mgr.WarnAll(jobEnd, "the Slurm job reaches its time limit")
		case sig := <-s.cfg.Warnings:
			s.log.WithField("signal", sig.String()).Info("end warning requested")
			r.mgr.WarnAll(jobEnd, "the Slurm job is about to end")
		case sig := <-signals:
			code := ExitSignalBase
			if ss, ok := sig.(syscall.Signal); ok {
				code += int(ss)
			}
			s.log.WithField("signal", sig.String()).Info("signal received; stopping all sessions")
			return stopReason{signal: sig}, code, nil
		case err := <-r.startErr:
			if err != nil {
				if s.child == nil {
					return stopReason{}, 0, err
				}
				s.log.WithError(err).Error("session start failed; the wrapped command keeps running")
			}
			if r.idleExit && r.mgr.Len() == 0 {
				return stopReason{}, 0, nil
			}
		case code := <-s.childDone:
			s.log.WithField("status", code).Info("wrapped command ended; stopping all sessions")
			return stopReason{}, code, nil
		case port := <-r.mgr.Ended():
			s.log.WithField("port", port).Info("session ended")
			if r.idleExit && r.mgr.Len() == 0 {
				return stopReason{}, 0, nil
			}
		}
	}
}

// stop is the one stop path: undo (stop every session, remove what the supervisor made). After
// a signal it is the grace path: the wrapped command's process group gets the signal and, at
// the cleanup timeout, KILL, while the sessions stop concurrently; a second signal turns every
// remaining wait into KILL now. Otherwise nothing of the job is still asked to run (the wrapped
// command has ended, or there is none), and the sessions get their full grace.
func (s *Supervisor) stop(why stopReason, signals <-chan os.Signal, undo func(context.Context)) {
	if why.signal == nil {
		undo(context.Background())
		return
	}
	t0 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case sig2 := <-signals:
			s.log.WithField("signal", sig2.String()).Warn("second signal: killing now")
			cancel()
		case <-ctx.Done():
		}
	}()
	done := make(chan struct{})
	if s.child != nil {
		ss, _ := why.signal.(syscall.Signal)
		if ss == 0 {
			ss = syscall.SIGTERM
		}
		go func() {
			defer close(done)
			s.endChild(ctx, ss, s.cfg.Settings.CleanupTimeout)
		}()
	} else {
		close(done)
	}
	undo(ctx)
	<-done
	s.log.WithField("duration_ms", time.Since(t0).Milliseconds()).Info("grace path done")
}

// Shutdown stops every session (cancelling ctx turns the grace into KILL now) and removes what
// the supervisor made: the API socket, the proxy port, the home job subtree, the record.
func (s *Supervisor) Shutdown(ctx context.Context) {
	if s.mgr != nil {
		if err := s.mgr.StopAll(ctx); err != nil {
			s.log.WithError(err).Warn("stopping sessions")
		}
	}
	s.teardown()
}

func (s *Supervisor) teardown() {
	if s.api != nil {
		_ = s.api.Close()
	}
	if s.proxy != nil {
		_ = s.proxy.Close()
	}
	if s.mgr == nil {
		return
	}
	if err := s.mgr.Close(); err != nil {
		s.log.WithError(err).Warn("removing job directories")
	}
	// The supervisor record goes last: while it exists, the Epilog's fast path knows this job
	// used ffl, so a SIGKILL anywhere in this teardown still gets cleaned up.
	if dir, err := safefs.OpenDir(s.rtDir); err == nil {
		if err := safefs.UnlinkAt(dir, layout.SupervisorFile, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.WithError(err).Warn("removing the supervisor record")
		}
		dir.Close()
	}
	if err := s.mgr.RemoveRuntimeJobDir(); err != nil {
		s.log.WithError(err).Warn("removing runtime dir")
	}
}

// startChild starts the wrapped command in its own process group with the supervisor's
// variables in its environment. Its stdio is the launcher's own: it is the job's real work and
// its output belongs in the job log. It is the one program ffl starts with the caller's own
// environment and working directory (pkg/execenv): it is the user's own command, run as asked.
func (s *Supervisor) startChild(r *proc.Reaper, env []string) error {
	args := s.cfg.Command
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.Start(cmd); err != nil {
		return err
	}
	s.child = cmd
	s.log.WithFields(logrus.Fields{"pid": cmd.Process.Pid, "cmd": args[0]}).Info("wrapped command started")
	go func() {
		code, err := waitStatus(cmd)
		if err != nil {
			// Its status is lost (ECHILD: something else in this process reaped it): say so, or
			// the job's exit status 1 would pass for the command's own.
			s.log.WithError(err).WithField("pid", cmd.Process.Pid).Error("wrapped command's exit status unknown; exiting 1")
		}
		s.childDone <- code
	}()
	return nil
}

// waitStatus waits for the command and returns its exit status the shell way (128+N by signal);
// when the wait itself fails, 1 and why.
func waitStatus(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ExitSignalBase + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 1, err
}

// endChild forwards sig to the wrapped command's process group, waits up to grace (or until ctx
// is cancelled by a second signal), then KILLs the group.
func (s *Supervisor) endChild(ctx context.Context, sig syscall.Signal, grace time.Duration) {
	pgid := s.child.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.childDone:
		// The leader is gone; end what it left in its group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return
	case <-t.C:
	case <-ctx.Done():
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-s.childDone:
	case <-time.After(500 * time.Millisecond):
	}
}

// claimSupervisor writes the supervisor record, refusing when a live supervisor of this job
// already runs on this node (two would fight over the same directories).
func claimSupervisor(dir string, rec layout.Supervisor) error {
	f, err := safefs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("runtime dir %s: %w", dir, err)
	}
	defer f.Close()
	if old, err := runtimedir.ReadSupervisor(f); err == nil && old.BootID == rec.BootID && old.Process.Alive() && old.Process.PID != rec.Process.PID {
		return fmt.Errorf("%w: a supervisor for job %s already runs on this node (pid %d): use 'ffl-launch start' to add a session", ErrBadInput, rec.Job, old.Process.PID)
	}
	data, err := rec.Marshal()
	if err != nil {
		return err
	}
	return safefs.WriteFileAtomic(f, layout.SupervisorFile, data, 0o600)
}

// reclaimEarlierRun looks for what an earlier launcher of this same job key left on this node
// (the job ID was seen before: the demo's local Slurm restarts its counter, so does a
// controller whose state was reset). A live supervisor of the job is refused; leftovers of one
// that is provably gone (its record's PID and start time are not alive, or it names another
// boot), or a home subtree without any node-local record, are reclaimed first; session dirs
// without any record are refused with what is in the way and how to clean it.
func (s *Supervisor) reclaimEarlierRun(ctx context.Context, l layout.Layout, bootID string, self proc.Identity) error {
	dead, orphans := false, []string(nil)
	for _, dir := range runtimedir.Existing(l) {
		f, err := safefs.OpenDir(dir)
		if err != nil {
			continue
		}
		sup, err := runtimedir.ReadSupervisor(f)
		hasRecord := err == nil
		names, _ := f.Readdirnames(-1)
		f.Close()
		if hasRecord {
			id := sup.Process
			id.UID = l.UID
			if sup.BootID == bootID && id.PID != self.PID && id.Alive() {
				return fmt.Errorf("%w: a supervisor for job %s already runs on this node (pid %d): use 'ffl-launch start' to add a session", ErrBadInput, l.JobKey, id.PID)
			}
			dead = true
			continue
		}
		for _, n := range names {
			if _, err := layout.ParseSessionDirName(n); err == nil {
				orphans = append(orphans, filepath.Join(dir, n))
			}
		}
	}
	if len(orphans) > 0 && !dead {
		return fmt.Errorf("%w: %s is left from an earlier run of job %s on this node without a supervisor record, so ffl cannot prove it is gone: end its processes and remove it (as root: ffl-epilog --job %s --user %s), then start again",
			ErrBadInput, strings.Join(orphans, ", "), l.JobKey, l.JobKey, s.cfg.Settings.User)
	}
	if !dead {
		if _, err := os.Lstat(l.HomeJobDir()); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	if s.cfg.ReclaimJob == nil {
		return nil
	}
	s.log.Info("reclaiming what an earlier, dead launcher of this job left on this node")
	if err := s.cfg.ReclaimJob(ctx, bootID); err != nil {
		return fmt.Errorf("leftovers of an earlier run of job %s: %w", l.JobKey, err)
	}
	return nil
}

// writeProxySecret makes a new random secret for the Jupyter proxy port and writes it, 0600, to
// the job's runtime dir (0700, the user's): readable by the user's notebook server, by no web
// page and no other user.
func writeProxySecret(rtDir string) (secret, path string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	secret = hex.EncodeToString(b)
	dir, err := safefs.OpenDir(rtDir)
	if err != nil {
		return "", "", err
	}
	defer dir.Close()
	if err := safefs.WriteFileAtomic(dir, layout.ProxySecretFile, []byte(secret+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return secret, filepath.Join(rtDir, layout.ProxySecretFile), nil
}
