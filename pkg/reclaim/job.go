package reclaim

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Job ends and removes everything of job l.JobKey on node l.Node, in this process: the
// processes that carry the job's marker (for uid l.UID; identities recorded in state files are
// cross-checked against them, each signalled only via proc.Signal), the X lock and socket of
// the recorded displays when they are the user's and their server is gone, the home job
// subtree and the node-local runtime job dir(s), in that order (the node-local record goes
// last, so an interrupted run can be repeated). Idempotent; tolerates half-created state. The
// launcher calls it for an earlier run of its own job; the Epilog does the same steps split
// between root and the helper (hook.Epilog).
func Job(ctx context.Context, l layout.Layout, opts Options) (Report, error) {
	if err := l.Validate(); err != nil {
		return Report{}, fmt.Errorf("reclaim job: %w", err)
	}
	t := NewTally(opts.Log)
	bootID, err := BootID(opts.BootID)
	if err != nil {
		return Report{}, err
	}
	j := newJobInfo(l.JobKey)
	readJobNodeLocal(l, j, t)
	readJobHome(l, j, t)
	reclaimJobs(ctx, l, []*jobInfo{j}, bootID, opts, t, "job cleanup requested")
	rep := t.Report()
	return rep, rep.Err()
}

// EndJob is the Epilog's first step, as root: read job l.JobKey's node-local records (both
// runtime job dirs; never the home) and end its processes. It returns the X displays the
// records name. Only RuntimeDir, TempDir, UID, Node and JobKey of l are used.
func EndJob(ctx context.Context, l layout.Layout, opts Options) (Report, []int) {
	t := NewTally(opts.Log)
	if err := nodeLocalValid(l); err != nil {
		t.Problem("%v", err)
		return t.Report(), nil
	}
	bootID, err := BootID(opts.BootID)
	if err != nil {
		t.Problem("%v", err)
		return t.Report(), nil
	}
	j := newJobInfo(l.JobKey)
	readJobNodeLocal(l, j, t)
	endProcesses(ctx, l, []*jobInfo{j}, bootID, opts, t)
	t.update(func(r *Report) { r.Sessions += len(j.sessions) })
	return t.Report(), j.displays(bootID)
}

// CleanHome is the Epilog's home step, meant to run as the job's user (in the helper): remove
// <state>/sessions/<node>/job-<key>.
func CleanHome(ctx context.Context, l layout.Layout, opts Options) Report {
	t := NewTally(opts.Log)
	if err := l.Validate(); err != nil {
		t.Problem("%v", err)
		return t.Report()
	}
	j := newJobInfo(l.JobKey)
	readJobHome(l, j, t)
	if j.home != "" { // else missing, or its parents were refused (and reported)
		removeHomeJob(ctx, l, l.JobKey, opts, t)
	}
	t.update(func(r *Report) { r.Sessions += len(j.sessions) })
	return t.Report()
}

// RemoveNodeLocal is the Epilog's last step (and its fast path), as root: remove job
// l.JobKey's node-local runtime job dirs, never entering or removing anything not owned by
// l.UID and never following a symlink.
func RemoveNodeLocal(ctx context.Context, l layout.Layout, opts Options) Report {
	t := NewTally(opts.Log)
	if err := nodeLocalValid(l); err != nil {
		t.Problem("%v", err)
		return t.Report()
	}
	removeNodeLocalJob(ctx, l, l.JobKey, false, opts, t)
	return t.Report()
}

// reclaimJobs ends the processes of jobs together (one grace for all), then removes each job's
// X files, home subtree and node-local dirs. why, if set, says why the jobs are being removed.
func reclaimJobs(ctx context.Context, l layout.Layout, jobs []*jobInfo, bootID string, opts Options, t *Tally, why string) {
	endProcesses(ctx, l, jobs, bootID, opts, t)
	// Removal is syscall-bound: one worker per CPU removes whole job dirs side by side (a sweep
	// of thousands of stale jobs then approaches parallel rm -rf). The human lines keep the
	// jobs' order.
	lines := make([]string, len(jobs))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(max(runtime.NumCPU(), 2), len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				j := jobs[i]
				RemoveXFiles(opts.XDir, j.displays(bootID), l.UID, opts.DryRun, t)
				if j.home != "" {
					removeHomeJob(ctx, l, j.key, opts, t)
				}
				removeNodeLocalJob(ctx, l, j.key, true, opts, t)
				t.update(func(r *Report) { r.Sessions += len(j.sessions) })
				reason := why
				if reason == "" {
					reason = j.reason
				}
				lines[i] = fmt.Sprintf("%s job %s on %s (%s): %s", DoneVerb(opts.DryRun), j.key, l.Node, reason, j.describe())
			}
		}()
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, line := range lines {
		t.removed("%s", line)
	}
}

// describe lists what a job has on disk, for the human lines.
func (j *jobInfo) describe() string {
	var parts []string
	if ports := j.ports(); len(ports) > 0 {
		s := make([]string, len(ports))
		for i, p := range ports {
			s[i] = strconv.Itoa(p)
		}
		parts = append(parts, "sessions "+strings.Join(s, ","))
	} else {
		parts = append(parts, "no sessions")
	}
	parts = append(parts, j.runtime...)
	if j.home != "" {
		parts = append(parts, j.home)
	}
	return strings.Join(parts, " ")
}

// readJobHome reads the home job dir of j.key, if any.
func readJobHome(l layout.Layout, j *jobInfo, t *Tally) {
	node, err := openHomeNodeDir(l)
	if err != nil {
		if safefs.Refused(err) {
			t.update(func(r *Report) { r.Refused++ })
		}
		t.Problem("home: %v", err)
		return
	}
	if node == nil {
		return
	}
	defer node.Close()
	name := layout.JobDirName(j.key)
	fi, err := safefs.LstatAt(node, name)
	if err != nil {
		if !safefs.IsNotExist(err) {
			t.Problem("home job dir %s: %v", filepath.Join(l.HomeNodeDir(), name), err)
		}
		return
	}
	j.home = filepath.Join(l.HomeNodeDir(), name)
	j.touch(fi.Mtime)
	if fi.IsDir() {
		readHomeJob(node, name, j.home, l, j, t)
	}
}

// BootID is id, else this boot's id (the hooks pass the boot id they read once per run).
func BootID(id string) (string, error) {
	if id != "" {
		return id, nil
	}
	id, err := proc.BootID()
	if err != nil {
		return "", fmt.Errorf("reclaim: %w", err)
	}
	return id, nil
}

// nodeLocalValid is l.ValidateNodeLocal with reclaim's error prefix.
func nodeLocalValid(l layout.Layout) error {
	if err := l.ValidateNodeLocal(); err != nil {
		return fmt.Errorf("reclaim: %w", err)
	}
	return nil
}
