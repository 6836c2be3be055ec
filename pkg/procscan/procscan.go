// Package procscan runs the scans of the process table that read other processes' memory (the
// FFL_SESSION marker in environ, slurmstepd's command line) where a read stuck in the kernel
// cannot hold up the caller. A user can make reads of their own process's memory block (a FUSE
// mount in a user namespace that never answers, a thread holding the mmap lock while it waits
// for it); such a read never returns and no deadline inside the reading thread helps. So:
//
//   - Child (the root hooks) re-executes this program as root with a hidden subcommand that
//     serves the scan (Serve) and reads its streamed answer with reexec's deadlines; at the
//     deadline the child is killed and abandoned, and what it reported until then is kept.
//   - InProcess (the launcher, the privilege-dropped helper) runs the scan in a goroutine and
//     abandons it at the deadline: the stuck thread costs nothing but itself (the waits that can
//     be made to hang are killable, so the process still exits).
//
// Either way the caller gets every match found before the deadline, and an error saying the
// scan was cut short.
package procscan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/reexec"
)

// Scanner answers the hooks' questions about the process table.
type Scanner interface {
	// Marked calls found for every process q matches, as it is found, until the scan is done
	// or ctx is; then it returns (with an error when the scan was cut short or failed). found
	// is never called after Marked returned.
	Marked(ctx context.Context, q proc.MarkerQuery, found func(proc.Identity, int)) (proc.ScanStats, error)
	// SlurmJobs returns the IDs of the Slurm jobs with a slurmstepd on this node
	// (proc.FS.SlurmJobs), as far as the scan got by ctx's deadline.
	SlurmJobs(ctx context.Context) (map[string]bool, error)
}

// InProcess runs the scans in this process, each in a goroutine abandoned when ctx is done.
type InProcess struct {
	// FS is the procfs to read (zero: /proc).
	FS proc.FS
}

// Marked implements Scanner.
func (s InProcess) Marked(ctx context.Context, q proc.MarkerQuery, found func(proc.Identity, int)) (proc.ScanStats, error) {
	var mu sync.Mutex
	open := true
	type result struct {
		stats proc.ScanStats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := s.FS.FindMarked(ctx, q, func(id proc.Identity, i int) {
			mu.Lock()
			defer mu.Unlock()
			if open {
				found(id, i)
			}
		})
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		return r.stats, r.err
	case <-ctx.Done():
		mu.Lock()
		open = false
		mu.Unlock()
		return proc.ScanStats{}, fmt.Errorf("marker scan abandoned (a read of a process's memory did not return): %w", context.Cause(ctx))
	}
}

// SlurmJobs implements Scanner.
func (s InProcess) SlurmJobs(ctx context.Context) (map[string]bool, error) {
	type result struct {
		jobs map[string]bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		jobs, err := s.FS.SlurmJobs(ctx, nil)
		done <- result{jobs, err}
	}()
	select {
	case r := <-done:
		return r.jobs, r.err
	case <-ctx.Done():
		return map[string]bool{}, fmt.Errorf("slurmstepd scan abandoned: %w", context.Cause(ctx))
	}
}

// Child runs the scans in a child process: Command re-executed (as the caller, i.e. root) with
// Serve behind it. Cmd's Args name the hidden subcommand, e.g. {"scan"}.
type Child struct {
	Command reexec.Command
}

// Request is what a scan child is asked.
type Request struct {
	// Op is OpMarked or OpSlurmJobs.
	Op    string            `json:"op"`
	Query *proc.MarkerQuery `json:"query,omitempty"`
}

// Scan operations.
const (
	OpMarked    = "marked"
	OpSlurmJobs = "slurm_jobs"
)

// match is one item line of a marker scan.
type match struct {
	proc.Identity
	Prefix int `json:"prefix"`
}

// Marked implements Scanner.
func (c Child) Marked(ctx context.Context, q proc.MarkerQuery, found func(proc.Identity, int)) (proc.ScanStats, error) {
	if err := q.Validate(); err != nil {
		return proc.ScanStats{}, err
	}
	var stats proc.ScanStats
	err := c.Command.Call(ctx, nil, Request{Op: OpMarked, Query: &q}, func(raw json.RawMessage) error {
		var m match
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if m.UID != q.UID || m.PID <= 1 || m.Prefix < 0 || m.Prefix >= len(q.Prefixes) {
			return fmt.Errorf("match %+v does not answer the query", m)
		}
		found(m.Identity, m.Prefix)
		return nil
	}, &stats)
	if err != nil {
		return stats, fmt.Errorf("marker scan in a child: %w", err)
	}
	return stats, nil
}

// SlurmJobs implements Scanner.
func (c Child) SlurmJobs(ctx context.Context) (map[string]bool, error) {
	var ids []string
	err := c.Command.Call(ctx, nil, Request{Op: OpSlurmJobs}, nil, &ids)
	jobs := map[string]bool{}
	for _, id := range ids {
		if _, ok := proc.ParseStepdCmdline([]byte("slurmstepd: [" + id + "]")); ok {
			jobs[id] = true
		}
	}
	if err != nil {
		return jobs, fmt.Errorf("slurmstepd scan in a child: %w", err)
	}
	return jobs, nil
}

// Serve is the scan child's side (the hidden subcommand's whole work): it answers one Request
// on out, streaming matches as they are found. A scan cut short by the child's own deadline
// answers with an error after the matches it found.
func Serve(arg string, out io.Writer) error {
	return ServeFS(proc.FS{}, arg, out)
}

// ServeFS is Serve on a given procfs (tests).
func ServeFS(fs proc.FS, arg string, out io.Writer) error {
	return reexec.Serve(arg, out, func(ctx context.Context, data json.RawMessage, emit func(any) error) (any, error) {
		var req Request
		if err := json.Unmarshal(data, &req); err != nil {
			return nil, fmt.Errorf("scan request: %w", err)
		}
		switch req.Op {
		case OpMarked:
			if req.Query == nil {
				return nil, errors.New("scan request: no query")
			}
			var werr error
			st, err := fs.FindMarked(ctx, *req.Query, func(id proc.Identity, i int) {
				if werr == nil {
					werr = emit(match{Identity: id, Prefix: i})
				}
			})
			if werr != nil {
				return nil, werr
			}
			if err != nil {
				return nil, err
			}
			return st, nil
		case OpSlurmJobs:
			jobs, err := fs.SlurmJobs(ctx, nil)
			if err != nil {
				return nil, err
			}
			ids := make([]string, 0, len(jobs))
			for id := range jobs {
				ids = append(ids, id)
			}
			return ids, nil
		}
		return nil, fmt.Errorf("scan request: unknown op %q", req.Op)
	})
}
