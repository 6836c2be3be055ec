package procscan

import (
	"context"
	"time"

	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

// slurmScanTimeout bounds the slurmstepd scan when the caller's context allows more.
const slurmScanTimeout = 2 * time.Second

// RunningJobs answers "does Slurm job K still have a step on this node?" from the process table
// (Scanner.SlurmJobs: root's slurmstepd processes only), without calling Slurm
// commands. It is used only to keep things, never to remove them: a scan that fails or is cut
// short just answers no, and the other rules decide. The scan runs once, on first use.
type RunningJobs struct {
	ctx     context.Context
	scanner Scanner
	scanned bool
	jobs    map[string]bool
}

// NewRunningJobs answers from s, within ctx (and slurmScanTimeout).
func NewRunningJobs(ctx context.Context, s Scanner) *RunningJobs {
	return &RunningJobs{ctx: ctx, scanner: s}
}

// Has reports whether job key has a slurmstepd here (false for a key that is no Slurm job ID).
func (r *RunningJobs) Has(key string) bool {
	if slurmenv.ValidJobID(key) != nil {
		return false // local-<pid> and the like: not a Slurm job
	}
	if !r.scanned {
		ctx, cancel := context.WithTimeout(r.ctx, slurmScanTimeout)
		r.jobs, _ = r.scanner.SlurmJobs(ctx)
		cancel()
		r.scanned = true
	}
	return r.jobs[key]
}
