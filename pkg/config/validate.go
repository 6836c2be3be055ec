package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Bounds enforced by Validate.
const (
	// MinPort is the lowest port ffl may use: ports up to 1024 are
	// privileged and reserved for system services.
	MinPort = 1025
	// MaxPort is the highest TCP port.
	MaxPort = 65535
	// MaxCount bounds port_attempts and max_sessions: larger values are typos.
	MaxCount = 1000
)

// xpraReserved reports the xpra options ffl sets itself. Overriding them
// from xpra_args would undo the session's confinement (sockets, pidfile,
// chdir), its security (bind address, password auth) or its cleanup
// (daemonizing, systemd-run moving xpra out of the job's cgroup, children
// outliving xpra). xpra 6 adds listeners (bind-quic, bind-rdp) and the switches that decide
// whether the unix socket serves HTTP and WebSockets at all (http, websocket-upgrade).
func xpraReserved(name string) bool {
	switch name {
	case "auth", "bind", "bind-quic", "bind-rdp", "bind-rfb", "bind-ssh", "bind-ssl", "bind-tcp", "bind-vsock", "bind-ws", "bind-wss",
		"chdir", "daemon", "dbus-control", "dbus-launch", "dbus-proxy", "displayfd", "exit-with-children",
		"html", "http", "mdns", "packet-encoders", "pidfile", "quic-auth", "rdp-auth", "rdp-upgrade", "rfb-auth", "ssh-auth", "ssh-upgrade",
		"ssl-upgrade", "vsock-auth", "websocket-upgrade", "socket-dir", "socket-dirs", "ssl-auth", "start", "start-after-connect",
		"start-child", "start-child-after-connect", "start-child-on-connect", "start-child-on-last-client-exit",
		"start-new-commands", "start-on-connect", "start-on-last-client-exit", "systemd-run", "tcp-auth", "terminate-children",
		"ws-auth", "wss-auth":
		return true
	}
	return false
}

// firefoxReserved reports the Firefox options that would move the session
// out of its own profile or let it attach to another running Firefox.
func firefoxReserved(name string) bool {
	switch name {
	case "new-instance", "no-remote", "remote", "p", "profile", "profilemanager":
		return true
	}
	return false
}

// Validate checks every setting and returns the first problem as an *Error
// naming the key, the value and the fix (File is filled in by Load).
func (c Config) Validate() error {
	for _, check := range []struct {
		key, value string
		err        error
	}{
		{"state_dir", strconv.Quote(c.StateDir), checkStateDir(c.StateDir)},
		{"runtime_dir", strconv.Quote(c.RuntimeDir), checkAbsDir(c.RuntimeDir)},
		{"temp_dir", strconv.Quote(c.TempDir), checkAbsDir(c.TempDir)},
		{"port_min", strconv.Itoa(c.PortMin), checkRange(c.PortMin, MinPort, MaxPort)},
		{"port_max", strconv.Itoa(c.PortMax), checkPortMax(c.PortMax, c.PortMin)},
		{"bind_address", strconv.Quote(c.BindAddress), checkIP(c.BindAddress)},
		{"start_timeout", quoteDuration(c.StartTimeout), checkPositive(c.StartTimeout)},
		{"cleanup_timeout", quoteDuration(c.CleanupTimeout), checkPositive(c.CleanupTimeout)},
		{"port_attempts", strconv.Itoa(c.PortAttempts), checkRange(c.PortAttempts, 1, MaxCount)},
		{"xpra", strconv.Quote(c.Xpra), checkCommand(c.Xpra)},
		{"xpra_args", renderStrings(c.XpraArgs), checkXpraArgs(c.XpraArgs)},
		{"firefox", strconv.Quote(c.Firefox), checkCommand(c.Firefox)},
		{"firefox_args", renderStrings(c.FirefoxArgs), checkFirefoxArgs(c.FirefoxArgs)},
		{"start_url", strconv.Quote(c.StartURL), checkURL(c.StartURL)},
		{"screen_size", strconv.Quote(c.ScreenSize), checkScreen(c.ScreenSize)},
		{"content_processes", strconv.Itoa(c.ContentProcesses), checkRange(c.ContentProcesses, 1, 16)},
		{"jupyter_prestart", string(c.JupyterPrestart), checkPrestart(c.JupyterPrestart)},
		{"download_dir", strconv.Quote(c.DownloadDir), checkDownloadDir(c.DownloadDir)},
		{"profile", strconv.Quote(c.Profile), checkProfile(c.Profile)},
		{"end_warning", quoteDuration(c.EndWarning), checkNonNegative(c.EndWarning)},
		{"keyboard_layout", strconv.Quote(c.KeyboardLayout), checkKeyboardLayout(c.KeyboardLayout)},
		{"idle_timeout", quoteDuration(c.IdleTimeout), checkIdleTimeout(c.IdleTimeout)},
		{"max_sessions", strconv.Itoa(c.MaxSessions), checkMaxSessions(c.MaxSessions, c.PortMin, c.PortMax)},
		{"log_format", strconv.Quote(c.LogFormat), checkLogFormat(c.LogFormat)},
		{"epilog.timeout", quoteDuration(c.Epilog.Timeout), checkPositive(c.Epilog.Timeout)},
		{"epilog.log_file", strconv.Quote(c.Epilog.LogFile), checkLogFile(c.Epilog.LogFile)},
		{"epilog.sweep_older_than", quoteDuration(c.Epilog.SweepOlderThan), checkPositive(c.Epilog.SweepOlderThan)},
		{"epilog.temp_older_than", quoteDuration(c.Epilog.TempOlderThan), checkPositive(c.Epilog.TempOlderThan)},
		{"epilog.metrics_file", strconv.Quote(c.Epilog.MetricsFile), checkMetricsFile(c.Epilog.MetricsFile)},
		{"epilog.seen_dir", strconv.Quote(c.Epilog.SeenDir), checkOptionalAbsDir(c.Epilog.SeenDir)},
	} {
		if check.err != nil {
			return &Error{Key: check.key, Value: truncate(check.value), Reason: check.err.Error()}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > maxRendered {
		return s[:maxRendered] + "..."
	}
	return s
}

func quoteDuration(d Duration) string { return strconv.Quote(d.String()) }

func renderStrings(a []string) string {
	q := make([]string, len(a))
	for i, s := range a {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// checkScreen accepts "WIDTHxHEIGHT" between 640x480 and 8192x8192.
func checkScreen(s string) error {
	w, h, ok := strings.Cut(s, "x")
	wi, err1 := strconv.Atoi(w)
	hi, err2 := strconv.Atoi(h)
	if !ok || err1 != nil || err2 != nil || strconv.Itoa(wi) != w || strconv.Itoa(hi) != h {
		return errors.New(`must be WIDTHxHEIGHT, like "2560x1600"`)
	}
	if wi < 640 || hi < 480 || wi > 8192 || hi > 8192 {
		return errors.New("must be between 640x480 and 8192x8192")
	}
	return nil
}

func checkRange(n, lo, hi int) error {
	if n < lo || n > hi {
		return fmt.Errorf("must be between %d and %d", lo, hi)
	}
	return nil
}

func checkPortMax(max, min int) error {
	if err := checkRange(max, MinPort, MaxPort); err != nil {
		return err
	}
	if max < min {
		return fmt.Errorf("must not be below port_min (%d)", min)
	}
	return nil
}

func checkMaxSessions(n, portMin, portMax int) error {
	if err := checkRange(n, 1, MaxCount); err != nil {
		return err
	}
	if ports := portMax - portMin + 1; n > ports {
		return fmt.Errorf("exceeds the %d ports from port_min to port_max (raise port_max or lower max_sessions)", ports)
	}
	return nil
}

func checkNonNegative(d Duration) error {
	if d.Duration < 0 {
		return errors.New(`must be 0 (off) or positive, like "10m"`)
	}
	return nil
}

// MinIdleTimeout is the shortest idle_timeout: a shorter one would cut off a user who stops to
// read a page.
const MinIdleTimeout = 10 * time.Second

func checkIdleTimeout(d Duration) error {
	if d.Duration != 0 && d.Duration < MinIdleTimeout {
		return fmt.Errorf(`must be 0 (off) or at least %v, like "30m"`, MinIdleTimeout)
	}
	return nil
}

func checkPositive(d Duration) error {
	if d.Duration <= 0 {
		return errors.New(`must be positive, like "3s" or "1m30s"`)
	}
	return nil
}

func checkIP(s string) error {
	if net.ParseIP(s) == nil {
		return errors.New(`must be an IP address, like "127.0.0.1"`)
	}
	return nil
}

func checkLogFormat(s string) error {
	if s != "text" && s != "json" {
		return errors.New(`must be "text" or "json"`)
	}
	return nil
}

// checkDownloadDir accepts "" (the XDG download dir), "~" or "~/<relative>", or a clean
// absolute directory.
func checkDownloadDir(p string) error {
	if p == "" || p == "~" || p == "~/" {
		return nil
	}
	if err := checkStateDir(p); err != nil {
		return errors.New(strings.NewReplacer("~/.firefox-launcher", "~/Downloads", `"/run/ffl"`, `"/scratch/you/downloads"`).Replace(err.Error()))
	}
	return nil
}

// checkKeyboardLayout takes "auto" or the name of an X keyboard layout (xkb symbols file:
// lower-case letters, digits, '_' and '-', as in "de", "fr", "latam", "gb"), which the HTML5
// client passes on to xpra; a variant in parentheses is not something xpra 3.1 takes from the
// HTML5 client.
func checkKeyboardLayout(s string) error {
	if s == KeyboardAuto {
		return nil
	}
	ok := len(s) >= 2 && len(s) <= 16 && s[0] >= 'a' && s[0] <= 'z'
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("must be %q (the browser's language decides) or an X keyboard layout name such as \"de\", \"fr\", \"us\" (see /usr/share/X11/xkb/symbols)", KeyboardAuto)
	}
	return nil
}

func checkPrestart(p Prestart) error {
	var q Prestart
	return q.UnmarshalTOML(string(p))
}

func checkProfile(s string) error {
	if s != ProfilePersistent && s != ProfileSession {
		return fmt.Errorf("must be %q (kept between sessions) or %q (thrown away with the session)", ProfilePersistent, ProfileSession)
	}
	return nil
}

// hasControl reports a control character: paths and arguments end up in
// logs and command lines, where they could forge lines.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// checkAbsDir accepts a clean absolute directory other than "/".
func checkAbsDir(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty (give an absolute directory)")
	case hasControl(p):
		return errors.New("must not contain control characters")
	case !filepath.IsAbs(p):
		return errors.New(`must be an absolute path, like "/run/ffl"`)
	case filepath.Clean(p) != p:
		return fmt.Errorf("must be a clean path (write %q)", filepath.Clean(p))
	case p == "/":
		return errors.New(`must not be "/" (give a dedicated directory)`)
	}
	return nil
}

// checkStateDir accepts "~/<relative>" (below the job owner's home) or a
// clean absolute directory.
func checkStateDir(p string) error {
	rest, tilde := strings.CutPrefix(p, "~/")
	switch {
	case p == "":
		return errors.New(`must not be empty (default "~/.firefox-launcher")`)
	case p == "~" || p == "~/":
		return errors.New(`must be a directory below the home, like "~/.firefox-launcher"`)
	case strings.HasPrefix(p, "~") && !tilde:
		return errors.New(`"~user" is not supported (write "~/dir" for the job owner's home, or an absolute path)`)
	case !tilde:
		return checkAbsDir(p)
	case hasControl(rest):
		return errors.New("must not contain control characters")
	case filepath.Clean(rest) != rest || rest == "." || rest == ".." || strings.HasPrefix(rest, "../") || filepath.IsAbs(rest):
		return errors.New(`must be a clean path below the home, like "~/.firefox-launcher"`)
	}
	return nil
}

// checkCommand accepts a bare command name (looked up in PATH) or a clean
// absolute path. Neither may contain whitespace, quotes or backslashes: the
// Firefox command becomes part of xpra's --start-child command line.
func checkCommand(s string) error {
	switch {
	case s == "":
		return errors.New(`must not be empty (give a command name like "firefox-esr" or an absolute path)`)
	case strings.ContainsAny(s, " \t\"'\\") || hasControl(s):
		return errors.New("must not contain spaces, quotes, backslashes or control characters")
	case strings.HasPrefix(s, "-"):
		return errors.New("must not start with '-'")
	case strings.Contains(s, "/") && (!filepath.IsAbs(s) || filepath.Clean(s) != s):
		return errors.New(`must be a command name without '/' or a clean absolute path, like "/usr/bin/xpra"`)
	}
	return nil
}

// optionName turns "--no-daemon=x" or "-Profile" into "daemon" / "profile".
func optionName(arg string) string {
	name := strings.TrimLeft(arg, "-")
	name, _, _ = strings.Cut(name, "=")
	name = strings.ToLower(name)
	return strings.TrimPrefix(name, "no-")
}

func checkXpraArgs(args []string) error {
	for i, a := range args {
		switch {
		case !strings.HasPrefix(a, "--") || len(a) == 2:
			return fmt.Errorf(`element %d (%q) must be an option like "--speaker=off"`, i, a)
		case hasControl(a):
			return fmt.Errorf("element %d must not contain control characters", i)
		case xpraReserved(optionName(a)):
			return fmt.Errorf("element %d (%q): ffl sets --%s itself (remove it)", i, a, optionName(a))
		case strings.HasPrefix(a, "--env=FFL_") || strings.HasPrefix(a, "--start-env=FFL_"):
			return fmt.Errorf("element %d (%q): FFL_* variables are ffl's session markers (remove it)", i, a)
		}
	}
	return nil
}

func checkFirefoxArgs(args []string) error {
	for i, a := range args {
		switch {
		case !strings.HasPrefix(a, "-") || strings.Trim(a, "-") == "":
			return fmt.Errorf(`element %d (%q) must be an option like "--kiosk"`, i, a)
		case strings.ContainsAny(a, " \t\"'\\") || hasControl(a):
			return fmt.Errorf("element %d (%q) must not contain spaces, quotes, backslashes or control characters (it is part of xpra's --start-child command line)", i, a)
		case firefoxReserved(optionName(a)):
			return fmt.Errorf("element %d (%q): ffl chooses the profile and instance itself (remove it)", i, a)
		}
	}
	return nil
}

// checkURL accepts a URL with a scheme and nothing that would split or quote
// xpra's --start-child command line.
func checkURL(s string) error {
	if s == "" {
		return errors.New(`must not be empty (default "about:blank")`)
	}
	if strings.ContainsAny(s, " \t\"'\\") || hasControl(s) {
		return errors.New("must not contain spaces, quotes, backslashes or control characters (percent-encode them)")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return errors.New(`must be an absolute URL with a scheme, like "https://example.org/" or "about:blank"`)
	}
	return nil
}

// checkOptionalAbsFile accepts "" (none) or a clean absolute file name without control
// characters; example is a good name, for the error.
func checkOptionalAbsFile(p, example string) error {
	switch {
	case p == "":
		return nil
	case hasControl(p):
		return errors.New("must not contain control characters")
	case !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/":
		return fmt.Errorf(`must be a clean absolute file name, like %q (or "" for none)`, example)
	}
	return nil
}

func checkLogFile(p string) error { return checkOptionalAbsFile(p, "/var/log/ffl-epilog.log") }

// checkOptionalAbsDir accepts "" (off) or a clean absolute directory other than "/".
func checkOptionalAbsDir(p string) error {
	if p == "" {
		return nil
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
		return errors.New(`must be "" or a clean absolute directory other than "/"`)
	}
	return nil
}

// checkMetricsFile accepts "" or a clean absolute "*.prom" file name: node_exporter's textfile
// collector reads only *.prom, so another name would be written and never collected.
func checkMetricsFile(p string) error {
	if err := checkOptionalAbsFile(p, "/var/lib/prometheus/node-exporter/ffl.prom"); err != nil || p == "" {
		return err
	}
	if base := filepath.Base(p); !strings.HasSuffix(base, ".prom") || base == ".prom" {
		return errors.New(`must end in ".prom" (node_exporter's textfile collector reads only those)`)
	}
	return nil
}
