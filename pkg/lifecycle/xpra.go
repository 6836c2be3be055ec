package lifecycle

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// sessionPaths are the directories of one session: Home in the user's home (may be NFS), Runtime
// on the node. Everything xpra, Xvfb and Firefox write goes below one of them, except the X
// socket (and, where Xvfb makes one, lock) in /tmp, which Stop removes by display number: with
// HOME, TMPDIR, XAUTHORITY, XDG_RUNTIME_DIR, XDG_CACHE_HOME, XDG_CONFIG_HOME, XDG_DATA_HOME,
// XDG_STATE_HOME and XPRA_USER_CONF_DIRS pointing into the session (and an xpra.conf with
// "start =" there), xpra 3.1 with Firefox was checked to write nothing else.
type sessionPaths struct {
	Home    string
	Runtime string
}

// Home-side subdirectories of a session, created 0700.
var homeSubdirs = []string{"profile", "home", "config", "data", "xpraconf"}

// Node-local subdirectories of a session, created 0700.
var runtimeSubdirs = []string{"run", "xpra", "tmp", "cache"}

// socketName is xpra's unix socket in the session's node-local xpra dir (0700): the only
// place xpra listens; the front relays the port to it.
const socketName = "ffl.sock"

// maxSocketPath is the longest unix socket path the kernel takes (sun_path is 108 bytes).
const maxSocketPath = 107

func (p sessionPaths) profile() string    { return filepath.Join(p.Home, "profile") }
func (p sessionPaths) xauthority() string { return filepath.Join(p.Home, "Xauthority") }
func (p sessionPaths) xpraLog() string    { return filepath.Join(p.Runtime, "xpra.log") }
func (p sessionPaths) firefoxLog() string { return filepath.Join(p.Runtime, "firefox.log") }
func (p sessionPaths) socket() string     { return filepath.Join(p.Runtime, "xpra", socketName) }

// xpraEnv is the whole environment of the session (env -i style): nothing of the job's
// environment leaks in except PATH and the locale, and the marker reaches every process. The
// marker comes first: xpra passes its environment on in order, so a cleanup scan finds it in
// the first bytes of every session process's /proc/PID/environ.
func xpraEnv(p sessionPaths, user, path, lang, marker string) []string {
	if lang == "" {
		lang = "C.UTF-8"
	}
	return []string{
		layout.MarkerVar + "=" + marker,
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
	}
}

// leanXpraArgs turn off what an HTML5 session never uses but xpra 3.1 loads anyway (measured:
// xpra 121 -> 58 MiB PSS, Xvfb 63 -> 29 MiB): OpenGL probing, video encoders and colourspace
// converters (the HTML5 client draws jpeg/png/webp), sound, mmap (local clients only), the
// system tray and input-method forwarding. They come before xpra_args, so an admin's
// xpra_args can turn any of them back on (xpra takes the last value of an option).
var leanXpraArgs = []string{
	// noprobe, not no: xpra 3.1's X11 server core skips its OpenGL probe only for "noprobe"
	// (x11_server_core.py, query_opengl); with "no" it still runs `xpra opengl --opengl=yes`
	// as a child and waits for it during its start. xpra 6 skips it for either value.
	"--opengl=noprobe",
	"--video-encoders=none",
	"--csc-modules=none",
	"--speaker=off",
	"--microphone=off",
	"--mmap=no",
	"--bell=no",
	"--system-tray=no",
	"--input-method=none",
}

// xvfbCommand is xpra's Xvfb command line with a screen of the configured size (xpra resizes
// the display to the client's, up to this) and without GLX, whose Mesa libraries cost Xvfb
// half its memory and which Firefox's software renderer does not use. xpra expands
// $XAUTHORITY itself.
func xvfbCommand(screen string) string {
	return "Xvfb +extension Composite -extension GLX -screen 0 " + screen + "x24+32 -dpi 96 -nolisten tcp -noreset -auth $XAUTHORITY"
}

// versionArgs are the options whose name or existence depends on xpra's version v. Every other
// option ffl passes is in the option parser of 3.1, 5.x and 6.x alike (checked against
// xpra/scripts/main.py of 3.1 and parsing.py of 5.0 to 6.5: docs/XPRA.md).
//
//   - --dbus-proxy: 6.0 removed it (an unknown option ends xpra with exit 1); before, ffl
//     turns it off like the other dbus services.
//   - --websocket-upgrade (6.0) and --http (6.3) decide whether a connection on the unix socket
//     may be HTTP or a WebSocket at all; both default to yes, but a site's /etc/xpra/xpra.conf
//     can turn them off, and then the HTML5 client never loads. ffl's session needs both, so
//     it says so on the command line, which xpra reads after its config files.
//   - --packet-encoders=rencodeplus from 5.0: ffl's control client speaks rencodeplus there,
//     and a config file can leave it out. Debian's /etc/xpra/conf.d/10_network.conf (xpra 3.1)
//     says "packet-encoders = rencode, bencode, yaml", which xpra 6 reads as "yaml" (it drops
//     what it no longer has): seen with xpra 6.5.5 on this machine, the control request was
//     refused with "'rencodeplus' decoder is not available".
//   - --ssh-upgrade=no (5.0), --ssl-upgrade=no (6.0), --rdp-upgrade=no (6.3): what else a
//     connection on the unix socket may turn into. The door relays only HTTP, so none is ever
//     wanted; off, xpra 6 also stops logging "cannot enable SSH socket upgrades" where paramiko
//     is missing.
func versionArgs(v xpra.Version) []string {
	var args []string
	if v.Encoding() == xpra.RencodePlus {
		args = append(args, "--packet-encoders=rencodeplus")
	}
	if v.AtLeast(5, 0) {
		args = append(args, "--ssh-upgrade=no")
	}
	if v.AtLeast(6, 0) {
		args = append(args, "--ssl-upgrade=no")
	}
	if v.AtLeast(6, 3) {
		args = append(args, "--rdp-upgrade=no")
	}
	if !v.AtLeast(6, 0) {
		args = append(args, "--dbus-proxy=no")
	}
	if v.AtLeast(6, 0) {
		args = append(args, "--websocket-upgrade=yes")
	}
	if v.AtLeast(6, 3) {
		args = append(args, "--http=yes")
	}
	return args
}

// xpraArgs is the command line for xpra version v that keeps the session in the foreground, in
// the job's cgroup (--systemd-run=no), confined to its directories, listening only on its 0700
// unix socket (the front relays the port to it), and ended with its children. displayFD is the
// child's fd number on which xpra writes the display.
func xpraArgs(v xpra.Version, p sessionPaths, displayFD int, screen string, firefox []string, extra []string) []string {
	args := []string{
		"start",
		"--bind=" + p.socket(),
		"--html=on",
		"--daemon=no",
		"--exit-with-children=yes",
		"--terminate-children=yes",
		"--mdns=no",
		"--pulseaudio=no",
		"--notifications=no",
		"--dbus-launch=",
		"--dbus-control=no",
		"--systemd-run=no",
		"--webcam=no",
		"--printing=no",
		"--file-transfer=no",
		// No client can make xpra run a command (defence behind the front's door): the HTML5
		// client's start-command packet is then not even handled (its handler is registered only
		// when this is on at start), and the start/start-child control commands refuse. The
		// toggle-feature control command cannot turn it back on in xpra 3.1 to 6.x: it looks for
		// an attribute named "start-new-commands" (hyphens), which never exists.
		"--start-new-commands=no",
		// Copy and paste both ways (docs/DESIGN.md, "Keyboard and clipboard"), whatever a site's
		// xpra.conf says; an admin's xpra_args (later, so they win) can restrict or turn it off.
		"--clipboard=yes",
		"--clipboard-direction=both",
		"--socket-dir=" + filepath.Join(p.Runtime, "xpra"),
		"--socket-dirs=" + filepath.Join(p.Runtime, "xpra"),
		"--pidfile=" + filepath.Join(p.Runtime, "xpra.pid"),
		"--chdir=" + filepath.Join(p.Home, "home"),
		"--displayfd=" + strconv.Itoa(displayFD),
		"--xvfb=" + xvfbCommand(screen),
	}
	args = append(args, versionArgs(v)...)
	args = append(args, leanXpraArgs...)
	args = append(args, extra...)
	// Last: nothing in xpra_args may replace the one child of the session.
	return append(args, "--start-child="+shellJoin(firefox))
}

// idleArgs makes xpra version v disconnect the browser after idle without keyboard or mouse
// input (0: never). xpra 3.1 to 6.x count key presses and repeats, pointer moves, button presses
// (the wheel included) and the focus of a window as input, never the HTML5 client's pings, so
// an open tab nobody uses goes quiet and JupyterHub's culler, which sees every byte through
// jupyter-server-proxy as activity, can stop the server (config key idle_timeout). The client
// gets the reason "idle timeout" and does not reconnect by itself; the front's disconnect page
// says what happened. They come before xpra_args, so an admin's --idle-timeout wins.
//
// xpra 6 turns its idle subsystem on when either idle timeout is set, and that subsystem's
// start-up schedules the server's own idle timeout even when it is 0 (off): the server exits at
// once, "No valid client connections for 0 seconds" (seen with 6.5.5: schedule_server_timeout
// in server/subsystem/idle.py checks for 0 only when cancelling). So from 6.0 ffl also sets
// --server-idle-timeout to the largest value GLib's timer takes (seconds*1000 in 32 bits,
// about 49 days): longer than any job, so the server never exits for want of a client.
func idleArgs(v xpra.Version, idle time.Duration) []string {
	if idle <= 0 {
		return nil
	}
	secs := int64((idle + time.Second - 1) / time.Second)
	args := []string{"--idle-timeout=" + strconv.FormatInt(secs, 10)}
	if v.AtLeast(6, 0) {
		args = append(args, "--server-idle-timeout="+strconv.Itoa(maxServerIdleTimeout))
	}
	return args
}

// maxServerIdleTimeout is the largest --server-idle-timeout xpra 6 can arm (see idleArgs).
const maxServerIdleTimeout = (1<<32 - 1) / 1000

// firefoxCommand is Firefox on its profile, never talking to another Firefox of the same user
// (--no-remote --new-instance), its output in the session's own firefox.log (xpra's log stays
// xpra's: a failed start quotes both). With home set, Firefox runs with the user's real HOME
// and working directory, so every file dialog ("Save as", print to file, upload) opens in the
// user's home, not in the session tree that goes with the session; the profile comes from
// --profile and the caches, config and temp files from the session's XDG_* and TMPDIR, so
// nothing else of Firefox lands in the home. xpra itself keeps the session's HOME. xpra splits
// the --start-child string like a shell (shlex) but runs no shell, hence sh -c; exec keeps
// Firefox the child xpra watches (--exit-with-children).
func firefoxCommand(binary string, p sessionPaths, profile, home string, extra []string, urls []string) []string {
	cmd := []string{binary, "--no-remote", "--new-instance", "--profile", profile}
	cmd = append(cmd, extra...)
	for _, u := range urls {
		if u != "" {
			cmd = append(cmd, u)
		}
	}
	script := "exec " + shellJoin(cmd) + " >>" + shellJoin([]string{p.firefoxLog()}) + " 2>&1"
	if home != "" {
		h := shellJoin([]string{home})
		script = "cd " + h + " && HOME=" + h + " " + script
	}
	return []string{"/bin/sh", "-c", script}
}

// shellJoin quotes words for a POSIX shell (and for xpra's shlex split of --start-child).
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

// UserJS is the user.js ffl writes into a session's profile (exported for `make bench`, whose
// floor with ffl's settings runs Firefox alone with it). It keeps a fresh profile quiet (no first-run tab, telemetry, update or default-browser
// prompts: a fresh profile opens a first-run tab unless datareporting.policy.firstRunURL is
// empty) and lean: content processes bounded by contentProcesses, no preallocated
// or privileged extra processes, no spell-check dictionaries, a bounded memory cache. An idle
// session then runs 4 Firefox processes instead of 12 (`make bench` reports its PSS). Downloads
// go to downloadDir without a question, and the disk cache to cacheDir (node-local, removed
// with the session), also when the profile is the persistent one in the home. ffl rewrites it
// at every start: the user's own settings live in prefs.js (about:config, Settings).
func UserJS(contentProcesses int, downloadDir, cacheDir string) string {
	if contentProcesses < 1 {
		contentProcesses = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, userJSTemplate, contentProcesses)
	pref := func(name string, v any) {
		j, _ := json.Marshal(v) // a JSON string or number is a valid JavaScript literal
		fmt.Fprintf(&b, "user_pref(%q, %s);\n", name, j)
	}
	pref("browser.cache.disk.parent_directory", cacheDir)
	if downloadDir != "" {
		pref("browser.download.dir", downloadDir)
		pref("browser.download.lastDir", downloadDir)
		pref("browser.download.folderList", 2)
		pref("browser.download.useDownloadDir", true)
		pref("browser.download.always_ask_before_handling_new_types", false)
		pref("browser.download.start_downloads_in_tmp_dir", false)
	}
	return b.String()
}

// userDirsFile is the session's $XDG_CONFIG_HOME/user-dirs.dirs: GTK's file chooser shows the
// download dir it names. A path that this format cannot carry verbatim is left out.
func userDirsFile(downloadDir string) string {
	if downloadDir == "" || strings.ContainsAny(downloadDir, "\"\\`$") || hasControl(downloadDir) {
		return ""
	}
	return "# written by ffl for this session\nXDG_DOWNLOAD_DIR=\"" + downloadDir + "\"\n"
}

const userJSTemplate = `// written by ffl at every start of a session (your own settings: about:config)
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
user_pref("app.shield.optoutstudies.enabled", false);
user_pref("browser.discovery.enabled", false);
user_pref("browser.tabs.warnOnClose", false);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("breakpad.reportURL", "");
user_pref("browser.crashReports.unsubmittedCheck.autoSubmit2", false);
user_pref("dom.ipc.processCount", %[1]d);
user_pref("dom.ipc.processCount.webIsolated", 1);
user_pref("fission.autostart", false);
user_pref("dom.ipc.processPrelaunch.enabled", false);
user_pref("dom.ipc.keepProcessesAlive.web", 0);
user_pref("dom.ipc.forkserver.enable", false);
user_pref("extensions.webextensions.remote", false);
user_pref("browser.tabs.remote.separatePrivilegedContentProcess", false);
user_pref("browser.tabs.remote.separatePrivilegedMozillaWebContentProcess", false);
user_pref("browser.newtab.preload", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("network.process.enabled", false);
user_pref("media.rdd-process.enabled", false);
user_pref("browser.sessionhistory.max_total_viewers", 0);
user_pref("browser.cache.memory.capacity", 16384);
user_pref("layout.spellcheckDefault", 0);
user_pref("extensions.pocket.enabled", false);
user_pref("browser.ml.enable", false);
user_pref("browser.translations.enable", false);
// JS heaps are collected from 8 MiB instead of Firefox's 27: an idle session 8-9 MiB PSS smaller, no slower start (issue 20)
user_pref("javascript.options.mem.gc_allocation_threshold_mb", 8);
`
