package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/control"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/reclaim"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "supervise this job's sessions (exec or srun it as the job's task)",
	ArgsUsage: "[-- CMD ARGS...]\n\nEXAMPLES:\n   exec ffl-launch run                       # one browser session until the job ends\n   srun ffl-launch run -- batchspawner-singleuser jupyterhub-singleuser",
	Flags: []cli.Flag{
		&cli.IntFlag{Name: "port", Usage: "port of the first session (default: a free port of the range)"},
		&cli.IntFlag{Name: "sessions", Value: -1, Usage: "sessions to start now (default 1 without CMD, 0 with CMD)"},
		&cli.StringFlag{Name: "url", Usage: "page Firefox opens (default start_url)"},
		&cli.BoolFlag{Name: "json", Usage: "print each session's connection info as one JSON line"},
	},
	Action: runAction,
}

func runAction(c *cli.Context) error {
	e, err := setup(c)
	if err != nil {
		return err
	}
	args := c.Args().Slice()
	sessions := c.Int("sessions")
	if sessions < 0 {
		sessions = 1
		if len(args) > 0 {
			sessions = 0
		}
	}
	if c.Int("port") != 0 && sessions == 0 {
		sessions = 1
	}
	if sessions > e.cfg.MaxSessions {
		return fmt.Errorf("%w: --sessions %d exceeds max_sessions %d", errUsage, sessions, e.cfg.MaxSessions)
	}
	sup := &supervisor{env: e, cmdArgs: args, sessions: sessions, port: c.Int("port"), url: c.String("url"), json: c.Bool("json"), out: os.Stdout}
	return sup.run()
}

// supervisor is one `ffl-launch run`: the job's sessions, the wrapped command, the control API.
type supervisor struct {
	env      *jobEnv
	cmdArgs  []string
	sessions int
	port     int
	url      string
	json     bool
	out      io.Writer
}

func (s *supervisor) run() error {
	e := s.env
	log := e.log
	// The supervisor idles beside sessions for hours on nodes where memory is the job's: a
	// tighter GC target keeps its heap (a few MiB of short-lived /proc scan buffers) small,
	// at a cost of microseconds per scan.
	debug.SetGCPercent(40)
	// Signals first: a TERM that arrives while we start must still run the grace path.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)

	if err := proc.SetChildSubreaper(); err != nil {
		log.WithError(err).Warn("cannot become child subreaper; orphans of sessions reparent to PID 1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reaper := proc.NewReaper()
	go reaper.Run(ctx)

	bootID, err := proc.BootID()
	if err != nil {
		return fmt.Errorf("boot id: %w", err)
	}
	self, err := proc.Lookup(os.Getpid())
	if err != nil {
		return fmt.Errorf("own identity: %w", err)
	}
	// This user's sessions on this node whose supervisor is gone (a SIGKILLed launcher of an
	// earlier job whose Epilog did not run) are removed beside the first start, not before it:
	// they never share a directory with this job, and xpra's bind settles any port they hold.
	go func() {
		if rep, err := reclaim.Stale(ctx, e.layout, reclaim.Options{BootID: bootID, Grace: e.cfg.CleanupTimeout.Duration, Log: log}); err != nil {
			log.WithError(err).Warn("removing stale sessions")
		} else if rep.Sessions > 0 {
			log.WithFields(logrus.Fields{"sessions": rep.Sessions, "killed": rep.Killed, "dirs": rep.Dirs}).Info("removed stale sessions")
		}
	}()

	mgr, err := lifecycle.NewManager(e.settings(reaper, self, bootID))
	if err != nil {
		return err
	}
	rtDir := mgr.RuntimeDir()
	sockPath := filepath.Join(rtDir, layout.ControlSocket)
	if err := claimSupervisor(rtDir, layout.Supervisor{
		Schema: layout.StateSchema, Job: e.layout.JobKey, Node: e.layout.Node, BootID: bootID,
		Process: self, Socket: sockPath, Started: time.Now().UTC(),
	}); err != nil {
		return err
	}
	srv, err := control.Serve(sockPath, mgr, log)
	if err != nil {
		s.teardown(mgr, nil, rtDir)
		return err
	}
	log.WithFields(logrus.Fields{"pid": self.PID, "socket": sockPath, "cleanup_timeout": e.cfg.CleanupTimeout.Duration.String()}).Info("supervisor started")

	// Initial sessions, started concurrently with watching for signals.
	startErr := make(chan error, 1)
	go func() {
		var first error
		for i := 0; i < s.sessions; i++ {
			req := lifecycle.StartRequest{URL: s.url}
			if i == 0 {
				req.Port = s.port
			}
			info, err := mgr.Start(ctx, req)
			if err != nil {
				if first == nil {
					first = err
				}
				break
			}
			s.announce(info)
		}
		startErr <- first
	}()

	var child *exec.Cmd
	childDone := make(chan int, 1)
	if len(s.cmdArgs) > 0 {
		child, err = startChild(reaper, s.cmdArgs, sockPath)
		if err != nil {
			cancel()
			s.shutdown(mgr, srv, rtDir, context.Background())
			return fmt.Errorf("%w: start %s: %v", lifecycle.ErrBadInput, s.cmdArgs[0], err)
		}
		log.WithFields(logrus.Fields{"pid": child.Process.Pid, "cmd": s.cmdArgs[0]}).Info("wrapped command started")
		go func() { childDone <- waitStatus(child) }()
	}

	// Without a wrapped command the supervisor ends when its last session ends (the user closed
	// Firefox); `--sessions 0` keeps it waiting for `ffl-launch start` until it is signalled.
	idleExit := child == nil && s.sessions > 0
	for {
		select {
		case sig := <-sigs:
			code := exitSignalBase + int(sig.(syscall.Signal))
			log.WithField("signal", sig.String()).Info("signal received; stopping all sessions")
			s.grace(mgr, srv, rtDir, child, childDone, sigs, sig)
			return exitStatus{code}
		case err := <-startErr:
			if err != nil {
				if child == nil {
					s.shutdown(mgr, srv, rtDir, context.Background())
					return err
				}
				log.WithError(err).Error("session start failed; the wrapped command keeps running")
			}
			if idleExit && mgr.Len() == 0 {
				s.shutdown(mgr, srv, rtDir, context.Background())
				return nil
			}
		case code := <-childDone:
			log.WithField("status", code).Info("wrapped command ended; stopping all sessions")
			s.shutdown(mgr, srv, rtDir, context.Background())
			return exitStatus{code}
		case port := <-mgr.Ended():
			log.WithField("port", port).Info("session ended")
			if idleExit && mgr.Len() == 0 {
				s.shutdown(mgr, srv, rtDir, context.Background())
				return nil
			}
		}
	}
}

// grace is the SIGTERM path: stop every session concurrently (TERM, wait up to the cleanup
// timeout, KILL), TERM the wrapped command's process group and KILL it at the same deadline,
// remove the directories. A second signal turns every remaining wait into KILL now.
func (s *supervisor) grace(mgr *lifecycle.Manager, srv *control.Server, rtDir string, child *exec.Cmd, childDone chan int, sigs chan os.Signal, sig os.Signal) {
	t0 := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case sig2 := <-sigs:
			s.env.log.WithField("signal", sig2.String()).Warn("second signal: killing now")
			cancel()
		case <-ctx.Done():
		}
	}()
	done := make(chan struct{})
	if child != nil {
		go func() {
			defer close(done)
			endChild(ctx, child, childDone, sig.(syscall.Signal), s.env.cfg.CleanupTimeout.Duration)
		}()
	} else {
		close(done)
	}
	s.shutdown(mgr, srv, rtDir, ctx)
	<-done
	s.env.log.WithField("duration_ms", time.Since(t0).Milliseconds()).Info("grace path done")
}

// shutdown stops the sessions and removes what the supervisor made.
func (s *supervisor) shutdown(mgr *lifecycle.Manager, srv *control.Server, rtDir string, ctx context.Context) {
	if err := mgr.StopAll(ctx); err != nil {
		s.env.log.WithError(err).Warn("stopping sessions")
	}
	s.teardown(mgr, srv, rtDir)
}

func (s *supervisor) teardown(mgr *lifecycle.Manager, srv *control.Server, rtDir string) {
	if srv != nil {
		_ = srv.Close()
	}
	if err := mgr.Close(); err != nil {
		s.env.log.WithError(err).Warn("removing job directories")
	}
	// The supervisor record goes last: while it exists, the Epilog's fast path knows this job
	// used ffl, so a SIGKILL anywhere in this teardown still gets cleaned up.
	if dir, err := safefs.OpenDir(rtDir); err == nil {
		_ = unixUnlink(dir, layout.SupervisorFile)
		dir.Close()
	}
	if err := mgr.RemoveRuntimeJobDir(); err != nil {
		s.env.log.WithError(err).Warn("removing runtime dir")
	}
}

func (s *supervisor) announce(info lifecycle.Info) {
	if s.json {
		b, _ := json.Marshal(info)
		fmt.Fprintln(s.out, string(b))
		return
	}
	fmt.Fprint(s.out, connectionText(info))
}

func connectionText(info lifecycle.Info) string {
	return fmt.Sprintf(`ffl: Firefox session ready: node %s, port %d, job %s
  on the node:      %s
  from your laptop: %s
                    then open http://localhost:%d/
  password:         cat %s
  stop it:          ffl-launch stop %d   (or end the job: scancel %s)
`, info.Node, info.Port, info.Job, info.URL, info.SSH, info.Port, info.PasswordFile, info.Port, info.Job)
}

// claimSupervisor writes the supervisor record, refusing when a live supervisor of this job
// already runs on this node (two would fight over the same directories).
func claimSupervisor(dir string, rec layout.Supervisor) error {
	f, err := safefs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("runtime dir %s: %w", dir, err)
	}
	defer f.Close()
	if data, err := safefs.ReadFileCapped(f, layout.SupervisorFile, layout.MaxStateSize); err == nil {
		if old, err := layout.ParseSupervisor(data); err == nil && old.BootID == rec.BootID && old.Process.Alive() && old.Process.PID != rec.Process.PID {
			return fmt.Errorf("%w: a supervisor for job %s already runs on this node (pid %d): use 'ffl-launch start' to add a session", lifecycle.ErrBadInput, rec.Job, old.Process.PID)
		}
	}
	data, err := rec.Marshal()
	if err != nil {
		return err
	}
	return safefs.WriteFileAtomic(f, layout.SupervisorFile, data, 0o600)
}

func unixUnlink(dir *os.File, name string) error {
	err := unix.Unlinkat(int(dir.Fd()), name, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
