package proc

import (
	"bytes"
	"context"
	"fmt"
)

// maxCmdlineRead caps the command line read of a slurmstepd ("slurmstepd: [123.batch]").
const maxCmdlineRead = 4 << 10

// SlurmJobs returns the IDs of the Slurm jobs that have a step on this node, from the process
// table, without calling Slurm commands (which a Prolog or Epilog must not do): every step is
// served by a slurmstepd whose command line Slurm sets to "slurmstepd: [<job>.<step>]". Only
// root's processes named slurmstepd are looked at, and only their command line is read (a user
// can name a process slurmstepd, and make reads of its memory block; root's slurmstepd is
// Slurm's own). validJob filters what ParseStepdCmdline found. ctx is checked between processes.
func (fs FS) SlurmJobs(ctx context.Context, validJob func(string) bool) (map[string]bool, error) {
	jobs := map[string]bool{}
	buf := make([]byte, maxCmdlineRead)
	err := fs.newScanner().walkCtx(ctx, true, nil, func(d pidDir, st Stat, uid int) {
		if uid != 0 || st.Comm != "slurmstepd" || st.Zombie() {
			return
		}
		data, _, err := d.read("cmdline", buf)
		if err != nil {
			return
		}
		if key, ok := ParseStepdCmdline(data); ok && (validJob == nil || validJob(key)) {
			jobs[key] = true
		}
	})
	if ctx.Err() != nil {
		return jobs, fmt.Errorf("slurmstepd scan cut short: %w", context.Cause(ctx))
	}
	return jobs, err
}

// ParseStepdCmdline returns the job ID in a slurmstepd command line ("slurmstepd: [123.batch]",
// possibly NUL- or space-padded by setproctitle): a canonical decimal, or false.
func ParseStepdCmdline(data []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(data, []byte("slurmstepd: ["))
	if !ok {
		return "", false
	}
	end := bytes.IndexAny(rest, ".]")
	if end <= 0 || end > 20 {
		return "", false
	}
	id := rest[:end]
	if id[0] == '0' {
		return "", false
	}
	for _, c := range id {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return string(id), true
}
