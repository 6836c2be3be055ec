package proc

import (
	"bytes"
	"context"
	"fmt"
)

// DefaultEnvironCap is how much of each environment a marker scan reads. ffl-launch puts
// FFL_SESSION first in xpra's environment (its children inherit the order), so the marker sits
// in the first few hundred bytes; the cap bounds what one process can make a scan cost (a
// process with a 1 MiB environment costs 4 KiB of reading, not 1 MiB). A process whose marker
// entry does not start within the cap is not found: a process that hides its marker behind a
// huge environment hides only itself from its own session's cleanup.
const DefaultEnvironCap = 4 << 10

// maxEnvironCap bounds MarkerQuery.EnvironCap.
const maxEnvironCap = 1 << 20

// MarkerQuery says which processes a marker scan looks for, and what it may skip unread.
type MarkerQuery struct {
	// UID is the real uid of the processes (never 0: root's processes are never a session's).
	UID int `json:"uid"`
	// Name is the variable (FFL_SESSION); a process matches when its value starts with one of
	// Prefixes (the index of the first that matches is reported).
	Name     string   `json:"name"`
	Prefixes []string `json:"prefixes"`
	// NotBefore, when > 0, skips processes that started (clock ticks after boot, like
	// Identity.StartTime) before it without reading their environment: a session's processes
	// start after its launcher. It comes from records a user can write, so it can only make the
	// user's own cleanup see less.
	NotBefore uint64 `json:"not_before,omitempty"`
	// First are identities to look at before the rest of /proc (those the state files record):
	// a scan cut short has then seen the likeliest first.
	First []Identity `json:"first,omitempty"`
	// EnvironCap is how many bytes of each environment are read (0: DefaultEnvironCap).
	EnvironCap int `json:"environ_cap,omitempty"`
}

// Validate refuses a query a root scan must not run.
func (q MarkerQuery) Validate() error {
	switch {
	case q.UID == 0:
		return fmt.Errorf("find by marker %s: uid 0: %w", q.Name, ErrRefused)
	case q.UID < 0:
		return fmt.Errorf("find by marker: bad uid %d", q.UID)
	case q.Name == "" || bytes.ContainsAny([]byte(q.Name), "=\x00"):
		return fmt.Errorf("find by marker: bad marker name %q", q.Name)
	case q.EnvironCap < 0 || q.EnvironCap > maxEnvironCap:
		return fmt.Errorf("find by marker: environ cap %d out of range", q.EnvironCap)
	}
	for _, p := range q.Prefixes {
		if bytes.IndexByte([]byte(p), 0) >= 0 {
			return fmt.Errorf("find by marker: bad marker %q=%q", q.Name, p)
		}
	}
	return nil
}

// ScanStats says what a marker scan cost, for logs and benchmarks.
type ScanStats struct {
	// Processes is the number of processes looked at (stat and status read).
	Processes int `json:"processes"`
	// Environs is the number of environments read; Skipped the processes of the uid passed
	// over without reading theirs (started before NotBefore).
	Environs int `json:"environs"`
	Skipped  int `json:"skipped"`
}

// FindMarked walks /proc once and calls found, as soon as it knows, for every live process of
// q.UID whose q.Name value starts with one of q.Prefixes. Cheap filters come before any read of
// another process's memory: the uid and state (stat and status, which read no process memory),
// then q.NotBefore; then at most q.EnvironCap bytes of the environment are read. ctx is checked
// between processes: when it is done the scan stops and returns what it found so far with an
// error wrapping ctx's. A single read can still block (a process can make reads of its own
// memory hang): callers that must not wait on it run the scan in a child process (procscan).
// Processes vanishing mid-scan are skipped; a non-nil error otherwise lists entries that could
// not be read (they are missing from what was found).
func (fs FS) FindMarked(ctx context.Context, q MarkerQuery, found func(Identity, int)) (ScanStats, error) {
	var stats ScanStats
	if err := q.Validate(); err != nil {
		return stats, err
	}
	if len(q.Prefixes) == 0 {
		return stats, nil
	}
	envCap := q.EnvironCap
	if envCap == 0 {
		envCap = DefaultEnvironCap
	}
	envBuf := make([]byte, envCap)
	s := fs.newScanner()
	look := func(d pidDir, st Stat, uid int) {
		stats.Processes++
		if uid != q.UID || st.Zombie() {
			return
		}
		if q.NotBefore > 0 && st.StartTime < q.NotBefore {
			stats.Skipped++
			return
		}
		stats.Environs++
		env, _, err := d.read("environ", envBuf)
		if err != nil {
			return // exited, not dumpable, no permission: skipped, as documented
		}
		for i, p := range q.Prefixes {
			if environHas(env, q.Name, p) {
				found(Identity{PID: st.PID, StartTime: st.StartTime, UID: uid}, i)
				return
			}
		}
	}
	seen := map[int]bool{}
	for _, id := range q.First {
		if ctx.Err() != nil {
			break
		}
		if id.PID <= 0 || seen[id.PID] || id.UID != q.UID {
			continue
		}
		seen[id.PID] = true
		_ = s.one(id.PID, true, func(d pidDir, st Stat, uid int) {
			if st.StartTime == id.StartTime {
				look(d, st, uid)
			} else {
				delete(seen, id.PID) // another process holds the PID now: the walk looks at it
			}
		})
	}
	err := s.walkCtx(ctx, true, func(pid int) bool { return !seen[pid] }, look)
	if cerr := ctx.Err(); cerr != nil {
		return stats, fmt.Errorf("marker scan cut short after %d processes: %w", stats.Processes, context.Cause(ctx))
	}
	return stats, err
}
