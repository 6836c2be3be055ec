package doctor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bounds of one read of a Slurm configuration: a slurm.conf naming every node of a large cluster
// is a few MiB; Slurm itself has no bound (an Include cycle recurses until slurmd crashes), the
// doctor stops and says so.
const (
	maxConfFileSize  = 16 << 20
	maxConfTotalSize = 32 << 20
	maxConfFiles     = 256
	maxIncludeDepth  = 16
)

// Setting is one key=value line of a Slurm configuration file.
type Setting struct {
	// Key as written, Value without its quotes and escapes.
	Key, Value string
	// Rest is what follows the first pair on the line (the other pairs of a NodeName= line).
	Rest string
	File string
	Line int
}

// Where names the line a setting came from.
func (s Setting) Where() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

// Finding is something the reading of the configuration itself found (an Include slurmd cannot
// follow, a file a non-root user can change); the doctor turns each into a line of its table.
type Finding struct {
	Status      Status
	Detail, Fix string
}

// SlurmConf is a Slurm configuration file as one Slurm version reads it, Include files
// followed: every key=value line is kept in order, so a caller can take the last one (what
// Slurm does for a plain key) or all of them (Prolog= and Epilog= since 24.05).
type SlurmConf struct {
	// Path is the main file, Dir where slurmd looks for the files beside it (cgroup.conf,
	// job_container.conf, namespace.yaml, relative Include, Prolog and Epilog names).
	Path, Dir string
	// Files lists every file read, the main one first.
	Files    []string
	Findings []Finding

	settings map[string][]Setting
	version  Version
	size     int64
}

// All returns every line setting key (keys are case-insensitive in Slurm), in file order.
func (c *SlurmConf) All(key string) []Setting { return c.settings[strings.ToLower(key)] }

// Last returns the line that wins for a plain key (Slurm logs "specified more than once,
// latest value used" and keeps the last).
func (c *SlurmConf) Last(key string) (Setting, bool) {
	all := c.All(key)
	if len(all) == 0 {
		return Setting{}, false
	}
	return all[len(all)-1], true
}

// Get returns the last value of key ("" when unset).
func (c *SlurmConf) Get(key string) string {
	s, _ := c.Last(key)
	return s.Value
}

// Seconds reads a uint16 setting of seconds (KillWait, PrologEpilogTimeout, EpilogTimeout) the
// way Slurm's s_p_handle_uint16 does: strtoul with base 0 (0x10 and 010 are numbers too), and
// UNLIMITED or INFINITE meaning 65535. ok is false when the key is unset; err says why a value
// is not one Slurm accepts (slurmd would refuse to start with it).
func (c *SlurmConf) Seconds(key string) (d time.Duration, ok bool, err error) {
	s, ok := c.Last(key)
	if !ok {
		return 0, false, nil
	}
	n, err := slurmUint16(s.Value)
	if err != nil {
		return 0, true, fmt.Errorf("%s=%s (%s): %w", s.Key, s.Value, s.Where(), err)
	}
	return time.Duration(n) * time.Second, true, nil
}

func slurmUint16(v string) (uint16, error) {
	if strings.EqualFold(v, "UNLIMITED") || strings.EqualFold(v, "INFINITE") {
		return 0xffff, nil
	}
	if strings.HasPrefix(v, "-") {
		return 0, errors.New("less than zero")
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(v, "+"), 0, 64)
	if err != nil || strings.Contains(v, "_") {
		return 0, errors.New("not a number")
	}
	if n > 0xffff {
		return 0, errors.New("greater than 65535")
	}
	return uint16(n), nil
}

// Bool reads a boolean setting the way s_p_handle_boolean does (yes/up/true/1, no/down/false/0).
func (c *SlurmConf) Bool(key string) (val, ok bool) {
	switch strings.ToLower(c.Get(key)) {
	case "yes", "up", "true", "1":
		return true, true
	case "no", "down", "false", "0":
		return false, true
	}
	return false, false
}

// confReader reads one configuration file for the parser (tests give their own).
type confReader func(path string, max int64) ([]byte, fileOwner, error)

// fileOwner is what the doctor checks of a file slurmd reads as root: who can change it.
type fileOwner struct {
	uid, dirUID   uint32
	mode, dirMode uint32
}

// readConfFile opens path without blocking on a FIFO, refuses anything but a regular file and
// reads at most max bytes. It follows symlinks, as slurmd does (/run/slurm/conf is one).
func readConfFile(path string, max int64) ([]byte, fileOwner, error) {
	var own fileOwner
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, own, err
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return nil, own, fmt.Errorf("fstat %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, own, fmt.Errorf("%s: not a regular file", path)
	}
	own.uid, own.mode = st.Uid, st.Mode
	var dst syscall.Stat_t
	if err := syscall.Stat(filepath.Dir(path), &dst); err == nil {
		own.dirUID, own.dirMode = dst.Uid, dst.Mode
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, own, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, own, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, own, nil
}

// keyValue is Slurm's keyvalue_pattern (parse_config.c), a POSIX ERE matched leftmost-longest
// as regexec does: a key, an optional operator, "=", a quoted value (which may hold spaces) or
// an unquoted one (which may not).
var keyValue = regexp.MustCompilePOSIX(`^[[:space:]]*([[:alnum:]_.]+)[[:space:]]*([-*+/]?)=[[:space:]]*(("([^"]*)")|([^[:space:]]+))([[:space:]]|$)`)

// ParseSlurmConf reads data as a configuration file of version v, without following Include
// lines (the fuzz target and tests of the line rules use it).
func ParseSlurmConf(data []byte, v Version) *SlurmConf {
	c := &SlurmConf{Path: "slurm.conf", Dir: ".", settings: map[string][]Setting{}, version: v}
	c.parse("slurm.conf", data, 0, nil, nil)
	return c
}

// ReadSlurmConf reads path and the files its Include lines name, as Slurm version v does.
func ReadSlurmConf(path string, v Version) (*SlurmConf, error) {
	return readSlurmConf(path, v, readConfFile)
}

func readSlurmConf(path string, v Version, read confReader) (*SlurmConf, error) {
	c := &SlurmConf{Path: path, Dir: filepath.Dir(path), settings: map[string][]Setting{}, version: v}
	data, own, err := read(path, maxConfFileSize)
	if err != nil {
		return nil, err
	}
	c.noteOwner(path, own)
	c.Files = append(c.Files, path)
	c.size = int64(len(data))
	c.parse(path, data, 0, []string{path}, read)
	return c, nil
}

// noteOwner: slurmd reads every file as root and runs the Prolog= and Epilog= they name as root;
// whoever can change one of them runs code as root on every node.
func (c *SlurmConf) noteOwner(path string, own fileOwner) {
	switch {
	case own.mode&0o022 != 0:
		c.Findings = append(c.Findings, Finding{Fail, fmt.Sprintf("%s is writable by group or others (mode %#o): they choose what slurmd runs as root", path, own.mode&0o7777),
			"chmod go-w " + path})
	case own.uid != 0:
		c.Findings = append(c.Findings, Finding{Warn, fmt.Sprintf("%s is owned by uid %d, not root: that user chooses what slurmd runs as root (Prolog=, Epilog=)", path, own.uid),
			"chown root: " + path + " (unless uid " + strconv.Itoa(int(own.uid)) + " is SlurmUser and trusted as root)"})
	case own.dirMode&0o022 != 0 && own.dirMode&syscall.S_ISVTX == 0:
		dir := filepath.Dir(path)
		c.Findings = append(c.Findings, Finding{Fail, fmt.Sprintf("%s is in %s, writable by group or others (mode %#o): they can replace it", path, dir, own.dirMode&0o7777),
			"chmod go-w " + dir})
	}
}

// parse reads one file's lines (Slurm's _get_next_line and s_p_parse_file): comments start at
// an unescaped '#', an odd run of backslashes at the end of a line continues it on the next,
// then every backslash escapes the character after it. A line starting with "Include" and a
// space names another file, read in place (stack holds the files being read, to stop cycles).
func (c *SlurmConf) parse(file string, data []byte, depth int, stack []string, read confReader) {
	lineNo := 1
	for len(data) > 0 {
		var buf []byte
		first := lineNo
		for len(data) > 0 {
			var phys []byte
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				phys, data = data[:i+1], data[i+1:]
			} else {
				phys, data = data, nil
			}
			lineNo++
			phys = stripComment(phys)
			if n, cont := stripContinuation(phys); cont {
				buf = append(buf, phys[:n]...)
				continue
			}
			buf = append(buf, phys...)
			break
		}
		line := stripEscapes(buf)
		if len(line) == 0 {
			continue
		}
		if name, ok := includeDirective(line); ok {
			c.include(file, first, name, depth, stack, read)
			continue
		}
		m := keyValue.FindStringSubmatchIndex(line)
		if m == nil {
			continue
		}
		key := line[m[2]:m[3]]
		var val string
		switch {
		case m[10] >= 0:
			val = line[m[10]:m[11]]
		case m[12] >= 0:
			val = line[m[12]:m[13]]
		}
		rest := strings.TrimSpace(line[m[7]:])
		lk := strings.ToLower(key)
		c.settings[lk] = append(c.settings[lk], Setting{Key: key, Value: val, Rest: rest, File: file, Line: first})
	}
}

func stripComment(line []byte) []byte {
	bs := 0
	for i, b := range line {
		switch {
		case b == '#' && bs%2 == 0:
			return line[:i]
		case b == '\\':
			bs++
		default:
			bs = 0
		}
	}
	return line
}

// stripContinuation is _strip_continuation: trailing white space, then an odd number of
// backslashes, continue the line; n is where the kept part ends.
func stripContinuation(line []byte) (n int, cont bool) {
	i, bs := len(line)-1, 0
	for ; i >= 0; i-- {
		if line[i] == '\\' {
			bs++
		} else if isSpace(line[i]) && bs == 0 {
			continue
		} else {
			break
		}
	}
	if bs%2 == 1 {
		// Slurm cuts at the last backslash: the others stay, to be unescaped in pairs.
		return i + bs, true
	}
	return len(line), false
}

func stripEscapes(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' {
			i++
			if i == len(b) {
				break
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\v' || b == '\f'
}

// includeDirective is _parse_include_directive's test: "include" in any case at the very start
// of the line, white space, then the file name up to the next white space.
func includeDirective(line string) (string, bool) {
	if len(line) < 8 || !strings.EqualFold(line[:7], "include") || !isSpace(line[7]) {
		return "", false
	}
	name := strings.TrimLeft(line[7:], " \t\n\r\v\f")
	if i := strings.IndexAny(name, " \t\n\r\v\f"); i >= 0 {
		name = name[:i]
	}
	return name, true
}

func (c *SlurmConf) include(file string, line int, name string, depth int, stack []string, read confReader) {
	where := fmt.Sprintf("%s:%d", file, line)
	fail := func(detail, fix string) {
		c.Findings = append(c.Findings, Finding{Fail, where + ": Include " + name + ": " + detail, fix})
	}
	if read == nil {
		return
	}
	if name == "" {
		fail("no file name", "name a file after Include")
		return
	}
	// %c is the cluster's name, lowercased (_parse_for_format), as set so far.
	if strings.Contains(name, "%c") {
		cl := c.Get("ClusterName")
		if cl == "" {
			fail("%c but no ClusterName before it: slurmd refuses to start", "set ClusterName= before this line")
			return
		}
		name = strings.ReplaceAll(name, "%c", strings.ToLower(cl))
	}
	// 23.11 and later refuse a name with '*' (Slurm does not expand globs); before, it is a
	// literal file name.
	if strings.Contains(name, "*") && c.version.AtLeast(23, 11) {
		fail("Slurm does not expand globs in Include: slurmd refuses to start with this line in slurm.conf "+
			"(in an included file with DebugFlags=GLOB_SILENCE it skips it); the doctor skips it too",
			"one Include line per file")
		return
	}
	path := name
	if !filepath.IsAbs(name) {
		// 22.05 resolves a relative name against the including file's directory
		// (_add_full_path); 23.02 and later against slurm.conf's (get_extra_conf_path).
		base := c.Dir
		if c.version.Known() && !c.version.AtLeast(23, 2) {
			base = filepath.Dir(file)
		}
		path = filepath.Join(base, name)
	}
	for _, p := range stack {
		if p == path {
			fail("includes itself (through "+strings.Join(stack, " -> ")+"): slurmd would recurse until it crashes; the doctor stops", "remove the cycle")
			return
		}
	}
	if depth+1 > maxIncludeDepth {
		fail(fmt.Sprintf("nested deeper than %d files; the doctor stops", maxIncludeDepth), "flatten the Include files")
		return
	}
	if len(c.Files) >= maxConfFiles {
		fail(fmt.Sprintf("more than %d files read; the doctor stops", maxConfFiles), "fewer Include files")
		return
	}
	left := int64(maxConfTotalSize) - c.size
	if left <= 0 {
		fail(fmt.Sprintf("more than %d MiB read; the doctor stops", maxConfTotalSize>>20), "smaller Include files")
		return
	}
	data, own, err := read(path, min(left, maxConfFileSize))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			fail(path+" is missing: slurmd refuses to start (so this may not be the configuration it runs)", "create "+path+" or remove the line")
		} else {
			fail(err.Error(), "make "+path+" a readable regular file")
		}
		return
	}
	c.noteOwner(path, own)
	c.Files = append(c.Files, path)
	c.size += int64(len(data))
	c.parse(path, data, depth+1, append(stack[:len(stack):len(stack)], path), read)
}
