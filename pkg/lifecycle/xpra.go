package lifecycle

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ffl-hpc/ffl/pkg/layout"
)

// sessionPaths are the directories of one session: Home in the user's home (may be NFS), Runtime
// on the node. Everything xpra, Xvfb and Firefox write goes below one of them (FACTS.md:
// XDG_*, HOME, TMPDIR and XPRA_USER_CONF_DIRS confine xpra 3.1 + Firefox), except the X lock
// and socket in /tmp, which Stop removes by display number.
type sessionPaths struct {
	Home    string
	Runtime string
}

// Home-side subdirectories of a session, created 0700.
var homeSubdirs = []string{"profile", "home", "config", "data", "xpraconf"}

// Node-side subdirectories of a session, created 0700.
var runtimeSubdirs = []string{"run", "xpra", "tmp", "cache"}

func (p sessionPaths) password() string   { return filepath.Join(p.Home, layout.PasswordFile) }
func (p sessionPaths) profile() string    { return filepath.Join(p.Home, "profile") }
func (p sessionPaths) xauthority() string { return filepath.Join(p.Home, "Xauthority") }
func (p sessionPaths) xpraLog() string    { return filepath.Join(p.Runtime, "xpra.log") }

// xpraEnv is the whole environment of the session (env -i style): nothing of the job's
// environment leaks in except PATH and the locale, and the marker reaches every process.
func xpraEnv(p sessionPaths, user, path, lang, marker string) []string {
	if lang == "" {
		lang = "C.UTF-8"
	}
	return []string{
		"HOME=" + filepath.Join(p.Home, "home"),
		"USER=" + user,
		"LOGNAME=" + user,
		"PATH=" + path,
		"LANG=" + lang,
		"TMPDIR=" + filepath.Join(p.Runtime, "tmp"),
		"XAUTHORITY=" + p.xauthority(),
		"XDG_RUNTIME_DIR=" + filepath.Join(p.Runtime, "run"),
		"XDG_CACHE_HOME=" + filepath.Join(p.Runtime, "cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(p.Home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(p.Home, "data"),
		"XDG_STATE_HOME=" + filepath.Join(p.Home, "data"),
		"XPRA_USER_CONF_DIRS=" + filepath.Join(p.Home, "xpraconf"),
		"MOZ_CRASHREPORTER_DISABLE=1",
		layout.MarkerVar + "=" + marker,
	}
}

// xpraArgs is the xpra 3.1 command line that keeps the session in the foreground, in the job's
// cgroup (--systemd-run=no), confined to its directories, password-protected on TCP, and ended
// with its children. displayFD is the child's fd number on which xpra writes the display.
func xpraArgs(p sessionPaths, bind string, port, displayFD int, firefox []string, extra []string) []string {
	args := []string{
		"start",
		"--bind-tcp=" + net.JoinHostPort(bind, strconv.Itoa(port)),
		"--tcp-auth=file:filename=" + p.password(),
		"--html=on",
		"--daemon=no",
		"--exit-with-children=yes",
		"--terminate-children=yes",
		"--mdns=no",
		"--pulseaudio=no",
		"--notifications=no",
		"--dbus-proxy=no",
		"--dbus-launch=",
		"--dbus-control=no",
		"--systemd-run=no",
		"--webcam=no",
		"--printing=no",
		"--file-transfer=no",
		"--socket-dir=" + filepath.Join(p.Runtime, "xpra"),
		"--socket-dirs=" + filepath.Join(p.Runtime, "xpra"),
		"--pidfile=" + filepath.Join(p.Runtime, "xpra.pid"),
		"--chdir=" + filepath.Join(p.Home, "home"),
		"--displayfd=" + strconv.Itoa(displayFD),
		"--start-child=" + shellJoin(firefox),
	}
	return append(args, extra...)
}

// firefoxCommand is Firefox confined to the session's own profile, never talking to another
// Firefox of the same user (--no-remote --new-instance).
func firefoxCommand(binary string, p sessionPaths, extra []string, url string) []string {
	cmd := []string{binary, "--no-remote", "--new-instance", "--profile", p.profile()}
	cmd = append(cmd, extra...)
	if url != "" {
		cmd = append(cmd, url)
	}
	return cmd
}

// shellJoin quotes words for xpra's --start-child, which xpra runs through a shell.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.IndexFunc(w, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == '=' || r == ',' ||
				(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
		}) < 0 {
			q[i] = w
			continue
		}
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// userJS keeps a fresh profile quiet: no first-run tab, no telemetry, no update or default
// browser prompts (FACTS.md: without it a first-run tab opens).
const userJS = `// written by ffl for this session only
user_pref("datareporting.policy.firstRunURL", "");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.unified", false);
user_pref("toolkit.telemetry.archive.enabled", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.aboutwelcome.enabled", false);
user_pref("startup.homepage_welcome_url", "");
user_pref("startup.homepage_welcome_url.additional", "");
user_pref("app.update.enabled", false);
user_pref("app.normandy.enabled", false);
user_pref("browser.tabs.warnOnClose", false);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("breakpad.reportURL", "");
user_pref("browser.crashReports.unsubmittedCheck.autoSubmit2", false);
`
