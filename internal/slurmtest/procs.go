package slurmtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/lifecycle"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// Describe renders processes as "PID(comm)" ("?" for one that is gone), in the given order, for
// failure messages that name what was left.
func Describe(ids []proc.Identity) []string {
	var out []string
	for _, id := range ids {
		comm := "?"
		if st, err := proc.ReadStat(id.PID); err == nil {
			comm = st.Comm
		}
		out = append(out, fmt.Sprintf("%d(%s)", id.PID, comm))
	}
	return out
}

// Comms returns the sorted command names of the live processes among ids: a session is whole
// when xpra and firefox-esr are among them.
func Comms(ids []proc.Identity) []string {
	var out []string
	for _, id := range ids {
		if st, err := proc.ReadStat(id.PID); err == nil {
			out = append(out, st.Comm)
		}
	}
	sort.Strings(out)
	return out
}

// FirefoxMains returns the main Firefox processes among ids: comm firefox-esr, parent not
// firefox-esr (its content and utility processes come and go by themselves; the main one
// lives as long as the user's Firefox).
func FirefoxMains(ids []proc.Identity) []proc.Identity {
	var mains []proc.Identity
	for _, id := range ids {
		st, err := proc.ReadStat(id.PID)
		if err != nil || st.Comm != "firefox-esr" {
			continue
		}
		if pst, err := proc.ReadStat(st.PPID); err == nil && pst.Comm == "firefox-esr" {
			continue
		}
		mains = append(mains, id)
	}
	return mains
}

// InJob reports whether process pid has SLURM_JOB_ID=job in its environment: Slurm gives it to
// every process of a job, and the suites tell a job's own processes from another's by it.
func InJob(pid int, job string) bool {
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && hasEnv(env, "SLURM_JOB_ID="+job)
}

// hasEnv reports whether the NUL-separated environment env holds the entry kv exactly.
func hasEnv(env []byte, kv string) bool {
	return bytes.Contains(append([]byte{0}, env...), []byte("\x00"+kv+"\x00"))
}

// LauncherInfos returns the sessions a launcher announced so far in its output file (its
// --json lines, among its log lines); nil while the file does not exist.
func LauncherInfos(path string) []lifecycle.Info {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []lifecycle.Info
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var info lifecycle.Info
		if json.Unmarshal(line, &info) == nil && info.Port != 0 {
			out = append(out, info)
		}
	}
	return out
}

// AssertNoneLeft fails t for each of paths that still exists (or cannot be looked at) once a
// job has ended: the job's directories are part of what its end must remove.
func AssertNoneLeft(t testing.TB, job string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("job %s: %s left (%v)", job, p, err)
		}
	}
}

// AssertPortsFree fails t for each of ports that is not free on the loopback within ten seconds
// of a job's end: a session's port must be usable again by the next job.
func AssertPortsFree(t testing.TB, job string, ports []int) {
	t.Helper()
	for _, port := range ports {
		if !WaitUntil(10*time.Second, func() bool { return testutil.PortFree(port) }) {
			t.Errorf("job %s: port %d still in use", job, port)
		}
	}
}
