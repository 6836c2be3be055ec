package lifecycle

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// Settings is everything a Manager needs; the launcher builds it from slurmenv, config and
// flags. Its parts say what each field is: what the admin and the user chose, whose job this is,
// what the manager uses but does not own, and what only tests replace.
type Settings struct {
	Config
	JobIdentity
	Deps
	Seams
}

// Config is what the admin (ffl.toml) and the user (flags, environment) chose.
type Config struct {
	// DownloadDir is where Firefox saves downloads without asking (ResolveDownloadDir; "" lets
	// Firefox choose, inside its HOME). Never inside a session tree.
	DownloadDir string
	// PersistentProfile makes sessions use <state>/profile, one at a time (profile.lock); a
	// session that cannot have it gets a throwaway profile and a notice.
	PersistentProfile bool
	// Xpra and Firefox are the commands (resolved through PATH at start).
	Xpra, Firefox         string
	XpraArgs, FirefoxArgs []string
	// StartURL is opened by Firefox when a request names none.
	StartURL string
	// KeyboardLayout is the X keyboard layout the HTML5 client announces ("" for the layout of
	// the browser's language): front.Options.KeyboardLayout.
	KeyboardLayout string
	// BindAddress is where the sessions' ports listen (default 127.0.0.1).
	BindAddress      string
	PortMin, PortMax int
	MaxSessions      int
	// ScreenSize is Xvfb's screen ("WIDTHxHEIGHT"); xpra resizes the display to the client's,
	// up to this.
	ScreenSize string
	// IdleTimeout disconnects the browser after that long without keyboard or mouse input
	// (idleArgs; 0: never).
	IdleTimeout time.Duration
	// ContentProcesses bounds Firefox's web content processes.
	ContentProcesses int
	// StartTimeout bounds one session's start until Firefox is visible.
	StartTimeout time.Duration
	// CleanupTimeout is the grace between TERM and KILL when a session stops.
	CleanupTimeout time.Duration
	// Path and Lang are passed to the session's environment (only the safe parts: NewManager).
	Path, Lang string
}

// JobIdentity is whose job this is and which launcher runs it.
type JobIdentity struct {
	// Layout is where the job's files are (node, job, uid, directories).
	Layout layout.Layout
	// User is the job owner's name (USER/LOGNAME of the session).
	User string
	// Home is the job owner's home as NSS reports it: Firefox's HOME and working directory, so
	// that save and print-to-file dialogs open there ("" keeps HOME in the session tree).
	Home string
	// BootID and Self identify this launcher in the state files; PIDNS is the PID namespace
	// Self's PID and its children's PIDs belong to (proc.SelfPIDNamespace; 0: unknown).
	BootID string
	Self   proc.Identity
	PIDNS  uint64
}

// Deps are what the manager uses and does not own.
type Deps struct {
	Log *logrus.Entry
	// Reaper reaps orphans adopted by this launcher (child subreaper); nil when not a subreaper.
	Reaper *proc.Reaper
	// JobLive decides whether a profile holder on another node has ended (nil: squeue).
	JobLive JobLive
	// XpraVersion is the installed xpra's version; zero means New asks `xpra --version` (once:
	// the command line and the control client's packet encoding follow from it).
	XpraVersion xpra.Version
}

// Seams are what tests replace; zero values are the production behaviour.
type Seams struct {
	// Probe decides when a session is ready; nil means VisibleProbe.
	Probe Probe
	// XDir is where X servers put .X11-unix ("" = /tmp).
	XDir string
	// DrawCheck is the preflight that xpra can draw; nil means prereq.CheckDraw. The fast
	// tests' fake xpra is no Python script and sets a check of its own.
	DrawCheck func(ctx context.Context, xpraPath, path string) error
	// Failpoint, when set, is called at each named step of a session's life (see Steps); the
	// end-to-end tests use it to SIGKILL the launcher exactly there and prove the Epilog still
	// leaves nothing behind.
	Failpoint func(step string)
	// RefreshInterval is how often a running session's process list is re-recorded (default 15 s).
	RefreshInterval time.Duration
}

// Defaults for Settings' zero fields.
const (
	DefaultScreenSize       = "2560x1600"
	DefaultContentProcesses = 1 // pkg/config's default (the source), for callers without a config
)

// Steps a Failpoint is called at, in order of a session's life.
const (
	StepDirsCreated  = "dirs-created"  // node-local and home dirs exist, no state yet
	StepStateWritten = "state-written" // state file written, xpra not started
	StepXpraStarted  = "xpra-started"  // xpra started, identity recorded
	StepWaitingReady = "waiting-ready" // waiting until Firefox is visible
	StepGrace        = "grace"         // TERM sent to the session's processes
	StepRemoving     = "removing"      // processes gone, directories being removed
)

func (st *Settings) failpoint(step string) {
	if st.Failpoint != nil {
		st.Failpoint(step)
	}
}
