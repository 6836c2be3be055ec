package doctor

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"time"
)

// SlurmConf is the key=value settings of a slurm.conf (keys are case-insensitive in Slurm).
type SlurmConf map[string]string

// ParseSlurmConf reads the top-level key=value pairs of slurm.conf: comments (#) and blank
// lines skipped, NodeName/PartitionName lines (several pairs on one line) kept as their first
// pair, the last value of a repeated key winning, as slurmctld does.
func ParseSlurmConf(data []byte) SlurmConf {
	c := SlurmConf{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "nodename" || k == "partitionname" {
			continue
		}
		c[k] = strings.Trim(v, `"`)
	}
	return c
}

// Get returns a key's value ("" when unset).
func (c SlurmConf) Get(key string) string { return c[strings.ToLower(key)] }

// Duration returns a value in seconds (how slurm.conf gives KillWait and PrologEpilogTimeout).
func (c SlurmConf) Duration(key string) (time.Duration, bool) {
	v := c.Get(key)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
