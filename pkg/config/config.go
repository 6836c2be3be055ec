// Package config holds ffl's settings: defaults, the TOML file
// (/etc/ffl/ffl.toml, $FFL_CONFIG or --config), the FIREFOX_LAUNCHER_*
// environment overrides and the validation of all of them.
//
// Parsing is strict on purpose: an unknown key, a key in the wrong case or a
// value of the wrong type is an error naming the file and the key, because a
// silently ignored typo in a file read by a root Epilog is worse than a
// refused start. Every error is one line (see Error).
package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/internal/oneline"
)

// Names of the places configuration comes from.
const (
	// DefaultPath is the system-wide file; missing is fine (defaults apply).
	DefaultPath = "/etc/ffl/ffl.toml"
	// EnvConfig names an explicit configuration file (missing is an error).
	EnvConfig = "FFL_CONFIG"
	// EnvCleanupTimeout overrides cleanup_timeout, in seconds ("2.5" allowed).
	// The name is inherited from the original launcher, which documented it
	// but never read it.
	EnvCleanupTimeout = "FIREFOX_LAUNCHER_CLEANUP_TIMEOUT"
	// EnvDebug turns on debug logging when truthy ("1", "true", "yes", "on").
	EnvDebug = "FIREFOX_LAUNCHER_DEBUG"
)

// Values of profile.
const (
	// ProfilePersistent keeps one profile in the state dir between sessions (bookmarks,
	// history, logins, cookies, preferences); a second concurrent session falls back to
	// ProfileSession.
	ProfilePersistent = "persistent"
	// ProfileSession gives every session a throwaway profile in its session tree.
	ProfileSession = "session"
	// KeyboardAuto is keyboard_layout's default: the layout of the browser's language.
	KeyboardAuto = "auto"
)

// Prestart is jupyter_prestart: true, false, or "recent".
type Prestart string

// Values of jupyter_prestart.
const (
	// PrestartNever starts the proxy port's session at the first visit.
	PrestartNever Prestart = "false"
	// PrestartAlways starts it with every notebook server.
	PrestartAlways Prestart = "true"
	// PrestartRecent starts it with the notebook server when the user visited a Jupyter proxy
	// port's Firefox within RecentVisit before (the record: lifecycle's VisitFile in the state
	// dir), else at the first visit: the memory is spent on the users who open Firefox, and a
	// user who stops opening it stops paying after RecentVisit.
	PrestartRecent Prestart = "recent"
)

// RecentVisit is how recent a visit makes jupyter_prestart = "recent" start the session early:
// two weeks spans a user's weekly routine and a holiday week's gap.
const RecentVisit = 14 * 24 * time.Hour

// UnmarshalTOML implements toml.Unmarshaler: a boolean, or one of the values as a string.
func (p *Prestart) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case bool:
		*p = PrestartNever
		if v {
			*p = PrestartAlways
		}
		return nil
	case string:
		switch q := Prestart(v); q {
		case PrestartNever, PrestartAlways, PrestartRecent:
			*p = q
			return nil
		}
	}
	return fmt.Errorf(`must be true, false or "recent" (started with the notebook server when the user opened Firefox from JupyterLab in the last %d days)`, int(RecentVisit/(24*time.Hour)))
}

// MarshalTOML writes true and false as booleans and "recent" as a string, the way
// UnmarshalTOML reads them, so that an encoded Config round-trips.
func (p Prestart) MarshalTOML() ([]byte, error) {
	if p == PrestartNever || p == PrestartAlways {
		return []byte(p), nil
	}
	return []byte(strconv.Quote(string(p))), nil
}

// DefaultIdleTimeout is idle_timeout's default: longer than anyone reads one page without
// touching mouse or keyboard, short against a walltime of hours, and on the order of the idle
// timeouts JupyterHub sites give their culler (which adds its own on top).
const DefaultIdleTimeout = 30 * time.Minute

// DefaultMetricsFile is in the directory Debian's prometheus-node-exporter reads
// (--collector.textfile.directory).
const DefaultMetricsFile = "/var/lib/prometheus/node-exporter/ffl.prom"

// DefaultSeenDir is on the node's disk (it must survive a reboot), root's.
const DefaultSeenDir = "/var/lib/ffl/seen"

// SlurmDefaultKillWait is Slurm's default KillWait: the time between the
// SIGTERM that starts ffl's grace path and the SIGKILL that ends it.
const SlurmDefaultKillWait = 30 * time.Second

// Config is ffl's complete configuration. The zero value is not useful:
// start from Default (Load does).
type Config struct {
	// StateDir holds per-session data in the user's home (may be NFS).
	// "~/" is the job owner's home, expanded by ExpandHome.
	StateDir string `toml:"state_dir"`
	// RuntimeDir is the root-owned, node-local parent of job-<key>/ dirs
	// made by ffl-prolog; the Epilog looks here first.
	RuntimeDir string `toml:"runtime_dir"`
	// TempDir is the fallback parent of ffl-<uid>/ when RuntimeDir/job-<key>
	// does not exist (no Prolog configured).
	TempDir string `toml:"temp_dir"`
	// PortMin and PortMax bound the TCP ports tried for xpra's HTML5 server.
	PortMin int `toml:"port_min"`
	PortMax int `toml:"port_max"`
	// BindAddress is where xpra listens (loopback by default: reach it
	// through an SSH or Jupyter proxy).
	BindAddress string `toml:"bind_address"`
	// StartTimeout bounds the wait for xpra's HTML5 page to answer.
	StartTimeout Duration `toml:"start_timeout"`
	// CleanupTimeout bounds the grace path: SIGTERM to a session, then
	// SIGKILL. It must end well inside Slurm's KillWait.
	CleanupTimeout Duration `toml:"cleanup_timeout"`
	// PortAttempts is no longer used (ffl binds each port itself, so nothing is retried); it
	// is still accepted so that existing files keep working. It bounded the retries when xpra reported "Address already in
	// use" (xpra's own bind is the only race-free port check).
	PortAttempts int `toml:"port_attempts"`
	// Xpra is the xpra command: a name looked up in PATH or an absolute path.
	Xpra string `toml:"xpra"`
	// XpraArgs are extra "--option" arguments for xpra. Options ffl sets
	// itself (binding, auth, daemon, sockets, children) are refused.
	XpraArgs []string `toml:"xpra_args"`
	// Firefox is the browser command (a name in PATH or an absolute path).
	Firefox string `toml:"firefox"`
	// FirefoxArgs are extra options for Firefox; profile selection is ffl's.
	FirefoxArgs []string `toml:"firefox_args"`
	// StartURL is the page Firefox opens first.
	StartURL string `toml:"start_url"`
	// ScreenSize is the Xvfb screen ("WIDTHxHEIGHT"): xpra resizes the display to the
	// client's window, up to this size.
	ScreenSize string `toml:"screen_size"`
	// ContentProcesses bounds Firefox's web content processes (each costs tens of MiB).
	ContentProcesses int `toml:"content_processes"`
	// JupyterPrestart says when the session on the Jupyter proxy port starts with the notebook
	// server, before anyone asks: the first visit is then as fast as a later one, at the cost of
	// an idle session's memory for the job's life, opened or not. PrestartRecent (the default)
	// pays it only for users who opened Firefox from JupyterLab lately.
	JupyterPrestart Prestart `toml:"jupyter_prestart"`
	// DownloadDir is where Firefox saves downloads without asking: "" is the user's XDG download
	// dir (~/.config/user-dirs.dirs) or ~/Downloads; "~/" is the job owner's home. It is never
	// inside a session tree, so no cleanup can remove what the user downloaded.
	DownloadDir string `toml:"download_dir"`
	// Profile is "persistent" (one Firefox profile in the state dir, kept between sessions) or
	// "session" (a throwaway profile per session).
	Profile string `toml:"profile"`
	// EndWarning is how long before the job's time limit every session shows that it is ending
	// and where the downloads are (0: never; SIGUSR1 shows it at any time).
	EndWarning Duration `toml:"end_warning"`
	// KeyboardLayout is the X keyboard layout of the sessions ("de", "fr", "us"), or
	// KeyboardAuto: the HTML5 client's guess from the browser's language.
	KeyboardLayout string `toml:"keyboard_layout"`
	// IdleTimeout ends the browser's connection to a session after that long without keyboard
	// or mouse input (xpra's --idle-timeout; 0: never), so that an open but forgotten tab stops
	// counting as activity for JupyterHub's idle culler.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxSessions bounds the sessions one job may run at once.
	MaxSessions int `toml:"max_sessions"`
	// LogFormat is "text" or "json".
	LogFormat string `toml:"log_format"`
	// Epilog holds the settings of ffl-epilog and ffl-prolog.
	Epilog EpilogConfig `toml:"epilog"`

	// Debug enables debug logging. It is not read from the file: it comes
	// from FIREFOX_LAUNCHER_DEBUG (ApplyEnv) or --debug.
	Debug bool `toml:"-"`
}

// EpilogConfig is the [epilog] table: settings of the root-run cleanup.
type EpilogConfig struct {
	// Timeout bounds one whole Epilog run; slurmd drains the node when its
	// PrologEpilogTimeout is exceeded, so ffl gives up first.
	Timeout Duration `toml:"timeout"`
	// FailOnUnkillable is accepted so that existing files keep loading, and
	// ignored (the hooks log a warning): a user can make a process survive
	// SIGKILL at will (D state on the user's own FUSE mount), so it must not
	// decide an exit status that drains the node. Unkillable processes are
	// counted in left= of the Epilog's summary line.
	FailOnUnkillable bool `toml:"fail_on_unkillable"`
	// LogFile is an extra log file for the Epilog ("" = none): slurmd
	// discards its stdout and stderr.
	LogFile string `toml:"log_file"`
	// Syslog sends Epilog messages to syslog.
	Syslog bool `toml:"syslog"`
	// SweepOlderThan is the age after which the sweep removes session trees
	// of jobs that no longer exist.
	SweepOlderThan Duration `toml:"sweep_older_than"`
	// TempOlderThan is the age after which stale ffl-<uid> temp dirs go.
	TempOlderThan Duration `toml:"temp_older_than"`
	// MetricsFile is the node_exporter textfile-collector file the Epilog, the Prolog and the
	// sweep add their counts to (pkg/metrics); "" turns metrics off, and so does a missing
	// directory, so the default costs nothing on a node without node_exporter.
	MetricsFile string `toml:"metrics_file"`
	// SeenDir is where the Prolog remembers, on the node's disk, which users ran jobs here
	// and in which boot: after a reboot has wiped /run, that is the only trace of who may have
	// stale session trees in their home for this node ("" = off).
	SeenDir string `toml:"seen_dir"`
}

// Default returns the built-in configuration (what an absent
// /etc/ffl/ffl.toml means). etc/ffl.toml documents the same values.
func Default() Config {
	return Config{
		StateDir:       "~/.firefox-launcher",
		RuntimeDir:     "/run/ffl",
		TempDir:        "/tmp",
		PortMin:        8001,
		PortMax:        8999,
		BindAddress:    "127.0.0.1",
		StartTimeout:   Duration{45 * time.Second},
		CleanupTimeout: Duration{3 * time.Second},
		PortAttempts:   10,
		Xpra:           "xpra",
		Firefox:        "firefox-esr",
		StartURL:       "about:blank",
		MaxSessions:    4,
		Profile:        ProfilePersistent,
		EndWarning:     Duration{10 * time.Minute},
		KeyboardLayout: KeyboardAuto,
		IdleTimeout:    Duration{DefaultIdleTimeout},
		ScreenSize:     "2560x1600",
		// One: measured side by side in `make bench` (S-cp), a second content process saves no
		// time to painted and no memory with one page open, and each one costs tens of MiB once
		// several sites are.
		ContentProcesses: 1,
		JupyterPrestart:  PrestartRecent,
		LogFormat:        "text",
		Epilog: EpilogConfig{
			Timeout:        Duration{10 * time.Second},
			Syslog:         true,
			SweepOlderThan: Duration{168 * time.Hour},
			TempOlderThan:  Duration{24 * time.Hour},
			MetricsFile:    DefaultMetricsFile,
			SeenDir:        DefaultSeenDir,
		},
	}
}

// ExpandHome returns StateDir with a leading "~" replaced by home: ExpandStateDir(c.StateDir, home).
func (c Config) ExpandHome(home string) (string, error) { return ExpandStateDir(c.StateDir, home) }

// ExpandStateDir is ffl's one home expansion, shared by the launcher and the root hooks: it
// turns a state_dir ("~/dir" or a clean absolute path) into the job owner's absolute state dir.
// home is the owner's home directory as NSS reports it (never $HOME: the Epilog has none and
// the launcher's may be redirected) and must be a clean absolute path other than "/"; it is not
// needed for an absolute stateDir. A stateDir that could leave the home ("~/../x") is refused.
func ExpandStateDir(stateDir, home string) (string, error) {
	if err := checkStateDir(stateDir); err != nil {
		return "", &Error{Key: "state_dir", Value: strconv.Quote(stateDir), Reason: err.Error()}
	}
	rest, tilde := strings.CutPrefix(stateDir, "~/")
	if !tilde {
		return stateDir, nil
	}
	if err := checkAbsDir(home); err != nil {
		return "", fmt.Errorf("home directory %q of the job owner: %w", home, err)
	}
	return filepath.Join(home, rest), nil
}

// ExpandDownloadDir turns download_dir ("~/dir" or a clean absolute path; "" stays "", which
// means the XDG download dir) into an absolute path below the job owner's home.
func ExpandDownloadDir(dir, home string) (string, error) {
	if dir == "" {
		return "", nil
	}
	if dir == "~" || dir == "~/" {
		if err := checkAbsDir(home); err != nil {
			return "", fmt.Errorf("home directory %q of the job owner: %w", home, err)
		}
		return home, nil
	}
	out, err := ExpandStateDir(dir, home)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Key = "download_dir"
		}
		return "", err
	}
	return out, nil
}

// Duration is a time.Duration that TOML spells "3s", "1m30s" or as an
// integer number of seconds (TOML has no duration type, and nanoseconds, the
// library's default for integers, are never what an admin means).
type Duration struct{ time.Duration }

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		p, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf(`not a duration (write e.g. "3s", "1m30s" or whole seconds)`)
		}
		d.Duration = p
		return nil
	case int64:
		const limit = int64(1<<63-1) / int64(time.Second)
		if v > limit || v < -limit {
			return fmt.Errorf("too large a number of seconds")
		}
		d.Duration = time.Duration(v) * time.Second
		return nil
	default:
		return fmt.Errorf(`must be a duration like "3s" or "1m30s", or whole seconds`)
	}
}

// MarshalText writes the duration the way UnmarshalTOML reads it, so that an
// encoded Config round-trips.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Error is a configuration problem, printed as one line that names the file
// (when there is one), the key or variable, its value and the fix:
//
//	/etc/ffl/ffl.toml: port_min = 99: must be between 1025 and 65535
type Error struct {
	File   string // the configuration file, "" for the environment or defaults
	Key    string // TOML key ("epilog.timeout") or environment variable
	Value  string // the offending value as written (quoted strings), may be ""
	Reason string // what is wrong and what to write instead
	Err    error  // underlying cause (an I/O error), may be nil
}

// Error formats `file: key = value: reason[: cause]` on one line, omitting
// the parts that are empty.
func (e *Error) Error() string {
	var parts []string
	if e.File != "" {
		parts = append(parts, e.File)
	}
	if e.Key != "" {
		k := e.Key
		if e.Value != "" {
			k += " = " + e.Value
		}
		parts = append(parts, k)
	}
	parts = append(parts, e.Reason)
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	return oneline.Line(strings.Join(parts, ": "))
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }
