package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	c, err := Parse(nil, "empty.toml")
	if err != nil {
		t.Fatalf("Parse(empty) = %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("an empty file does not give the defaults:\n got  %+v\n want %+v", c, Default())
	}
}

// TestKeys covers every key with good and bad values. A good case names the
// field it expects to change; a bad case names the key and a message part.
func TestKeys(t *testing.T) {
	sec := func(n int) Duration { return Duration{time.Duration(n) * time.Second} }
	tests := []struct {
		toml    string
		check   func(Config) bool // for good values
		wantErr string            // for bad values: the whole "key = value: reason" or a part of it
	}{
		// state_dir
		{toml: `state_dir = "~/.ffl"`, check: func(c Config) bool { return c.StateDir == "~/.ffl" }},
		{toml: `state_dir = "/scratch/alice/ffl"`, check: func(c Config) bool { return c.StateDir == "/scratch/alice/ffl" }},
		{toml: `state_dir = ""`, wantErr: `state_dir = "": must not be empty`},
		{toml: `state_dir = "~"`, wantErr: `state_dir = "~": must be a directory below the home`},
		{toml: `state_dir = "~bob/x"`, wantErr: `"~user" is not supported`},
		{toml: `state_dir = "~/../x"`, wantErr: `must be a clean path below the home`},
		{toml: `state_dir = "~/a/../b"`, wantErr: `must be a clean path below the home`},
		{toml: `state_dir = "~//x"`, wantErr: `must be a clean path below the home`},
		{toml: `state_dir = "rel/dir"`, wantErr: `state_dir = "rel/dir": must be an absolute path`},
		{toml: `state_dir = "/"`, wantErr: `must not be "/"`},
		{toml: `state_dir = "~/a\nb"`, wantErr: `control characters`},
		// runtime_dir
		{toml: `runtime_dir = "/var/run/ffl"`, check: func(c Config) bool { return c.RuntimeDir == "/var/run/ffl" }},
		{toml: `runtime_dir = "/run/ffl/"`, wantErr: `runtime_dir = "/run/ffl/": must be a clean path (write "/run/ffl")`},
		{toml: `runtime_dir = "run"`, wantErr: `runtime_dir = "run": must be an absolute path`},
		{toml: `runtime_dir = ""`, wantErr: `runtime_dir = "": must not be empty`},
		{toml: `runtime_dir = "/"`, wantErr: `runtime_dir = "/": must not be "/"`},
		{toml: `runtime_dir = "/run/../tmp"`, wantErr: `write "/tmp"`},
		// temp_dir
		{toml: `temp_dir = "/var/tmp"`, check: func(c Config) bool { return c.TempDir == "/var/tmp" }},
		{toml: `temp_dir = "tmp"`, wantErr: `temp_dir = "tmp": must be an absolute path`},
		{toml: "temp_dir = \"/tmp\\u0000x\"", wantErr: `temp_dir = "/tmp\x00x": must not contain control characters`},
		// port_min / port_max
		{toml: "port_min = 1025\nport_max = 1025\nmax_sessions = 1", check: func(c Config) bool { return c.PortMin == 1025 && c.PortMax == 1025 }},
		{toml: "port_min = 9000\nport_max = 65535\nmax_sessions = 4", check: func(c Config) bool { return c.PortMax == 65535 }},
		{toml: `port_min = 99`, wantErr: `port_min = 99: must be between 1025 and 65535`},
		{toml: `port_min = 1024`, wantErr: `port_min = 1024: must be between 1025 and 65535`},
		{toml: `port_min = 70000`, wantErr: `port_min = 70000: must be between 1025 and 65535`},
		{toml: `port_max = 65536`, wantErr: `port_max = 65536: must be between 1025 and 65535`},
		{toml: `port_max = 8000`, wantErr: `port_max = 8000: must not be below port_min (8001)`},
		{toml: `port_min = -1`, wantErr: `port_min = -1: must be between`},
		// bind_address
		{toml: `bind_address = "::1"`, check: func(c Config) bool { return c.BindAddress == "::1" }},
		{toml: `bind_address = "10.0.0.5"`, check: func(c Config) bool { return c.BindAddress == "10.0.0.5" }},
		{toml: `bind_address = "localhost"`, wantErr: `bind_address = "localhost": must be an IP address, like "127.0.0.1"`},
		{toml: `bind_address = ""`, wantErr: `bind_address = "": must be an IP address`},
		{toml: `bind_address = "127.0.0.1:8001"`, wantErr: `must be an IP address`},
		// start_timeout / cleanup_timeout (Duration forms)
		{toml: `start_timeout = "1m30s"`, check: func(c Config) bool { return c.StartTimeout == sec(90) }},
		{toml: `start_timeout = 60`, check: func(c Config) bool { return c.StartTimeout == sec(60) }},
		{toml: `cleanup_timeout = "500ms"`, check: func(c Config) bool { return c.CleanupTimeout.Duration == 500*time.Millisecond }},
		{toml: `cleanup_timeout = 2`, check: func(c Config) bool { return c.CleanupTimeout == sec(2) }},
		{toml: `start_timeout = "0s"`, wantErr: `start_timeout = "0s": must be positive`},
		{toml: `start_timeout = 0`, wantErr: `start_timeout = "0s": must be positive`},
		{toml: `cleanup_timeout = -3`, wantErr: `cleanup_timeout = "-3s": must be positive`},
		{toml: `cleanup_timeout = "3"`, wantErr: `cleanup_timeout = "3": not a duration (write e.g. "3s"`},
		{toml: `cleanup_timeout = "soon"`, wantErr: `cleanup_timeout = "soon": not a duration`},
		{toml: `cleanup_timeout = 2.5`, wantErr: `cleanup_timeout = 2.5: must be a duration like "3s"`},
		{toml: `cleanup_timeout = 9223372036854775807`, wantErr: `cleanup_timeout = 9223372036854775807: too large`},
		// port_attempts
		{toml: `port_attempts = 1`, check: func(c Config) bool { return c.PortAttempts == 1 }},
		{toml: `port_attempts = 0`, wantErr: `port_attempts = 0: must be between 1 and 1000`},
		{toml: `port_attempts = 1001`, wantErr: `port_attempts = 1001: must be between 1 and 1000`},
		// xpra
		{toml: `xpra = "/opt/xpra/bin/xpra"`, check: func(c Config) bool { return c.Xpra == "/opt/xpra/bin/xpra" }},
		{toml: `xpra = ""`, wantErr: `xpra = "": must not be empty`},
		{toml: `xpra = "bin/xpra"`, wantErr: `xpra = "bin/xpra": must be a command name without '/' or a clean absolute path`},
		{toml: `xpra = "xpra --debug"`, wantErr: `must not contain spaces`},
		{toml: `xpra = "-xpra"`, wantErr: `must not start with '-'`},
		// xpra_args
		{toml: `xpra_args = ["--speaker=off", "--clipboard=yes"]`, check: func(c Config) bool { return len(c.XpraArgs) == 2 }},
		{toml: `xpra_args = []`, check: func(c Config) bool { return c.XpraArgs == nil }},
		{toml: `xpra_args = ["start"]`, wantErr: `xpra_args = ["start"]: element 0 ("start") must be an option`},
		{toml: `xpra_args = ["--"]`, wantErr: `must be an option`},
		{toml: `xpra_args = ["--daemon=yes"]`, wantErr: `ffl sets --daemon itself`},
		{toml: `xpra_args = ["--no-daemon"]`, wantErr: `ffl sets --daemon itself`},
		{toml: `xpra_args = ["--ok", "--bind-tcp=0.0.0.0:1"]`, wantErr: `element 1 ("--bind-tcp=0.0.0.0:1"): ffl sets --bind-tcp itself`},
		{toml: `xpra_args = ["--tcp-auth=none"]`, wantErr: `ffl sets --tcp-auth itself`},
		{toml: `xpra_args = ["--systemd-run=yes"]`, wantErr: `ffl sets --systemd-run itself`},
		{toml: `xpra_args = ["--env=FFL_SESSION=x"]`, wantErr: `session markers`},
		{toml: "xpra_args = [\"--a\\nb\"]", wantErr: `control characters`},
		// firefox
		{toml: `firefox = "firefox"`, check: func(c Config) bool { return c.Firefox == "firefox" }},
		{toml: `firefox = "/usr/lib/firefox-esr/firefox-esr"`, check: func(c Config) bool { return c.Firefox == "/usr/lib/firefox-esr/firefox-esr" }},
		{toml: `firefox = "my firefox"`, wantErr: `firefox = "my firefox": must not contain spaces`},
		{toml: `firefox = "fire'fox"`, wantErr: `must not contain spaces, quotes`},
		{toml: `firefox = "/usr/bin/../bin/firefox"`, wantErr: `clean absolute path`},
		// firefox_args
		{toml: `firefox_args = ["--kiosk", "-private-window"]`, check: func(c Config) bool { return len(c.FirefoxArgs) == 2 }},
		{toml: `firefox_args = ["kiosk"]`, wantErr: `firefox_args = ["kiosk"]: element 0 ("kiosk") must be an option`},
		{toml: `firefox_args = ["--width 800"]`, wantErr: `must not contain spaces`},
		{toml: `firefox_args = ["--profile=/tmp/x"]`, wantErr: `ffl chooses the profile`},
		{toml: `firefox_args = ["-P"]`, wantErr: `ffl chooses the profile`},
		{toml: `firefox_args = ["-no-remote"]`, wantErr: `ffl chooses the profile`},
		{toml: `firefox_args = ["--"]`, wantErr: `must be an option`},
		// start_url
		{toml: `start_url = "https://example.org/a?b=c%20d"`, check: func(c Config) bool { return c.StartURL == "https://example.org/a?b=c%20d" }},
		{toml: `start_url = ""`, wantErr: `start_url = "": must not be empty`},
		{toml: `start_url = "example.org"`, wantErr: `must be an absolute URL with a scheme`},
		{toml: `start_url = "-profile"`, wantErr: `must be an absolute URL with a scheme`},
		{toml: `start_url = "https://x/ y"`, wantErr: `must not contain spaces`},
		{toml: `start_url = "https://x/\"; rm"`, wantErr: `must not contain spaces, quotes`},
		// max_sessions
		{toml: `max_sessions = 1`, check: func(c Config) bool { return c.MaxSessions == 1 }},
		{toml: `max_sessions = 0`, wantErr: `max_sessions = 0: must be between 1 and 1000`},
		{toml: "port_min = 8001\nport_max = 8002\nmax_sessions = 3", wantErr: `max_sessions = 3: exceeds the 2 ports from port_min to port_max`},
		// idle_timeout
		{toml: `idle_timeout = "1h"`, check: func(c Config) bool { return c.IdleTimeout.Duration == time.Hour }},
		{toml: `idle_timeout = "0"`, check: func(c Config) bool { return c.IdleTimeout.Duration == 0 }},
		{toml: `idle_timeout = "5s"`, wantErr: `idle_timeout = "5s": must be 0 (off) or at least 10s`},
		{toml: `idle_timeout = "-1m"`, wantErr: `must be 0 (off) or at least 10s`},
		// jupyter_prestart
		{toml: ``, check: func(c Config) bool { return c.JupyterPrestart == PrestartRecent }},
		{toml: `jupyter_prestart = true`, check: func(c Config) bool { return c.JupyterPrestart == PrestartAlways }},
		{toml: `jupyter_prestart = false`, check: func(c Config) bool { return c.JupyterPrestart == PrestartNever }},
		{toml: `jupyter_prestart = "recent"`, check: func(c Config) bool { return c.JupyterPrestart == PrestartRecent }},
		{toml: `jupyter_prestart = "true"`, check: func(c Config) bool { return c.JupyterPrestart == PrestartAlways }},
		{toml: `jupyter_prestart = "sometimes"`, wantErr: `jupyter_prestart = "sometimes": must be true, false or "recent" (started with the notebook server when the user opened Firefox from JupyterLab in the last 14 days)`},
		{toml: `jupyter_prestart = 1`, wantErr: `jupyter_prestart = 1: must be true, false or "recent"`},
		{toml: `jupyter_prestart = "Recent"`, wantErr: `jupyter_prestart = "Recent": must be true, false or "recent"`},
		// log_format
		{toml: `log_format = "json"`, check: func(c Config) bool { return c.LogFormat == "json" }},
		{toml: `log_format = "JSON"`, wantErr: `log_format = "JSON": must be "text" or "json"`},
		// [epilog]
		{toml: "[epilog]\ntimeout = \"30s\"", check: func(c Config) bool { return c.Epilog.Timeout == sec(30) }},
		{toml: "[epilog]\ntimeout = 5", check: func(c Config) bool { return c.Epilog.Timeout == sec(5) }},
		{toml: "epilog.timeout = 5", check: func(c Config) bool { return c.Epilog.Timeout == sec(5) }},
		{toml: "epilog = { syslog = false }", check: func(c Config) bool { return !c.Epilog.Syslog && c.Epilog.Timeout == sec(10) }},
		{toml: "[epilog]\ntimeout = \"0s\"", wantErr: `epilog.timeout = "0s": must be positive`},
		{toml: "[epilog]\nfail_on_unkillable = true", check: func(c Config) bool { return c.Epilog.FailOnUnkillable }},
		{toml: "[epilog]\nfail_on_unkillable = \"yes\"", wantErr: `epilog.fail_on_unkillable = "yes": must be true or false`},
		{toml: "[epilog]\nlog_file = \"/var/log/ffl-epilog.log\"", check: func(c Config) bool { return c.Epilog.LogFile == "/var/log/ffl-epilog.log" }},
		{toml: "[epilog]\nlog_file = \"ffl.log\"", wantErr: `epilog.log_file = "ffl.log": must be a clean absolute file name`},
		{toml: "[epilog]\nsyslog = false", check: func(c Config) bool { return !c.Epilog.Syslog }},
		{toml: "[epilog]\nsyslog = 0", wantErr: `epilog.syslog = 0: must be true or false`},
		{toml: "[epilog]\nsweep_older_than = \"720h\"", check: func(c Config) bool { return c.Epilog.SweepOlderThan.Duration == 720*time.Hour }},
		{toml: "[epilog]\nsweep_older_than = \"-1h\"", wantErr: `epilog.sweep_older_than = "-1h0m0s": must be positive`},
		{toml: "[epilog]\ntemp_older_than = 3600", check: func(c Config) bool { return c.Epilog.TempOlderThan.Duration == time.Hour }},
		{toml: "[epilog]\ntemp_older_than = [1]", wantErr: `epilog.temp_older_than = [1]: must be a duration`},
		{toml: "[epilog]\nmetrics_file = \"\"", check: func(c Config) bool { return c.Epilog.MetricsFile == "" }},
		{toml: "[epilog]\nmetrics_file = \"/srv/textfile/ffl.prom\"", check: func(c Config) bool { return c.Epilog.MetricsFile == "/srv/textfile/ffl.prom" }},
		{toml: "[epilog]\nmetrics_file = \"/srv/textfile/ffl.txt\"", wantErr: `epilog.metrics_file = "/srv/textfile/ffl.txt": must end in ".prom"`},
		{toml: "[epilog]\nmetrics_file = \"/srv/textfile/.prom\"", wantErr: `must end in ".prom"`},
		{toml: "[epilog]\nmetrics_file = \"ffl.prom\"", wantErr: `epilog.metrics_file = "ffl.prom": must be a clean absolute file name`},
		{toml: "[epilog]\nmetrics_file = \"/srv//ffl.prom\"", wantErr: `must be a clean absolute file name`},
	}
	for _, tt := range tests {
		t.Run(tt.toml, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml), "/etc/ffl/ffl.toml")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if !tt.check(c) {
					t.Fatalf("value not applied: %+v", c)
				}
				return
			}
			checkErr(t, err, "/etc/ffl/ffl.toml: ", tt.wantErr)
		})
	}
}

func TestUnknownAndWrongType(t *testing.T) {
	tests := []struct{ toml, want string }{
		{`prot_min = 8001`, `f.toml: prot_min: unknown key (did you mean "port_min"?)`},
		{`Port_Min = 8001`, `f.toml: Port_Min: unknown key (did you mean "port_min"?)`},
		{`colour = "blue"`, `f.toml: colour: unknown key (known keys here: bind_address, cleanup_timeout, content_processes, download_dir, end_warning, epilog,`},
		{"[epilog]\ntimeot = 3", `f.toml: epilog.timeot: unknown key (did you mean "timeout"?)`},
		{"[epilog.extra]\na = 1", `f.toml: epilog.extra: unknown key`},
		{"[other]\na = 1", `f.toml: other: unknown key`},
		{"port_min = 8001\nbogus = 1\nport_max = \"x\"", `f.toml: bogus: unknown key`}, // first problem in file order
		{"port_max = \"x\"\nbogus = 1", `f.toml: port_max = "x": must be a whole number`},
		{`port_min = "8001"`, `f.toml: port_min = "8001": must be a whole number without quotes`},
		{`port_min = 8001.0`, `f.toml: port_min = 8001: must be a whole number`},
		{`state_dir = 1`, `f.toml: state_dir = 1: must be a string in double quotes`},
		{`state_dir = ["a"]`, `f.toml: state_dir = ["a"]: must be a string`},
		{`xpra_args = "--speaker=off"`, `f.toml: xpra_args = "--speaker=off": must be an array of strings`},
		{`xpra_args = ["--a", 1]`, `f.toml: xpra_args = ["--a", 1]: must be an array of strings`},
		{`xpra_args = [{a = 1}]`, `f.toml: xpra_args = [{...}]: must be an array of strings`},
		{`epilog = 3`, `f.toml: epilog = 3: must be a table`},
		{"[[epilog]]\ntimeout = 3", `f.toml: epilog = [{...}]: must be a table`},
		{`start_timeout = {s = 1}`, `f.toml: start_timeout = {...}: must be a duration`},
		{`start_timeout = 1979-05-27`, `f.toml: start_timeout = `},
		{`debug = true`, `f.toml: debug: unknown key`}, // Debug comes only from the environment
		{"port_min = 1\nport_min = 2", `f.toml: port_min: line 2: Key 'port_min' has already been defined`},
		{"port_min = ", `f.toml: port_min: line 1: `},
		{"[epilog", `f.toml: line 1: `},
	}
	for _, tt := range tests {
		t.Run(tt.toml, func(t *testing.T) {
			_, err := Parse([]byte(tt.toml), "f.toml")
			checkErr(t, err, tt.want, "")
		})
	}
}

func checkErr(t *testing.T, err error, prefix, part string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", prefix+part)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is %T, want *config.Error", err, err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, part) {
		t.Fatalf("error = %q\nwant prefix %q containing %q", msg, prefix, part)
	}
	if strings.ContainsAny(msg, "\n\r\x00") {
		t.Fatalf("error is not one line: %q", msg)
	}
}

// writer returns a function that writes a config file (0644) named name in dir and returns its
// path, failing the test when it cannot.
func writer(t *testing.T, dir string) func(name, content string) string {
	return func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	good := write("good.toml", "port_min = 9000\nport_max = 9100\n[epilog]\nsyslog = false\n")
	bad := write("bad.toml", "port_min = 99\n")
	big := write("big.toml", "# "+strings.Repeat("x", MaxFileSize)+"\n")
	missing := filepath.Join(dir, "missing.toml")
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := Load(good, true)
	if err != nil || c.PortMin != 9000 || c.PortMax != 9100 || c.Epilog.Syslog || c.StartURL != "about:blank" {
		t.Errorf("Load(good) = %+v, %v", c, err)
	}
	if c, err := Load(missing, false); err != nil || !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load(missing, default) = %+v, %v; want the defaults", c, err)
	}
	tests := []struct {
		path     string
		explicit bool
		want     string
	}{
		{missing, true, missing + ": cannot read the configuration file: no such file or directory"},
		{bad, false, bad + ": port_min = 99: must be between 1025 and 65535"},
		{dir, false, dir + ": cannot read the configuration file: not a regular file (a directory)"},
		{fifo, true, fifo + ": cannot read the configuration file: not a regular file (a FIFO)"},
		{big, true, big + ": cannot read the configuration file: larger than 1048576 bytes"},
		{"", true, "empty configuration file path (give a file name)"},
	}
	for _, tt := range tests {
		_, err := Load(tt.path, tt.explicit)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Load(%q, %v) = %v, want %q", tt.path, tt.explicit, err, tt.want)
		}
	}
	if _, err := Load(missing, true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error %v does not wrap ErrNotExist", err)
	}
}

func TestLoadUnreadableDefault(t *testing.T) {
	if os.Getuid() == 0 {
		t.Skip("root reads a mode-000 file anyway; needs a non-root user")
	}
	p := filepath.Join(t.TempDir(), "ffl.toml")
	if err := os.WriteFile(p, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p, false); err == nil {
		t.Fatal("an unreadable default file was silently ignored")
	}
}

func TestLoadFromEnv(t *testing.T) {
	dir := t.TempDir()
	write := writer(t, dir)
	def := write("default.toml", "port_min = 8100\n")
	envFile := write("env.toml", "port_min = 8200\n")
	flagFile := write("flag.toml", "port_min = 8300\n")
	absent := filepath.Join(dir, "absent.toml")

	tests := []struct {
		name     string
		env      string
		flag     string
		defPath  string
		wantPort int
		wantPath string
		wantErr  string
	}{
		{"default file", "", "", def, 8100, def, ""},
		{"default absent", "", "", absent, 8001, "", ""},
		{"FFL_CONFIG wins over default", envFile, "", def, 8200, envFile, ""},
		{"--config wins over FFL_CONFIG", envFile, flagFile, def, 8300, flagFile, ""},
		{"FFL_CONFIG missing is an error", absent, "", def, 0, absent, "no such file"},
		{"--config missing is an error", envFile, absent, def, 0, absent, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == EnvConfig {
					return tt.env
				}
				return ""
			}
			c, path, err := loadFromEnv(getenv, tt.flag, tt.defPath)
			if path != tt.wantPath {
				t.Errorf("path = %q, want %q", path, tt.wantPath)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.PortMin != tt.wantPort {
				t.Fatalf("got port_min %d, err %v; want %d", c.PortMin, err, tt.wantPort)
			}
		})
	}
	// The exported wrapper reads DefaultPath; with --config it never touches it.
	if c, path, err := LoadFromEnv(func(string) string { return "" }, flagFile); err != nil || path != flagFile || c.PortMin != 8300 {
		t.Errorf("LoadFromEnv(--config) = %d, %q, %v", c.PortMin, path, err)
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		wantTimeout time.Duration
		wantDebug   bool
		wantWarn    string
		wantErr     string
	}{
		{name: "nothing set", env: nil, wantTimeout: 3 * time.Second},
		{name: "whole seconds", env: map[string]string{EnvCleanupTimeout: "5"}, wantTimeout: 5 * time.Second},
		{name: "decimal seconds", env: map[string]string{EnvCleanupTimeout: "2.5"}, wantTimeout: 2500 * time.Millisecond},
		{name: "leading dot", env: map[string]string{EnvCleanupTimeout: ".5"}, wantTimeout: 500 * time.Millisecond},
		{name: "surrounding space", env: map[string]string{EnvCleanupTimeout: " 4 "}, wantTimeout: 4 * time.Second},
		{name: "exactly KillWait: no warning", env: map[string]string{EnvCleanupTimeout: "30"}, wantTimeout: 30 * time.Second},
		{name: "above KillWait warns", env: map[string]string{EnvCleanupTimeout: "45"}, wantTimeout: 45 * time.Second,
			wantWarn: `FIREFOX_LAUNCHER_CLEANUP_TIMEOUT="45" (45s) exceeds Slurm's default KillWait (30 s): Slurm will SIGKILL before the grace path ends`},
		{name: "zero", env: map[string]string{EnvCleanupTimeout: "0"}, wantErr: `FIREFOX_LAUNCHER_CLEANUP_TIMEOUT = "0": not a positive number of seconds`},
		{name: "negative", env: map[string]string{EnvCleanupTimeout: "-1"}, wantErr: `FIREFOX_LAUNCHER_CLEANUP_TIMEOUT = "-1": not a positive number`},
		{name: "unit", env: map[string]string{EnvCleanupTimeout: "3s"}, wantErr: `FIREFOX_LAUNCHER_CLEANUP_TIMEOUT = "3s": not a positive number`},
		{name: "exponent", env: map[string]string{EnvCleanupTimeout: "1e3"}, wantErr: `not a positive number`},
		{name: "inf", env: map[string]string{EnvCleanupTimeout: "inf"}, wantErr: `not a positive number`},
		{name: "NaN", env: map[string]string{EnvCleanupTimeout: "NaN"}, wantErr: `not a positive number`},
		{name: "two dots", env: map[string]string{EnvCleanupTimeout: "1.2.3"}, wantErr: `not a positive number`},
		{name: "lone dot", env: map[string]string{EnvCleanupTimeout: "."}, wantErr: `not a positive number`},
		{name: "huge", env: map[string]string{EnvCleanupTimeout: "99999999999"}, wantErr: `more than 3600 seconds`},
		{name: "rounds to zero", env: map[string]string{EnvCleanupTimeout: "0.0000000001"}, wantErr: `rounds to zero`},
		{name: "debug 1", env: map[string]string{EnvDebug: "1"}, wantTimeout: 3 * time.Second, wantDebug: true},
		{name: "debug TRUE", env: map[string]string{EnvDebug: "TRUE"}, wantTimeout: 3 * time.Second, wantDebug: true},
		{name: "debug yes", env: map[string]string{EnvDebug: "yes"}, wantTimeout: 3 * time.Second, wantDebug: true},
		{name: "debug on", env: map[string]string{EnvDebug: "on"}, wantTimeout: 3 * time.Second, wantDebug: true},
		{name: "debug off", env: map[string]string{EnvDebug: "off"}, wantTimeout: 3 * time.Second},
		{name: "debug 0", env: map[string]string{EnvDebug: "0"}, wantTimeout: 3 * time.Second},
		{name: "debug garbage", env: map[string]string{EnvDebug: "maybe"}, wantErr: `FIREFOX_LAUNCHER_DEBUG = "maybe": must be 1, true, yes or on`},
		{name: "debug 2", env: map[string]string{EnvDebug: "2"}, wantErr: `FIREFOX_LAUNCHER_DEBUG = "2"`},
		{name: "good timeout, bad debug: nothing applied", env: map[string]string{EnvCleanupTimeout: "7", EnvDebug: "x"}, wantErr: `FIREFOX_LAUNCHER_DEBUG`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			warns, err := c.ApplyEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				checkErr(t, err, "", tt.wantErr)
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("a failed ApplyEnv changed the config: %+v", c)
				}
				return
			}
			if err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			if c.CleanupTimeout.Duration != tt.wantTimeout || c.Debug != tt.wantDebug {
				t.Errorf("got timeout %v debug %v, want %v %v", c.CleanupTimeout, c.Debug, tt.wantTimeout, tt.wantDebug)
			}
			switch {
			case tt.wantWarn == "" && len(warns) != 0:
				t.Errorf("unexpected warnings %q", warns)
			case tt.wantWarn != "" && (len(warns) != 1 || warns[0] != tt.wantWarn):
				t.Errorf("warnings = %q, want [%q]", warns, tt.wantWarn)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("config invalid after ApplyEnv: %v", err)
			}
		})
	}
}

func TestExpandHome(t *testing.T) {
	tests := []struct {
		stateDir, home, want, wantErr string
	}{
		{"~/.firefox-launcher", "/home/alice", "/home/alice/.firefox-launcher", ""},
		{"~/a/b", "/nfs/home/alice", "/nfs/home/alice/a/b", ""},
		{"/scratch/alice/ffl", "/home/alice", "/scratch/alice/ffl", ""},
		{"/scratch/alice/ffl", "", "/scratch/alice/ffl", ""}, // no home needed
		{"~/.firefox-launcher", "", "", "must not be empty"},
		{"~/.firefox-launcher", "relative", "", "must be an absolute path"},
		{"~/.firefox-launcher", "/home/alice/", "", "must be a clean path"},
		{"~/.firefox-launcher", "/home/../etc", "", "must be a clean path"},
		{"~/.firefox-launcher", "/", "", `must not be "/"`},
		{"~", "/home/alice", "", "state_dir"},
		{"rel", "/home/alice", "", "state_dir"},
		{"~/../etc", "/home/alice", "", "state_dir"},
		{"~/", "/home/alice", "", "state_dir"},
		{"/scratch/../etc", "", "", "state_dir"},
		{"~/.firefox-launcher", "/home/alice/../bob", "", "must be a clean path"},
	}
	for _, tt := range tests {
		c := Default()
		c.StateDir = tt.stateDir
		got, err := c.ExpandHome(tt.home)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ExpandHome(%q) with %q = %q, %v; want error %q", tt.home, tt.stateDir, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ExpandHome(%q) with %q = %q, %v; want %q", tt.home, tt.stateDir, got, err, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	cause := errors.New("permission denied")
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "/etc/ffl/ffl.toml", Key: "port_min", Value: "99", Reason: "must be between 1025 and 65535"},
			"/etc/ffl/ffl.toml: port_min = 99: must be between 1025 and 65535"},
		{&Error{File: "f", Key: "k", Reason: "unknown key"}, "f: k: unknown key"},
		{&Error{File: "f", Reason: "cannot read", Err: cause}, "f: cannot read: permission denied"},
		{&Error{Key: "V", Value: `"x"`, Reason: "bad\nline"}, `V = "x": bad line`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	if !errors.Is(&Error{Err: cause}, cause) {
		t.Error("Error does not unwrap to its cause")
	}
}

// settingLine matches a commented-out setting in etc/ffl.toml ("#key = value"
// or "#[table]"), as opposed to prose ("# text").
var settingLine = regexp.MustCompile(`^#(\[[a-z_]+\]|[a-z_]+ = .*)$`)

// TestExampleFile keeps etc/ffl.toml honest: as shipped (all commented) it
// gives the defaults, and with every setting uncommented it names every key
// of the schema, each with its default value.
func TestExampleFile(t *testing.T) {
	const path = "../../etc/ffl.toml"
	c, err := Load(path, true)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("the shipped file is not all defaults: %+v", c)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	seen := map[string]bool{}
	table := ""
	for _, line := range strings.Split(string(data), "\n") {
		if !settingLine.MatchString(line) {
			out = append(out, line)
			continue
		}
		line = line[1:]
		if strings.HasPrefix(line, "[") {
			table = strings.Trim(line, "[]") + "."
		} else {
			key, _, _ := strings.Cut(line, " ")
			seen[table+key] = true
		}
		out = append(out, line)
	}
	uncommented := []byte(strings.Join(out, "\n"))
	c, err = Parse(uncommented, path+" (uncommented)")
	if err != nil {
		t.Fatalf("uncommented example: %v", err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("uncommented example differs from Default():\n got  %+v\n want %+v", c, Default())
	}
	var walk func(prefix string, s map[string]schemaField)
	walk = func(prefix string, s map[string]schemaField) {
		for k, f := range s {
			if f.kind == kindTable {
				walk(prefix+k+".", f.sub)
				continue
			}
			if !seen[prefix+k] {
				t.Errorf("etc/ffl.toml does not document key %s", prefix+k)
			}
		}
	}
	walk("", schemaOf(reflect.TypeFor[Config]()))
}

// TestSchemaCoversStruct makes sure every Config field is in the schema (a
// new field without a toml tag or of an unsupported type fails here).
func TestSchemaCoversStruct(t *testing.T) {
	count := func(t reflect.Type) int {
		n := 0
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Tag.Get("toml") != "-" {
				n++
			}
		}
		return n
	}
	s := schemaOf(reflect.TypeFor[Config]())
	if got, want := len(s), count(reflect.TypeFor[Config]()); got != want {
		t.Errorf("schema has %d top-level keys, Config has %d tagged fields", got, want)
	}
	if got, want := len(s["epilog"].sub), count(reflect.TypeFor[EpilogConfig]()); got != want {
		t.Errorf("schema has %d epilog keys, EpilogConfig has %d fields", got, want)
	}
}

func TestDurationMarshalRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 90 * time.Second, 1500 * time.Millisecond, 168 * time.Hour} {
		text, err := Duration{d}.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalTOML(string(text)); err != nil || back.Duration != d {
			t.Errorf("round trip of %v via %q = %v, %v", d, text, back, err)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("port_min = 8001\nport_max = 8999\n"))
	f.Add([]byte("[epilog]\ntimeout = \"10s\"\nsyslog = false\n"))
	f.Add([]byte("xpra_args = [\"--speaker=off\"]\nfirefox_args = [\"--kiosk\"]\n"))
	f.Add([]byte("state_dir = \"~/x\"\nstart_timeout = 45\ncleanup_timeout = \"1m\"\n"))
	f.Add([]byte("epilog.timeout = 5\nepilog = 3\n"))
	f.Add([]byte("[[epilog]]\n[epilog.x]\na = {b = [1, {c = 2}]}\n"))
	f.Add([]byte("Port_Min = 1\nport_min = 1979-05-27T07:32:00Z\n"))
	if data, err := os.ReadFile("../../etc/ffl.toml"); err == nil {
		f.Add(data)
	}
	dir := f.TempDir() // one dir per process: t.TempDir per input would dominate the run time
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp, err := os.CreateTemp(dir, "ffl-*.toml")
		if err != nil {
			t.Fatal(err)
		}
		p := tmp.Name()
		defer os.Remove(p)
		_, werr := tmp.Write(data)
		if cerr := tmp.Close(); werr != nil || cerr != nil {
			t.Fatal(werr, cerr)
		}
		c, err := Load(p, true)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is %T, want *config.Error", err, err)
			}
			if strings.ContainsAny(err.Error(), "\n\r\x00") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load succeeded but Validate fails: %v", err)
		}
	})
}

// TestExampleIsGenerated: etc/ffl.toml is exactly what Example renders from Keys() and
// Default(). FFL_UPDATE_DOCS=1 (make docs) rewrites it.
func TestExampleIsGenerated(t *testing.T) {
	want, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "etc", "ffl.toml")
	if os.Getenv("FFL_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("etc/ffl.toml is not what pkg/config/keys.go generates: run 'make docs' and commit the result")
	}
}

// TestKeysCoverSchema: every key of the schema has exactly one KeyDoc, and every KeyDoc a key
// with a rendered default.
func TestKeysCoverSchema(t *testing.T) {
	want := map[string]bool{}
	var walk func(prefix string, s map[string]schemaField)
	walk = func(prefix string, s map[string]schemaField) {
		for k, f := range s {
			if f.kind == kindTable {
				walk(prefix+k+".", f.sub)
				continue
			}
			want[prefix+k] = true
		}
	}
	walk("", schemaOf(reflect.TypeFor[Config]()))
	seen := map[string]bool{}
	for _, k := range Keys() {
		if seen[k.Key] {
			t.Errorf("key %s documented twice", k.Key)
		}
		seen[k.Key] = true
		if !want[k.Key] {
			t.Errorf("Keys() documents %s, which is no key of Config", k.Key)
		}
		if _, err := DefaultTOML(k.Key); err != nil {
			t.Error(err)
		}
		if strings.TrimSpace(k.Doc) == "" {
			t.Errorf("key %s has no doc", k.Key)
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("key %s has no entry in Keys() (pkg/config/keys.go)", k)
		}
	}
	for _, tt := range []struct{ key, want string }{
		{"port_min", "8001"}, {"cleanup_timeout", `"3s"`}, {"epilog.sweep_older_than", `"168h"`},
		{"xpra_args", "[]"}, {"epilog.syslog", "true"}, {"epilog.metrics_file", `"/var/lib/prometheus/node-exporter/ffl.prom"`},
	} {
		if got, _ := DefaultTOML(tt.key); got != tt.want {
			t.Errorf("DefaultTOML(%s) = %s, want %s", tt.key, got, tt.want)
		}
	}
}

// TestUserFilesKeys: profile takes its two values, download_dir "" (XDG), "~", "~/dir" or a
// clean absolute path, expanded below the owner's home; anything else is one line naming the key.
func TestUserFilesKeys(t *testing.T) {
	for _, tt := range []struct {
		profile, dl, wantErr string
	}{
		{"persistent", "", ""},
		{"session", "~/Downloads", ""},
		{"persistent", "/scratch/u/dl", ""},
		{"persistent", "~", ""},
		{"forever", "", `profile = "forever": must be "persistent"`},
		{"persistent", "Downloads", `download_dir = "Downloads": must be an absolute path, like "/scratch/you/downloads"`},
		{"persistent", "~/../x", `download_dir = "~/../x": must be a clean path below the home, like "~/Downloads"`},
		{"persistent", "~bob/dl", `download_dir = "~bob/dl": "~user" is not supported`},
	} {
		c := Default()
		c.Profile, c.DownloadDir = tt.profile, tt.dl
		err := c.Validate()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("profile %q download_dir %q: %v", tt.profile, tt.dl, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("profile %q download_dir %q: error %v, want %q", tt.profile, tt.dl, err, tt.wantErr)
		}
	}
	for in, want := range map[string]string{"": "", "~": "/home/u", "~/": "/home/u", "~/dl": "/home/u/dl", "/data/dl": "/data/dl"} {
		if got, err := ExpandDownloadDir(in, "/home/u"); err != nil || got != want {
			t.Errorf("ExpandDownloadDir(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if c := Default(); c.Profile != ProfilePersistent || c.DownloadDir != "" {
		t.Errorf("defaults: profile %q download_dir %q", c.Profile, c.DownloadDir)
	}
}

// TestKeyboardLayoutKey: keyboard_layout is "auto" (the default) or an X layout name; anything
// else is one line naming the key and what it takes.
func TestKeyboardLayoutKey(t *testing.T) {
	if c := Default(); c.KeyboardLayout != KeyboardAuto {
		t.Errorf("default keyboard_layout %q, want %q", c.KeyboardLayout, KeyboardAuto)
	}
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"auto", true}, {"de", true}, {"us", true}, {"latam", true}, {"custom_1", true},
		{"", false}, {"d", false}, {"DE", false}, {"de(nodeadkeys)", false}, {"de,us", false},
		{`de" onload="x`, false}, {"1de", false}, {strings.Repeat("a", 17), false},
	} {
		c := Default()
		c.KeyboardLayout = tt.in
		err := c.Validate()
		if tt.ok != (err == nil) {
			t.Errorf("keyboard_layout %q: %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "keyboard_layout = ") && !strings.Contains(err.Error(), "keyboard_layout = ") {
			t.Errorf("keyboard_layout %q: error %q does not name the key", tt.in, err)
		}
	}
}

// TestPrestartRoundTrip: every jupyter_prestart value, encoded as TOML, reads back the same
// (true and false as booleans, "recent" as a string).
func TestPrestartRoundTrip(t *testing.T) {
	for _, p := range []Prestart{PrestartNever, PrestartAlways, PrestartRecent} {
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(struct {
			P Prestart `toml:"jupyter_prestart"`
		}{p}); err != nil {
			t.Fatalf("encode %q: %v", p, err)
		}
		c, err := Parse(buf.Bytes(), "f.toml")
		if err != nil || c.JupyterPrestart != p {
			t.Errorf("%q encoded as %q reads back as %q, %v", p, buf.String(), c.JupyterPrestart, err)
		}
	}
}
