package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// KeyDoc documents one key of ffl.toml. Keys() is the one place a key's meaning is written:
// etc/ffl.toml (the shipped, all-commented file) and the ffl.toml(5) man page are generated from
// it, with the defaults taken from Default(), so neither can drift from the code (tests compare
// both with what is committed, and fail when a Config field has no entry here).
type KeyDoc struct {
	// Key is the dotted TOML key: "port_min", "epilog.timeout".
	Key string
	// Doc is what the key means and which values it takes, as sentences; a blank line starts a
	// new paragraph.
	Doc string
	// Env names the environment variable that overrides the key ("" for none) and how.
	Env string
}

// Keys lists every key of ffl.toml, in the order of the shipped file.
func Keys() []KeyDoc {
	return []KeyDoc{
		{Key: "state_dir", Doc: `Where ffl keeps its data in the home: the session trees (xpra's configuration, temporary profiles) under sessions/, removed with their sessions, and the persistent Firefox profile (profile/, profile.lock), never removed. "~/" is the job owner's home as NSS reports it (never $HOME); it may be on NFS. An absolute path must be private to one user (use $FFL_CONFIG for a per-user file).`},
		{Key: "runtime_dir", Doc: `Node-local, root-owned parent of the job-<id>/ runtime dirs that ffl-prolog creates (state files, xpra's socket, logs). The Epilog looks here first.`},
		{Key: "temp_dir", Doc: `Fallback parent of ffl-<uid>/job-<id>/ when runtime_dir/job-<id> does not exist (no Prolog configured).`},
		{Key: "port_min", Doc: `Lowest TCP port of the sessions (the xpra HTML5 client): 1025 <= port_min <= port_max <= 65535. ffl-launch binds a session's port itself the moment it picks it (xpra listens only on a unix socket in the session's 0700 dir) and admits a connection only from the session's user.`},
		{Key: "port_max", Doc: `Highest TCP port of the sessions.`},
		{Key: "bind_address", Doc: `Address the sessions' ports listen on (an IP address). Keep loopback: users reach a session through "ssh -L" or their Jupyter server, both of which connect as the user; ffl admits only connections the kernel attributes to the session's user (on 127.0.0.1 ffl also holds [::1]).`},
		{Key: "start_timeout", Doc: `How long a start may take until Firefox is visible (its first window mapped and painted).`},
		{Key: "cleanup_timeout", Doc: `Grace period when a session stops: SIGTERM, wait this long, then SIGKILL. Keep it well inside Slurm's KillWait (default 30 s).`,
			Env: EnvCleanupTimeout + ` (seconds, e.g. "2.5"), set per user or per job`},
		{Key: "port_attempts", Doc: `No longer used (ffl binds each port itself, nothing is retried); accepted for old files.`},
		{Key: "screen_size", Doc: `Xvfb's screen, WIDTHxHEIGHT (640x480 to 8192x8192). xpra resizes the display to the browser window of the client, up to this size; a bigger screen costs memory.`},
		{Key: "content_processes", Doc: `Firefox's web content processes (1 to 16): each costs tens of MiB on the job's memory.`},
		{Key: "jupyter_prestart", Doc: `When Firefox starts on the Jupyter proxy port (ffl-launch run --proxy-port): with the notebook server, before the first visit, or at the first visit. Started early, the user's first click on Firefox waits for no xpra or Firefox start (make bench, J1/J2 on a shared 2-core machine: the first visit 1.1-1.3x a later one, against 2.4x without), and the job holds an idle session's memory (make bench, L5: 0.35-0.5 GB PSS) for its whole life, opened or not. "recent" (the default): early only for a user whose browser opened a Jupyter Firefox in the last 14 days (ffl records each visit in state_dir, file jupyter-visit), so users who never open it pay nothing and a user who stops stops paying; true: early in every notebook job; false: always at the first visit.`},
		{Key: "xpra", Doc: `The xpra command: a name looked up in PATH or an absolute path.`},
		{Key: "xpra_args", Doc: `Extra xpra options ("--option=value"). Options ffl sets itself (bind, auth, daemon, systemd-run, sockets, start-child, ...) are refused. They come after ffl's lean defaults (--opengl=noprobe --video-encoders=none --csc-modules=none --speaker=off --microphone=off --mmap=no --bell=no --system-tray=no --input-method=none, and an Xvfb without GLX), so e.g. ["--video-encoders=all"] or a --xvfb=... of your own turn them back.`},
		{Key: "firefox", Doc: `The Firefox command: a name looked up in PATH or an absolute path.`},
		{Key: "firefox_args", Doc: `Extra Firefox options, e.g. ["--kiosk"]. No spaces or quotes; profile options (--profile, -P, --no-remote, --new-instance) are ffl's.`},
		{Key: "start_url", Doc: `The page Firefox opens first (an absolute URL; percent-encode spaces).`},
		{Key: "download_dir", Doc: `Where Firefox saves downloads, without asking. "" (the default) is the user's XDG download directory (XDG_DOWNLOAD_DIR in ~/.config/user-dirs.dirs, read from the home as NSS reports it, never $HOME), else ~/Downloads; "~/dir" is below the job owner's home; an absolute path is taken as is. Made (with the user's umask) when missing. It is never inside a session tree: no cleanup of ffl removes or changes a download. A download cut short by the end of the session keeps what had arrived as NAME.partial (ffl renames Firefox's NAME.XXXXXXXX.EXT.part, which Firefox would delete at its next start) and loses the empty placeholder Firefox made under the final name, so no file looks complete that is not.`},
		{Key: "profile", Doc: `"persistent": one Firefox profile in state_dir/profile, kept between sessions (bookmarks, history, saved logins, cookies, preferences; the HTTP cache stays node-local and goes with the session). ffl rewrites its user.js at every start. Only one session at a time can use it (ffl records the holder: node, job, boot id, launcher); another session meanwhile gets a throwaway profile, says so in the log and in a window over Firefox, and a holder that is gone (killed, node rebooted, job ended) is recognised and replaced. "session": every session gets a throwaway profile, removed with the session.`},
		{Key: "end_warning", Doc: `How long before the job's time limit (asked from squeue when the launcher starts) every session shows a window over Firefox saying when it ends and where the downloads are; "0" turns it off. SIGUSR1 to ffl-launch shows the warning at any time: with "#SBATCH --signal=B:USR1@600" Slurm sends it 10 minutes before the time limit.`},
		{Key: "keyboard_layout", Doc: `The keyboard layout the sessions type with, as X names it: "de", "fr", "us", "gb", ... "auto" (the default) lets the HTML5 client take it from the browser's language (de-DE gives "de"), which is right for most users; set a layout where the language and the keyboard differ. A user can still add ?keyboard_layout=NAME to the session's URL. Typed text arrives as typed for the layout, AltGr and dead keys included (docs/DESIGN.md, "Keyboard and clipboard").`},
		{Key: "idle_timeout", Doc: `How long the browser's connection to a session stays open without keyboard or mouse input (key presses, pointer moves, clicks, the wheel); xpra then disconnects it, and the tab says why and offers to reconnect (Firefox and its tabs keep running). Without it, the HTML5 client's pings every few seconds count as use: through jupyter-server-proxy they keep JupyterHub's idle culler from ever stopping a server whose Firefox tab was forgotten open, so the job holds its node until the time limit. With it, a forgotten tab goes quiet after idle_timeout and the culler stops the server after its own timeout, while a user who types or clicks is never culled. "0" turns it off (ssh -L users who leave a tab open on purpose). At least 10 s; whole seconds.`},
		{Key: "max_sessions", Doc: `Sessions one job may run at once (1 to 1000, at most the port range).`},
		{Key: "log_format", Doc: `Log format of all ffl commands: "text" or "json".`},
		{Key: "epilog.timeout", Doc: `Upper bound for one Epilog run. Keep it below Slurm's PrologEpilogTimeout: an Epilog that overruns drains the node.`},
		{Key: "epilog.fail_on_unkillable", Doc: `Ignored (accepted so that existing files load; a warning is logged): any user can make a process survive SIGKILL at will, so it never decides the exit status. Such processes are counted in left= of the Epilog's summary line.`},
		{Key: "epilog.log_file", Doc: `Extra log file for the Epilog and the Prolog (slurmd discards their output); "" for none.`},
		{Key: "epilog.syslog", Doc: `Send Epilog and Prolog messages to syslog (facility daemon).`},
		{Key: "epilog.sweep_older_than", Doc: `The sweep (ffl-epilog sweep, ffl-sweep.timer) removes leftover session trees of jobs no longer running that are older than this.`},
		{Key: "epilog.temp_older_than", Doc: `Stale ffl-<uid> temp dirs and node-local dirs of dead jobs older than this are removed by the sweep.`},
		{Key: "epilog.metrics_file", Doc: `The node_exporter textfile-collector file (a "*.prom" name) the Epilog, the Prolog and the sweep add their counters to: jobs seen, jobs with leftovers, sessions cleaned, processes termed, killed and left, things refused, bytes freed, errors, runs that hit their time bound, run durations. Written atomically (a temporary file in the same directory, then a rename) under a lock beside it. Nothing is written when the directory does not exist (so the default is on exactly where Debian's prometheus-node-exporter is installed), or when this is "". A directory a user other than root may write (owned by a non-root uid, group-writable by a non-root group, world-writable) is refused.`},
		{Key: "epilog.seen_dir", Doc: `Node-local directory on disk (it must survive a reboot; root's, made when missing) where the Prolog records, per node and user, the boot in which the user last ran a job here. The first Prolog of a user after a reboot (which wiped /run, so no node-local trace of their sessions is left) then sweeps that user's stale session trees of this node from the home, and the sweep visits every recorded user. "" turns it off.`},
	}
}

// Section is a group of keys: the top level or one [table].
type Section struct {
	// Table is "" for the top level, else the table's name ("epilog").
	Table string
	// Doc says what the table is for.
	Doc  string
	Keys []KeyDoc
}

// Sections groups Keys() by table, in file order.
func Sections() []Section {
	docs := map[string]string{"epilog": "Settings of ffl-epilog and ffl-prolog (run as root by slurmd) and of the sweep."}
	var out []Section
	for _, k := range Keys() {
		table, _, nested := strings.Cut(k.Key, ".")
		if !nested {
			table = ""
		}
		if len(out) == 0 || out[len(out)-1].Table != table {
			out = append(out, Section{Table: table, Doc: docs[table]})
		}
		out[len(out)-1].Keys = append(out[len(out)-1].Keys, k)
	}
	return out
}

// DefaultTOML is the default of key as TOML text ("8001", `"3s"`, `[]`), read from Default().
func DefaultTOML(key string) (string, error) {
	v := reflect.ValueOf(Default())
	for _, part := range strings.Split(key, ".") {
		f, ok := fieldByTag(v, part)
		if !ok {
			return "", fmt.Errorf("config: no key %q", key)
		}
		v = f
	}
	switch x := v.Interface().(type) {
	case Duration:
		return strconv.Quote(shortDuration(x.Duration)), nil
	case Prestart:
		b, err := x.MarshalTOML()
		return string(b), err
	case string:
		return strconv.Quote(x), nil
	case int:
		return strconv.Itoa(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case []string:
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]", nil
	}
	return "", fmt.Errorf("config: key %q has no TOML rendering for %s", key, v.Type())
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// shortDuration writes "168h" and "1m30s" rather than "168h0m0s" and "1m30s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// exampleHeader opens the shipped file.
const exampleHeader = `# ffl (Firefox Launcher for Slurm) configuration: /etc/ffl/ffl.toml.
#
# Generated from pkg/config/keys.go (make docs); ffl.toml(5) says the same.
# Install on every node (login and compute). A missing file means "use the
# defaults"; $FFL_CONFIG or --config name another file, which must then
# exist. Every key below is commented out and shows its default: uncomment
# and edit only what you change. Unknown keys and values of the wrong type
# are errors (a typo is never silently ignored).
#
# Durations are strings like "3s", "1m30s", "168h", or whole seconds (3).
`

// Example renders etc/ffl.toml: every key commented out at its default, with its Doc.
func Example() ([]byte, error) {
	var b strings.Builder
	b.WriteString(exampleHeader)
	for _, s := range Sections() {
		if s.Table != "" {
			b.WriteString("\n" + comment(s.Doc, "# ") + "#[" + s.Table + "]\n")
		}
		for _, k := range s.Keys {
			def, err := DefaultTOML(k.Key)
			if err != nil {
				return nil, err
			}
			doc := k.Doc
			if k.Env != "" {
				doc += " Overridden by " + k.Env + "."
			}
			name := k.Key[strings.LastIndexByte(k.Key, '.')+1:]
			b.WriteString("\n" + comment(doc, "# ") + "#" + name + " = " + def + "\n")
		}
	}
	return []byte(b.String()), nil
}

// comment wraps text at 78 columns behind prefix, keeping blank-line paragraphs.
func comment(text, prefix string) string {
	var b strings.Builder
	for i, para := range strings.Split(text, "\n\n") {
		if i > 0 {
			b.WriteString(strings.TrimRight(prefix, " ") + "\n")
		}
		line := prefix
		for _, w := range strings.Fields(para) {
			if len(line) > len(prefix) && len(line)+1+len(w) > 78 {
				b.WriteString(line + "\n")
				line = prefix
			}
			if len(line) > len(prefix) {
				line += " "
			}
			line += w
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}
