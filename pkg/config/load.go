package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxFileSize caps how much of a configuration file is read: $FFL_CONFIG may
// point anywhere, and a configuration is a few hundred bytes.
const MaxFileSize = 1 << 20

// Load reads, parses and validates the file at path on top of Default().
// A missing file is an error only when explicit (named by --config or
// $FFL_CONFIG); the missing default file means "use the defaults". The
// file must be a regular file; a FIFO or device is refused without blocking.
func Load(path string, explicit bool) (Config, error) {
	c, _, err := load(path, explicit)
	return c, err
}

// LoadFromEnv picks the configuration file the way every ffl command does:
// flagPath (--config) if set, else $FFL_CONFIG if set, else DefaultPath. It
// returns the path actually read, "" when the default file is absent and
// the defaults apply. Environment overrides are separate: call ApplyEnv.
func LoadFromEnv(getenv func(string) string, flagPath string) (Config, string, error) {
	return loadFromEnv(getenv, flagPath, DefaultPath)
}

func loadFromEnv(getenv func(string) string, flagPath, defaultPath string) (Config, string, error) {
	path, explicit := defaultPath, false
	switch {
	case flagPath != "":
		path, explicit = flagPath, true
	case getenv(EnvConfig) != "":
		path, explicit = getenv(EnvConfig), true
	}
	c, found, err := load(path, explicit)
	if err != nil {
		return Config{}, path, err
	}
	if !found {
		path = ""
	}
	return c, path, nil
}

// load is Load that also says whether a file was read.
func load(path string, explicit bool) (Config, bool, error) {
	if path == "" {
		return Config{}, false, &Error{Reason: "empty configuration file path (give a file name)"}
	}
	data, err := readCapped(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return Default(), false, nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Config{}, false, &Error{File: path, Reason: "cannot read the configuration file", Err: err}
	}
	c, err := Parse(data, path)
	if err != nil {
		return Config{}, false, err
	}
	return c, true, nil
}

// readCapped reads a regular file of at most MaxFileSize bytes. O_NONBLOCK
// keeps open() from hanging on a FIFO, which is then refused by the mode check.
func readCapped(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", describeType(st.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	return data, nil
}

func describeType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "type " + m.Type().String()
}

// Parse decodes TOML text on top of Default() and validates the result.
// file names the source in error messages. It works in two passes: the
// first walks every key in file order against the Config schema (so the
// first problem in the file is the one reported, unknown keys and keys in
// the wrong case are refused, and every type error names its key); the
// second decodes into the struct, with MetaData.Undecoded as a safety net.
func Parse(data []byte, file string) (Config, error) {
	var raw map[string]any
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return Config{}, syntaxError(file, err)
	}
	root := schemaOf(reflect.TypeFor[Config]())
	if err := checkKeys(md, raw, root); err != nil {
		err.File = file
		return Config{}, err
	}

	c := Default()
	md, err = toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return Config{}, syntaxError(file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Config{}, &Error{File: file, Key: truncate(und[0].String()), Reason: "unknown key (remove it; etc/ffl.toml lists every key)"}
	}
	if len(c.XpraArgs) == 0 {
		c.XpraArgs = nil
	}
	if len(c.FirefoxArgs) == 0 {
		c.FirefoxArgs = nil
	}
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.File = file
			return Config{}, ce
		}
		return Config{}, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

func syntaxError(file string, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Key: pe.LastKey, Reason: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}
	}
	return &Error{File: file, Reason: "invalid TOML", Err: err}
}

// kind is what a key's value must be in TOML.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindStrings
	kindDuration
	kindPrestart
	kindTable
)

// schemaField describes one key of the schema.
type schemaField struct {
	kind kind
	sub  map[string]schemaField // for kindTable
}

// schemaOf derives the key schema from the struct's toml tags, so the
// strict check can never drift from the struct.
func schemaOf(t reflect.Type) map[string]schemaField {
	s := map[string]schemaField{}
	durationType := reflect.TypeFor[Duration]()
	prestartType := reflect.TypeFor[Prestart]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		var sf schemaField
		switch {
		case f.Type == durationType:
			sf.kind = kindDuration
		case f.Type == prestartType:
			sf.kind = kindPrestart
		case f.Type.Kind() == reflect.String:
			sf.kind = kindString
		case f.Type.Kind() == reflect.Int:
			sf.kind = kindInt
		case f.Type.Kind() == reflect.Bool:
			sf.kind = kindBool
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			sf.kind = kindStrings
		case f.Type.Kind() == reflect.Struct:
			sf.kind = kindTable
			sf.sub = schemaOf(f.Type)
		default:
			panic("config: no schema kind for field " + f.Name) // programming error, caught by tests
		}
		s[name] = sf
	}
	return s
}

// checkKeys walks the keys in file order and checks each against the schema.
func checkKeys(md toml.MetaData, raw map[string]any, root map[string]schemaField) *Error {
	for _, key := range md.Keys() {
		fields := root
		var val any = raw
		for i, part := range key {
			f, ok := fields[part]
			if !ok {
				return &Error{Key: truncate(key[:i+1].String()), Reason: unknownReason(part, fields)}
			}
			if m, ok := val.(map[string]any); ok {
				val = m[part]
			} else {
				val = nil
			}
			if i < len(key)-1 {
				if _, isTable := val.(map[string]any); f.kind != kindTable || !isTable {
					return typeError(key[:i+1], f.kind, val)
				}
				fields = f.sub
				continue
			}
			if err := checkKind(f.kind, val); err != nil {
				return &Error{Key: key.String(), Value: render(val), Reason: err.Error()}
			}
		}
	}
	return nil
}

func typeError(key toml.Key, k kind, val any) *Error {
	return &Error{Key: key.String(), Value: render(val), Reason: checkKind(k, nil).Error()}
}

// checkKind reports whether a decoded TOML value fits a kind.
func checkKind(k kind, val any) error {
	switch k {
	case kindString:
		if _, ok := val.(string); ok {
			return nil
		}
		return errors.New(`must be a string in double quotes, like "text"`)
	case kindInt:
		if _, ok := val.(int64); ok {
			return nil
		}
		return errors.New("must be a whole number without quotes")
	case kindBool:
		if _, ok := val.(bool); ok {
			return nil
		}
		return errors.New("must be true or false (without quotes)")
	case kindStrings:
		if a, ok := val.([]any); ok {
			for _, e := range a {
				if _, ok := e.(string); !ok {
					return errors.New(`must be an array of strings, like ["--a", "--b"]`)
				}
			}
			return nil
		}
		return errors.New(`must be an array of strings, like ["--a", "--b"]`)
	case kindDuration:
		var d Duration
		return d.UnmarshalTOML(val)
	case kindPrestart:
		var p Prestart
		return p.UnmarshalTOML(val)
	case kindTable:
		if _, ok := val.(map[string]any); ok {
			return nil
		}
		return errors.New("must be a table (a [section] header)")
	}
	return errors.New("unsupported kind")
}

// unknownReason names the fix for an unknown key: a close known key if there is one.
func unknownReason(name string, fields map[string]schemaField) string {
	best, bestDist := "", math.MaxInt
	for k := range fields {
		d := editDistance(strings.ToLower(name), k)
		if d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= 2 {
		return fmt.Sprintf("unknown key (did you mean %q?)", best)
	}
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	return "unknown key (known keys here: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance, for "did you mean".
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// maxRendered bounds how much of a value an error message repeats.
const maxRendered = 80

// render shows a decoded TOML value the way it was probably written.
func render(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		s = strconv.Quote(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case float64:
		s = strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		s = strconv.FormatBool(v)
	case []any:
		parts := make([]string, 0, len(v))
		for _, e := range v {
			parts = append(parts, render(e))
		}
		s = "[" + strings.Join(parts, ", ") + "]"
	case []map[string]any:
		s = "[{...}]"
	case map[string]any:
		s = "{...}"
	case time.Time:
		s = v.Format(time.RFC3339Nano)
	default:
		s = fmt.Sprint(v)
	}
	if len(s) > maxRendered {
		s = s[:maxRendered] + "..."
	}
	return s
}

// isDecimal reports whether s is plain decimal notation ("3", "2.5", ".5",
// "3."): no sign, exponent, hex, underscores, "inf" or "nan", all of which
// strconv.ParseFloat would accept.
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// maxEnvTimeout bounds EnvCleanupTimeout: anything longer is a typo.
const maxEnvTimeout = time.Hour

// ApplyEnv applies the environment overrides: FIREFOX_LAUNCHER_CLEANUP_TIMEOUT
// (seconds, decimals allowed) and FIREFOX_LAUNCHER_DEBUG (1/true/yes/on or
// 0/false/no/off). Empty or unset variables change nothing. A bad value is an
// error naming the variable and value, and c is left unchanged. A cleanup
// timeout longer than Slurm's default KillWait is allowed but returned as a
// warning: Slurm would SIGKILL the launcher before its grace path ends.
func (c *Config) ApplyEnv(getenv func(string) string) (warnings []string, err error) {
	next := *c
	if v := getenv(EnvCleanupTimeout); v != "" {
		d, err := parseSeconds(v)
		if err != nil {
			return nil, &Error{Key: EnvCleanupTimeout, Value: strconv.Quote(v), Reason: err.Error()}
		}
		next.CleanupTimeout = Duration{d}
		if d > SlurmDefaultKillWait {
			warnings = append(warnings, fmt.Sprintf("%s=%q (%s) exceeds Slurm's default KillWait (30 s): Slurm will SIGKILL before the grace path ends",
				EnvCleanupTimeout, v, d))
		}
	}
	if v := getenv(EnvDebug); v != "" {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "1", "true", "yes", "on":
			next.Debug = true
		case "0", "false", "no", "off":
			next.Debug = false
		default:
			return nil, &Error{Key: EnvDebug, Value: strconv.Quote(v), Reason: "must be 1, true, yes or on (or 0, false, no, off; or unset)"}
		}
	}
	*c = next
	return warnings, nil
}

func parseSeconds(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	if !isDecimal(s) {
		return 0, errors.New(`not a positive number of seconds (write e.g. "3" or "2.5", or unset it)`)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 0, errors.New(`not a positive number of seconds (write e.g. "3" or "2.5", or unset it)`)
	}
	if f > maxEnvTimeout.Seconds() {
		return 0, fmt.Errorf("more than %d seconds (write e.g. \"3\")", int(maxEnvTimeout.Seconds()))
	}
	d := time.Duration(f * float64(time.Second))
	if d <= 0 {
		return 0, errors.New("rounds to zero (write at least 0.000000001)")
	}
	return d, nil
}
