package reclaim

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
)

// SweepJobKey is the job key a caller with no job of its own (the sweep) puts in the layout it
// gives Stale: no job has it (job keys are Slurm job IDs or local-<pid>), so nothing is excluded.
const SweepJobKey = "sweep"

// Stale removes this user's sessions on this node (l.Node) whose supervisor is gone: its
// supervisor.json names a process that is not alive (PID + start time + uid), or comes from
// another boot, or there is no supervisor record at all. It never touches the job l.JobKey
// itself, and never a job whose supervisor is alive (also when only a state file names it).
// It looks at both runtime job dirs (<runtime>/job-*, <temp>/ffl-<uid>/job-*) and at the home
// subtree <state>/sessions/<node>/job-*: a home job dir with no live node-local supervisor is
// stale (a reboot wiped /run, say).
//
// A job without any supervisor record is left alone while it may be starting: when its
// directories changed less than RecordlessGrace ago, or while its Slurm job still has a
// slurmstepd on this node. With OlderThan > 0 only jobs whose last activity is older than
// that are removed. The processes of all stale jobs are ended together (one grace period).
func Stale(ctx context.Context, l layout.Layout, opts Options) (Report, error) {
	t, _, _, err := reclaimStale(ctx, l, opts, "reclaim stale")
	if err != nil {
		return Report{}, err
	}
	rep := t.Report()
	return rep, rep.Err()
}

// reclaimStale is the part Stale and SweepUser share: it finds this user's stale jobs (idle
// for opts.OlderThan) and reclaims them, and returns the tally, the jobs it reclaimed and the
// boot ID it judged them by, for a sweep's further work. what names the caller in an error.
func reclaimStale(ctx context.Context, l layout.Layout, opts Options, what string) (*Tally, []*jobInfo, string, error) {
	if err := l.Validate(); err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", what, err)
	}
	t := NewTally(opts.Log)
	bootID, err := BootID(opts.BootID)
	if err != nil {
		return nil, nil, "", err
	}
	stale := findStale(ctx, l, bootID, opts, opts.OlderThan, t)
	reclaimJobs(ctx, l, stale, bootID, opts, t, "")
	return t, stale, bootID, nil
}

// findStale scans this user's jobs on this node and returns the stale ones (sorted by key),
// l.JobKey excluded.
func findStale(ctx context.Context, l layout.Layout, bootID string, opts Options, olderThan time.Duration, t *Tally) []*jobInfo {
	jobs := map[string]*jobInfo{}
	scanNodeLocal(l, jobs, t)
	scanHome(l, jobs, t)
	delete(jobs, l.JobKey)
	now := time.Now()
	running := procscan.NewRunningJobs(ctx, opts.scanner()).Has
	var stale []*jobInfo
	for _, key := range sortedKeys(jobs) {
		j := jobs[key]
		if j.empty() {
			continue
		}
		live, reason := liveness(j, l.UID, bootID, now, running, procAlive(ctx))
		j.reason = reason
		if live {
			continue
		}
		if olderThan > 0 && now.Sub(j.activity) < olderThan {
			continue
		}
		stale = append(stale, j)
	}
	return stale
}

// SessionStatus is one session (or, with Port 0, a job directory without sessions) of this user
// on this node, as `ffl-launch list` shows it when no supervisor answers.
type SessionStatus struct {
	Job        string        `json:"job"`
	Port       int           `json:"port"`
	Live       bool          `json:"live"`
	Reason     string        `json:"reason"`
	RuntimeDir string        `json:"runtime_dir"`
	State      *layout.State `json:"state,omitempty"`
	// HomeDir is the session's directory in the home ("" if none).
	HomeDir string `json:"home_dir,omitempty"`
}

// ListSessions returns this user's sessions on this node, of all jobs (l.JobKey included),
// each with whether its supervisor is alive and why: what Stale would remove is exactly the
// entries with Live false (without OlderThan). Problems met while reading are not errors here;
// an error means the layout itself is unusable.
func ListSessions(l layout.Layout, bootID string) ([]SessionStatus, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("reclaim list: %w", err)
	}
	if bootID == "" {
		var err error
		if bootID, err = BootID(""); err != nil {
			return nil, err
		}
	}
	t := NewTally(nil)
	jobs := map[string]*jobInfo{}
	scanNodeLocal(l, jobs, t)
	scanHome(l, jobs, t)
	now := time.Now()
	running := procscan.NewRunningJobs(context.Background(), procscan.InProcess{}).Has
	var out []SessionStatus
	for _, key := range sortedKeys(jobs) {
		j := jobs[key]
		if j.empty() {
			continue
		}
		live, reason := liveness(j, l.UID, bootID, now, running, procAlive(context.Background()))
		ports := j.ports()
		if len(ports) == 0 {
			if live {
				continue // a running job with no session yet (or a wrapped command only)
			}
			dir := ""
			if len(j.runtime) > 0 {
				dir = j.runtime[0]
			}
			out = append(out, SessionStatus{Job: key, Live: false, Reason: reason + "; no sessions", RuntimeDir: dir, HomeDir: j.home})
			continue
		}
		for _, p := range ports {
			s := j.sessions[p]
			out = append(out, SessionStatus{Job: key, Port: p, Live: live, Reason: reason, RuntimeDir: s.runtimeDir, State: s.state, HomeDir: s.homeDir})
		}
	}
	return out, nil
}

func sortedKeys(jobs map[string]*jobInfo) []string {
	keys := make([]string, 0, len(jobs))
	for k := range jobs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
