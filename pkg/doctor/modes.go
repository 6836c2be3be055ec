package doctor

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
)

// Files slurmd reads beside slurm.conf (get_extra_conf_path; configless, the controller sends
// them into the same cache directory).
const (
	cgroupConf       = "cgroup.conf"
	jobContainerConf = "job_container.conf"
	namespaceYAML    = "namespace.yaml"
)

// defaultPrivateDirs is what job_container/tmpfs and namespace/linux make private to each job
// when their file names none (Dirs=, dirs:).
var defaultPrivateDirs = []string{"/tmp", "/dev/shm"}

// isolation is the per-job namespace a node's slurmd builds, read from slurm.conf and the file
// of its plugin.
type isolation struct {
	// plugin is "job_container/tmpfs", "namespace/tmpfs" or "namespace/linux" ("" = none),
	// key the slurm.conf line that chose it.
	plugin string
	key    Setting
	// file is the plugin's own file, read (or not: err).
	file string
	err  error
	// dirs are the directories each job gets a private copy of (any node's, when the file
	// sets them per node).
	dirs []string
	// pidNS, userNS: namespace.yaml asks for CLONE_NEWPID / CLONE_NEWUSER; scope says for
	// which nodes ("all nodes", "some nodes (node_confs)").
	pidNS, userNS string
	// userNSScript: namespace.yaml names a user_ns_script, which maps uids its own way
	// (without one Slurm maps every uid and gid to itself).
	userNSScript bool
}

// readIsolation finds the namespace plugin: NamespaceType (25.11) wins over JobContainerType,
// which 25.11 maps to the namespace/ plugin of the same name; "none" in the name means none.
func readIsolation(c *SlurmConf, read confReader) isolation {
	var iso isolation
	ns, nsOK := c.Last("NamespaceType")
	jc, jcOK := c.Last("JobContainerType")
	switch {
	case nsOK && c.version.AtLeast(25, 11):
		iso.plugin, iso.key = ns.Value, ns
	case jcOK:
		iso.plugin, iso.key = jc.Value, jc
	}
	if strings.Contains(strings.ToLower(iso.plugin), "none") {
		iso.plugin = ""
	}
	name := strings.ToLower(iso.plugin)
	switch {
	case name == "":
		return iso
	case strings.HasSuffix(name, "/tmpfs"):
		iso.file = filepath.Join(c.Dir, jobContainerConf)
		jcc, err := readSlurmConf(iso.file, c.version, read)
		if err != nil {
			iso.err = err
			iso.dirs = defaultPrivateDirs
			return iso
		}
		// Dirs= globally, or on a NodeName= line (any node's counts: the doctor does not
		// expand host lists).
		var dirs []string
		for _, s := range jcc.All("Dirs") {
			dirs = append(dirs, splitDirs(s.Value)...)
		}
		for _, s := range jcc.All("NodeName") {
			for _, f := range strings.Fields(s.Rest) {
				if k, v, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "Dirs") {
					dirs = append(dirs, splitDirs(strings.Trim(v, `"`))...)
				}
			}
		}
		if len(dirs) == 0 {
			dirs = defaultPrivateDirs
		}
		iso.dirs = dirs
	case strings.HasSuffix(name, "/linux"):
		iso.file = filepath.Join(c.Dir, namespaceYAML)
		data, _, err := read(iso.file, maxConfFileSize)
		if err != nil {
			iso.err = err
			return iso
		}
		scanNamespaceYAML(data, &iso)
	}
	return iso
}

func splitDirs(v string) []string {
	var out []string
	for _, d := range strings.Split(v, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, filepath.Clean(d))
		}
	}
	return out
}

// scanNamespaceYAML reads what ffl cares about in namespace.yaml without a YAML library: the
// clone_ns_flags (namespace/linux itself only searches the flags' text for CLONE_NEWPID and
// CLONE_NEWUSER, case-insensitive), the private directories (dirs: "a,b" or dir_confs' path:
// entries; default /tmp,/dev/shm), and whether each was found under the top-level defaults: or
// under node_confs: (some nodes only).
func scanNamespaceYAML(data []byte, iso *isolation) {
	section := ""
	var dirs []string
	inFlags := false
	flagIndent := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		text := strings.TrimSpace(line)
		if indent == 0 {
			section = strings.TrimSuffix(strings.TrimSpace(strings.SplitN(text, ":", 2)[0]), ":")
		}
		scope := "all nodes"
		if section == "node_confs" {
			scope = "some nodes (node_confs)"
		}
		key, val, hasColon := strings.Cut(strings.TrimPrefix(text, "- "), ":")
		key = strings.TrimSpace(key)
		val = strings.Trim(strings.TrimSpace(val), `"'`)
		if inFlags && indent <= flagIndent && !strings.HasPrefix(text, "-") {
			inFlags = false
		}
		if hasColon && key == "clone_ns_flags" {
			inFlags, flagIndent = true, indent
		}
		if inFlags || (hasColon && key == "clone_ns_flags") {
			up := strings.ToUpper(text)
			if strings.Contains(up, "CLONE_NEWPID") && (iso.pidNS == "" || scope == "all nodes") {
				iso.pidNS = scope
			}
			if strings.Contains(up, "CLONE_NEWUSER") && (iso.userNS == "" || scope == "all nodes") {
				iso.userNS = scope
			}
		}
		if hasColon && key == "user_ns_script" && val != "" {
			iso.userNSScript = true
		}
		switch {
		case hasColon && key == "dirs" && val != "":
			dirs = append(dirs, splitDirs(val)...)
		case hasColon && key == "path" && strings.HasPrefix(val, "/"):
			dirs = append(dirs, filepath.Clean(val))
		}
	}
	if len(dirs) == 0 {
		dirs = defaultPrivateDirs
	}
	iso.dirs = dirs
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	path, dir = filepath.Clean(path), filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// readCgroupConf reads cgroup.conf beside slurm.conf; a missing file is Slurm's defaults.
func readCgroupConf(c *SlurmConf, read confReader) (*SlurmConf, error) {
	cg, err := readSlurmConf(filepath.Join(c.Dir, cgroupConf), c.version, read)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return cg, err
}
