package reclaim

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// runningJobs answers "does Slurm job K still have a step on this node?" from the process table,
// without calling Slurm commands (which the Prolog and Epilog must not do): every step of a job
// is served by a slurmstepd whose command line Slurm sets to "slurmstepd: [<job>.<step>]". It is
// used only to keep things, never to remove them: a process table that hides root's processes
// (hidepid) just makes it answer no, and the other rules decide. The scan runs once, on first use.
type runningJobs struct {
	scanned bool
	jobs    map[string]bool
}

func (r *runningJobs) has(key string) bool {
	if slurmenv.ValidJobID(key) != nil {
		return false // local-<pid> and the like: not a Slurm job
	}
	if !r.scanned {
		r.jobs = slurmJobsOnNode(proc.DefaultRoot)
		r.scanned = true
	}
	return r.jobs[key]
}

// slurmJobsOnNode lists the job IDs that have a slurmstepd on this node.
func slurmJobsOnNode(procRoot string) map[string]bool {
	jobs := map[string]bool{}
	ids, _ := proc.FS{Root: procRoot}.Scan(func(st proc.Stat, uid int) bool { return st.Comm == "slurmstepd" })
	for _, id := range ids {
		f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(id.PID), "cmdline"))
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if key, ok := ParseStepdCmdline(data); ok {
			jobs[key] = true
		}
	}
	return jobs
}

// ParseStepdCmdline returns the job ID in a slurmstepd command line ("slurmstepd: [123.batch]",
// possibly NUL- or space-padded by setproctitle), or false.
func ParseStepdCmdline(data []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(data, []byte("slurmstepd: ["))
	if !ok {
		return "", false
	}
	end := bytes.IndexAny(rest, ".]")
	if end <= 0 {
		return "", false
	}
	id := string(rest[:end])
	if slurmenv.ValidJobID(id) != nil {
		return "", false
	}
	return id, true
}
