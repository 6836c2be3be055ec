// Package layout says where a session's files live, on the node and in the user's home, and
// validates every name that becomes a path component. Both sides of ffl use it: the launcher
// creates these paths, the Epilog/Prolog/sweep find and remove them, so the two can never
// disagree about what belongs to which (node, job, port).
package layout

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Names of fixed entries in the layout.
const (
	// SessionsDir is the directory under the state dir that holds one subtree per node.
	SessionsDir = "sessions"
	// StateFile is the session state file, kept in the node-local session dir.
	StateFile = "state.json"
	// SupervisorFile records the launcher (pid, start time, boot id) in the job's runtime dir.
	SupervisorFile = "supervisor.json"
	// ControlSocket is the supervisor's API socket in the job's runtime dir (0700).
	ControlSocket = "control.sock"
	// ProxySecretFile holds the Jupyter proxy port's secret (0600) in the job's runtime dir:
	// jupyter_server_config.py sends it as a request header, the port admits nothing without it.
	ProxySecretFile = "proxy-secret"
	// PasswordFile is the session's xpra TCP password in the home session dir.
	PasswordFile = "password"
	// ProfileDir is the persistent Firefox profile under the state dir: outside every session
	// tree, so no cleanup path (launcher, clean, Epilog, Prolog, sweep) ever reaches it.
	ProfileDir = "profile"
	// ProfileLockFile, beside ProfileDir, names the session that holds the persistent profile
	// (node, job, boot id, launcher): Firefox's own lock (IP:+PID) cannot tell a live holder on
	// another node from a dead one.
	ProfileLockFile = "profile.lock"
	// MarkerVar is put in the environment of every session process so that leftovers can be
	// found after the launcher is gone (xpra passes its environment to Xvfb and Firefox).
	MarkerVar = "FFL_SESSION"
	// MaxPort bounds the port part of a session name.
	MaxPort = 65535
)

// ErrBadName is returned for a directory entry that is not a name this layout creates.
var ErrBadName = errors.New("not an ffl name")

// Layout is the set of roots for one user's job on one node. All fields must be set; paths are
// absolute and already expanded (no "~").
type Layout struct {
	// StateDir is the user's ffl state directory in the home (may be NFS), e.g. ~/.firefox-launcher.
	StateDir string
	// RuntimeDir is the root-owned node-local parent made by ffl-prolog, e.g. /run/ffl.
	RuntimeDir string
	// TempDir is the node-local parent of the per-user fallback runtime dir, e.g. /tmp.
	TempDir string
	// UID is the job owner's uid.
	UID int
	// Node is the Slurm node name (path-safe).
	Node string
	// JobKey is the job's key (Slurm job ID or local-<pid>, path-safe).
	JobKey string
}

// Validate refuses a layout whose names could escape their parent directory.
func (l Layout) Validate() error {
	if !filepath.IsAbs(l.StateDir) {
		return fmt.Errorf("state dir %q: must be an absolute path", l.StateDir)
	}
	return l.ValidateNodeLocal()
}

// ValidateNodeLocal is Validate without the state dir: the node-local steps of the root hooks
// (the Epilog's fast path, ending processes, removing the runtime dirs) know the job before
// they know the owner's home, and must not ask NSS for it.
func (l Layout) ValidateNodeLocal() error {
	for _, p := range []struct{ name, v string }{{"runtime dir", l.RuntimeDir}, {"temp dir", l.TempDir}} {
		if !filepath.IsAbs(p.v) {
			return fmt.Errorf("%s %q: must be an absolute path", p.name, p.v)
		}
	}
	if err := ValidComponent(l.Node); err != nil {
		return fmt.Errorf("node name: %w", err)
	}
	if err := ValidComponent(l.JobKey); err != nil {
		return fmt.Errorf("job key: %w", err)
	}
	if l.UID < 0 {
		return fmt.Errorf("uid %d: must not be negative", l.UID)
	}
	return nil
}

// ValidComponent accepts a single, harmless path component: what job keys and node names become.
func ValidComponent(s string) error {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return fmt.Errorf("%q: %w", s, ErrBadName)
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return fmt.Errorf("%q: %w", s, ErrBadName)
		}
	}
	return nil
}

// HomeNodeDir is <state>/sessions/<node>: every job of this user on this node.
func (l Layout) HomeNodeDir() string { return filepath.Join(l.StateDir, SessionsDir, l.Node) }

// HomeJobDir is <state>/sessions/<node>/job-<key>: one job's home subtree on this node.
func (l Layout) HomeJobDir() string { return filepath.Join(l.HomeNodeDir(), JobDirName(l.JobKey)) }

// HomeSessionDir is the session's directory in the home (password, profile, config).
func (l Layout) HomeSessionDir(port int) string {
	return filepath.Join(l.HomeJobDir(), SessionDirName(port))
}

// PersistentProfileDir is <state>/profile, the profile kept between sessions.
func (l Layout) PersistentProfileDir() string { return filepath.Join(l.StateDir, ProfileDir) }

// ProfileLockPath is <state>/profile.lock.
func (l Layout) ProfileLockPath() string { return filepath.Join(l.StateDir, ProfileLockFile) }

// PreferredRuntimeJobDir is <runtime>/job-<key>, made by ffl-prolog for the job's user.
func (l Layout) PreferredRuntimeJobDir() string {
	return filepath.Join(l.RuntimeDir, JobDirName(l.JobKey))
}

// FallbackRuntimeParent is <temp>/ffl-<uid>, the user's own node-local parent used when no Prolog
// made the job's runtime dir.
func (l Layout) FallbackRuntimeParent() string {
	return filepath.Join(l.TempDir, UserTempName(l.UID))
}

// FallbackRuntimeJobDir is <temp>/ffl-<uid>/job-<key>.
func (l Layout) FallbackRuntimeJobDir() string {
	return filepath.Join(l.FallbackRuntimeParent(), JobDirName(l.JobKey))
}

// RuntimeJobDirs lists both candidate node-local job dirs, preferred first. Cleanup looks at
// both, so a job is found whichever one its launcher used.
func (l Layout) RuntimeJobDirs() []string {
	return []string{l.PreferredRuntimeJobDir(), l.FallbackRuntimeJobDir()}
}

// Marker is the value of MarkerVar for one session: "<key>/<node>/<port>/". The trailing slash
// makes it a prefix of nothing but itself ("…/80/" is no prefix of "…/8001/").
func (l Layout) Marker(port int) string { return l.JobMarkerPrefix() + strconv.Itoa(port) + "/" }

// JobMarkerPrefix is the marker prefix shared by all sessions of this job on this node.
func (l Layout) JobMarkerPrefix() string { return l.JobKey + "/" + l.Node + "/" }

// JobDirName is "job-<key>".
func JobDirName(key string) string { return "job-" + key }

// ParseJobDirName returns the key of a "job-<key>" name.
func ParseJobDirName(name string) (string, error) {
	key, ok := strings.CutPrefix(name, "job-")
	if !ok {
		return "", fmt.Errorf("%q: %w", name, ErrBadName)
	}
	if err := ValidComponent(key); err != nil {
		return "", err
	}
	return key, nil
}

// SessionDirName is "session-<port>".
func SessionDirName(port int) string { return "session-" + strconv.Itoa(port) }

// ParseSessionDirName returns the port of a "session-<port>" name; anything else is ErrBadName.
func ParseSessionDirName(name string) (int, error) {
	s, ok := strings.CutPrefix(name, "session-")
	if !ok || s == "" || len(s) > 5 || s[0] == '0' {
		return 0, fmt.Errorf("%q: %w", name, ErrBadName)
	}
	port, err := strconv.Atoi(s)
	if err != nil || port < 1 || port > MaxPort || strconv.Itoa(port) != s {
		return 0, fmt.Errorf("%q: %w", name, ErrBadName)
	}
	return port, nil
}

// UserTempName is "ffl-<uid>".
func UserTempName(uid int) string { return "ffl-" + strconv.Itoa(uid) }

// ParseUserTempName returns the uid of a "ffl-<uid>" name.
func ParseUserTempName(name string) (int, error) {
	s, ok := strings.CutPrefix(name, "ffl-")
	if !ok || s == "" || len(s) > 10 || (s[0] == '0' && s != "0") {
		return 0, fmt.Errorf("%q: %w", name, ErrBadName)
	}
	uid, err := strconv.Atoi(s)
	if err != nil || uid < 0 || strconv.Itoa(uid) != s {
		return 0, fmt.Errorf("%q: %w", name, ErrBadName)
	}
	return uid, nil
}

// privateSuffixLen is the length of the random hex suffix of a private temp parent.
const privateSuffixLen = 16

// PrivateTempName is "ffl-<uid>.<suffix>": a per-job node-local parent the launcher makes with
// an unpredictable suffix when another user squats <temp>/ffl-<uid> (sticky /tmp: the victim
// could neither use nor remove it). suffix must be 16 lowercase hex digits.
func PrivateTempName(uid int, suffix string) string { return UserTempName(uid) + "." + suffix }

// ParsePrivateTempName returns the uid of a "ffl-<uid>.<16 hex>" name.
func ParsePrivateTempName(name string) (int, error) {
	base, suffix, ok := strings.Cut(name, ".")
	if !ok || len(suffix) != privateSuffixLen || strings.Trim(suffix, "0123456789abcdef") != "" {
		return 0, fmt.Errorf("%q: %w", name, ErrBadName)
	}
	return ParseUserTempName(base)
}
