package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// jobEnv is what every subcommand derives from the environment, the config and the flags.
type jobEnv struct {
	job    slurmenv.Job
	home   string
	cfg    config.Config
	layout layout.Layout
	log    *logrus.Entry
}

func setup(c *cli.Context) (*jobEnv, error) {
	cfg, path, err := config.LoadFromEnv(os.Getenv, c.String("config"))
	if err != nil {
		return nil, err
	}
	warnings, err := cfg.ApplyEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if c.Bool("debug") {
		cfg.Debug = true
	}
	format := cfg.LogFormat
	if f := c.String("log-format"); f != "" {
		if f != "text" && f != "json" {
			return nil, fmt.Errorf("%w: --log-format %q: use text or json", errUsage, f)
		}
		format = f
	}
	job, err := slurmenv.FromEnv(slurmenv.Options{})
	if err != nil {
		return nil, err
	}
	logger := newLogger(format, cfg.Debug)
	log := logger.WithFields(logrus.Fields{"job": job.Key(), "node": job.Node})
	for _, w := range warnings {
		log.Warn(w)
	}
	log.WithField("config", path).Debug("configuration loaded")
	if job.UID != os.Getuid() {
		return nil, fmt.Errorf("%w: the job belongs to uid %d but ffl-launch runs as uid %d: run it as the job's user", lifecycle.ErrBadInput, job.UID, os.Getuid())
	}
	home, err := homeOf(job)
	if err != nil {
		return nil, err
	}
	stateDir, err := cfg.ExpandHome(home)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: set state_dir in ffl.toml", lifecycle.ErrBadInput, err)
	}
	l := layout.Layout{
		StateDir:   stateDir,
		RuntimeDir: cfg.RuntimeDir,
		TempDir:    cfg.TempDir,
		UID:        job.UID,
		Node:       job.Node,
		JobKey:     job.Key(),
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", lifecycle.ErrBadInput, err)
	}
	return &jobEnv{job: job, home: home, cfg: cfg, layout: l, log: log}, nil
}

// homeOf resolves the user's home through NSS (LDAP/SSSD users too), falling back to $HOME.
func homeOf(job slurmenv.Job) (string, error) {
	if u, err := user.LookupId(strconv.Itoa(job.UID)); err == nil && u.HomeDir != "" {
		return u.HomeDir, nil
	}
	if h := os.Getenv("HOME"); filepath.IsAbs(h) {
		return h, nil
	}
	return "", fmt.Errorf("%w: cannot find the home of uid %d: set state_dir in ffl.toml to an absolute path", lifecycle.ErrBadInput, job.UID)
}

// settings turns the job environment into the lifecycle manager's settings.
func (e *jobEnv) settings() (lifecycle.Settings, error) {
	c := e.cfg
	dl, err := config.ExpandDownloadDir(c.DownloadDir, e.home)
	if err != nil {
		return lifecycle.Settings{}, fmt.Errorf("%w: %v", lifecycle.ErrBadInput, err)
	}
	dl, source := lifecycle.ResolveDownloadDir(e.home, dl)
	e.log.WithFields(logrus.Fields{"download_dir": dl, "from": source, "profile": c.Profile}).Debug("where the user's files go")
	st := lifecycle.Settings{
		Config: lifecycle.Config{
			DownloadDir:       dl,
			PersistentProfile: c.Profile == config.ProfilePersistent,
			Xpra:              c.Xpra,
			XpraArgs:          c.XpraArgs,
			Firefox:           c.Firefox,
			FirefoxArgs:       c.FirefoxArgs,
			StartURL:          c.StartURL,
			KeyboardLayout:    keyboardLayout(c.KeyboardLayout),
			BindAddress:       c.BindAddress,
			PortMin:           c.PortMin,
			PortMax:           c.PortMax,
			MaxSessions:       c.MaxSessions,
			ScreenSize:        c.ScreenSize,
			ContentProcesses:  c.ContentProcesses,
			IdleTimeout:       c.IdleTimeout.Duration,
			StartTimeout:      c.StartTimeout.Duration,
			CleanupTimeout:    c.CleanupTimeout.Duration,
			Path:              os.Getenv("PATH"),
			Lang:              os.Getenv("LANG"),
		},
		JobIdentity: lifecycle.JobIdentity{Layout: e.layout, User: e.job.User, Home: e.home},
		Deps:        lifecycle.Deps{Log: e.log},
		Seams:       lifecycle.Seams{Failpoint: failpointFromEnv(os.Getenv("FFL_FAILPOINT"), e.log)},
	}
	if os.Getenv("FFL_FAKE_XPRA") == "1" {
		// Test hook: the fast end-to-end tests run internal/fakexpra, which serves HTTP but has
		// no X display and is no Python script.
		e.log.Warn("FFL_FAKE_XPRA=1: readiness is HTTP only and the draw check is off (tests only)")
		st.Probe = lifecycle.HTTPProbe{}
		st.DrawCheck = func(context.Context, string, string) error { return nil }
	}
	return st, nil
}

// failpointFromEnv returns a hook that SIGKILLs the launcher at the named step of a session's
// life (FFL_FAILPOINT=xpra-started, ...): the end-to-end tests prove with it that the Epilog
// cleans up after a launcher killed at any moment. Unset, it is nil and costs nothing.
func failpointFromEnv(step string, log *logrus.Entry) func(string) {
	if step == "" {
		return nil
	}
	return func(at string) {
		if at == step {
			log.WithField("step", at).Warn("FFL_FAILPOINT: killing the launcher here")
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

// socketPath is where this job's supervisor listens: $FFL_CONTROL_SOCKET when set (the command a
// supervisor wraps gets it), else the control socket in the job's runtime dir.
func (e *jobEnv) socketPath() (string, error) {
	if p := os.Getenv(lifecycle.EnvControlSocket); p != "" {
		return p, nil
	}
	for _, dir := range runtimedir.Existing(e.layout) {
		p := filepath.Join(dir, layout.ControlSocket)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p, nil
		}
	}
	if e.job.Local {
		return "", fmt.Errorf("%w: outside Slurm, set FFL_CONTROL_SOCKET (printed by 'ffl-launch run') to reach a supervisor", lifecycle.ErrNotFound)
	}
	return "", fmt.Errorf("%w: no supervisor for job %s on node %s: start one with 'ffl-launch run'", lifecycle.ErrNotFound, e.job.Key(), e.job.Node)
}

// keyboardLayout is keyboard_layout for the sessions: "" for "auto" (the browser's language).
func keyboardLayout(s string) string {
	if s == config.KeyboardAuto {
		return ""
	}
	return s
}
