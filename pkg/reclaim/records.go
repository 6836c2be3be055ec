package reclaim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/runtimedir"
	"github.com/ffl-hpc/ffl/pkg/safefs"
	"github.com/ffl-hpc/ffl/pkg/xdisplay"
)

// Bounds on what one scan reads from directories a user fills.
const (
	// maxJobEntries bounds the names read from one job dir (sessions are at most max_sessions).
	maxJobEntries = 4096
)

// sessionInfo is one session of a job as found on disk.
type sessionInfo struct {
	port       int
	runtimeDir string        // node-local session dir, "" if none
	homeDir    string        // home session dir, "" if none
	state      *layout.State // parsed and consistent with (node, job, uid, port); nil otherwise
	activity   time.Time
}

// jobInfo is everything found on disk about one job of one user on this node.
type jobInfo struct {
	key      string
	runtime  []string            // existing node-local job dirs, preferred first
	home     string              // the home job dir ("" if none)
	sups     []layout.Supervisor // supervisor records consistent with (node, job)
	sessions map[int]*sessionInfo
	activity time.Time // newest mtime of its dirs and records
	reason   string    // why it is stale (or live), for the human lines
	entries  int       // names found in its node-local job dirs
	// removable is true when this process may remove one of its node-local job dirs itself
	// (root, or the fallback dir under the user's own <temp>/ffl-<uid>).
	removable bool
}

func newJobInfo(key string) *jobInfo {
	return &jobInfo{key: key, sessions: map[int]*sessionInfo{}}
}

func (j *jobInfo) session(port int) *sessionInfo {
	s := j.sessions[port]
	if s == nil {
		s = &sessionInfo{port: port}
		j.sessions[port] = s
	}
	return s
}

func (j *jobInfo) touch(t time.Time) {
	if t.After(j.activity) {
		j.activity = t
	}
}

// ports returns the job's session ports in order.
func (j *jobInfo) ports() []int {
	ports := make([]int, 0, len(j.sessions))
	for p := range j.sessions {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	return ports
}

// states returns the job's consistent state records whose boot id is bootID.
func (j *jobInfo) states(bootID string) []*layout.State {
	var out []*layout.State
	for _, p := range j.ports() {
		if st := j.sessions[p].state; st != nil && st.BootID == bootID {
			out = append(out, st)
		}
	}
	return out
}

// displays returns the X displays recorded for this boot, deduplicated.
func (j *jobInfo) displays(bootID string) []int {
	seen := map[int]bool{}
	var out []int
	for _, st := range j.states(bootID) {
		if n, err := xdisplay.Parse(st.Display); err == nil && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// recorded returns the process identities of the job's records from this boot, with the uid
// forced to the job's uid: a record naming another uid is counted as refused, never acted on.
// A record made in another PID namespace (State.PIDNS: the job's own, under Slurm's
// namespace/linux with CLONE_NEWPID) is returned under this process's PID for it (proc.Resolve,
// PID + start time + uid in that namespace), or not at all when it is gone or out of sight:
// its number alone names some other process here.
func (j *jobInfo) recorded(ctx context.Context, bootID string, uid int, t *Tally) []proc.Identity {
	var out []proc.Identity
	for _, st := range j.states(bootID) {
		var ids []proc.Identity
		for _, id := range st.Processes {
			if id.UID != uid {
				t.Problem("job %s session %d: state file names %s, not of the job's uid %d: refused", j.key, st.Port, id, uid)
				t.update(func(r *Report) { r.Refused++ })
				continue
			}
			ids = append(ids, id)
		}
		got, res, _ := proc.ResolveAll(ctx, ids, st.PIDNS)
		for i, id := range ids {
			switch res[i] {
			case proc.NSSame, proc.NSFound:
				out = append(out, got[i])
			default:
				t.log.WithField("session", st.Port).Debugf("job %s: recorded %s of PID namespace %d: %v", j.key, id, st.PIDNS, res[i])
			}
		}
	}
	return out
}

// nodeLocalParents opens the directories that hold this user's node-local job dirs: the
// runtime root (root's), <temp>/ffl-<uid> (the user's) and, when that one is squatted (a
// foreign or symlinked ffl-<uid>, reported), the user's private parents ffl-<uid>.<hex>
// (runtimedir). With allPrivate (the sweep and the stale scan) private parents are looked for
// even without a squat: the squatter may have removed its plant since. A missing one is skipped.
func nodeLocalParents(l layout.Layout, allPrivate bool, t *Tally) []*os.File {
	var out []*os.File
	if f, err := safefs.OpenTrusted(l.RuntimeDir); err == nil {
		out = append(out, f)
	} else if !safefs.IsNotExist(err) {
		t.Problem("runtime dir %s: %v", l.RuntimeDir, err)
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		if !safefs.IsNotExist(err) {
			t.Problem("temp dir %s: %v", l.TempDir, err)
		}
		return out
	}
	defer tmp.Close()
	name := layout.UserTempName(l.UID)
	f, err := safefs.OpenDirAtOwned(tmp, name, l.UID)
	switch {
	case err == nil:
		out = append(out, f)
	case safefs.IsNotExist(err):
	case safefs.Refused(err) && runtimedir.Squatted(tmp, l.UID):
		// Another user's squat (or the user's own symlink): a user's doing, counted in one
		// line at the end, not ffl's error. The sweep counts every such entry of temp_dir once
		// (owners), so with allPrivate it is not counted again here.
		if !allPrivate {
			fi, _ := safefs.LstatAt(tmp, name)
			t.Foreign(filepath.Join(l.TempDir, name), fi.UID)
		}
	default:
		if safefs.Refused(err) {
			t.update(func(r *Report) { r.Refused++ })
		}
		t.Problem("%s: %v: not used", filepath.Join(l.TempDir, name), err)
	}
	if !allPrivate && (err == nil || !runtimedir.Squatted(tmp, l.UID)) {
		return out
	}
	// Squatted (or a sweep, which looks everywhere): the user's launchers may have made
	// private parents; only now is temp_dir listed.
	names, lerr := runtimedir.PrivateParents(tmp, l.UID, time.Now().Add(runtimedir.ListTimeout))
	if lerr != nil {
		t.Problem("looking for private parents of uid %d: %v", l.UID, lerr)
	}
	for _, n := range names {
		if f, err := safefs.OpenDirAtOwned(tmp, n, l.UID); err == nil {
			out = append(out, f)
		} else if !safefs.IsNotExist(err) {
			t.Problem("%s: %v: not used", filepath.Join(l.TempDir, n), err)
		}
	}
	return out
}

// readNodeLocalJob reads one node-local job dir (open as dir, at path) into j: its supervisor
// record and its sessions' state files. Every record is checked against (node, job, uid, port);
// anything else is a problem and ignored.
func readNodeLocalJob(dir *os.File, path string, l layout.Layout, j *jobInfo, t *Tally) {
	j.runtime = append(j.runtime, path)
	if fi, err := safefs.Fstat(dir); err == nil {
		j.touch(fi.Mtime)
	}
	names, more, err := safefs.ReadDirNames(dir, maxJobEntries)
	if err != nil {
		t.Problem("%v", err)
	}
	if more {
		t.Problem("%s: more than %d entries; only the first were read", path, maxJobEntries)
	}
	j.entries += len(names)
	for _, name := range names {
		if name == layout.SupervisorFile {
			readSupervisor(dir, path, l, j, t)
			continue
		}
		port, err := layout.ParseSessionDirName(name)
		if err != nil {
			continue // control.sock, temp files: nothing to read
		}
		s := j.session(port)
		s.runtimeDir = filepath.Join(path, name)
		sd, err := safefs.OpenDirAtOwned(dir, name, l.UID)
		if err != nil {
			if safefs.Refused(err) {
				t.update(func(r *Report) { r.Refused++ })
			}
			t.Problem("session dir %s: %v: its state is not read", s.runtimeDir, err)
			continue
		}
		if fi, err := safefs.Fstat(sd); err == nil {
			j.touch(fi.Mtime)
			if fi.Mtime.After(s.activity) {
				s.activity = fi.Mtime
			}
		}
		data, err := safefs.ReadFileCapped(sd, layout.StateFile, layout.MaxStateSize)
		if fi, serr := safefs.LstatAt(sd, layout.StateFile); serr == nil {
			j.touch(fi.Mtime)
		}
		sd.Close()
		if err != nil {
			if !safefs.IsNotExist(err) { // a session being created has no state file yet
				t.Problem("state file %s/%s: %v", s.runtimeDir, layout.StateFile, err)
			}
			continue
		}
		st, err := layout.ParseState(data)
		if err != nil {
			t.Problem("state file %s/%s: %v", s.runtimeDir, layout.StateFile, err)
			continue
		}
		if err := consistent(st, l, j.key, port); err != nil {
			t.Problem("state file %s/%s: %v: ignored", s.runtimeDir, layout.StateFile, err)
			continue
		}
		s.state = &st
	}
}

func readSupervisor(dir *os.File, path string, l layout.Layout, j *jobInfo, t *Tally) {
	p := filepath.Join(path, layout.SupervisorFile)
	if fi, err := safefs.LstatAt(dir, layout.SupervisorFile); err == nil {
		j.touch(fi.Mtime)
	}
	sup, err := runtimedir.ReadSupervisor(dir)
	if err != nil {
		if !safefs.IsNotExist(err) {
			t.Problem("supervisor record %s: %v", p, err)
		}
		return
	}
	if sup.Node != l.Node || sup.Job != j.key {
		t.Problem("supervisor record %s: names job %q on node %q: ignored", p, sup.Job, sup.Node)
		return
	}
	j.sups = append(j.sups, sup)
}

// readJobNodeLocal reads the node-local dirs of job l.JobKey (both candidates).
func readJobNodeLocal(l layout.Layout, j *jobInfo, t *Tally) {
	parents := nodeLocalParents(l, false, t)
	defer closeAll(parents)
	name := layout.JobDirName(j.key)
	for _, p := range parents {
		path := filepath.Join(p.Name(), name)
		d, err := safefs.OpenDirAtOwned(p, name, l.UID)
		if err != nil {
			if !safefs.IsNotExist(err) {
				if safefs.Refused(err) {
					t.update(func(r *Report) { r.Refused++ })
				}
				t.Problem("job dir %s: %v: its records are not read", path, err)
			}
			continue
		}
		readNodeLocalJob(d, path, l, j, t)
		d.Close()
	}
}

// jobDirs is runtimedir.JobDirs of dir with its problems reported (path names dir).
func jobDirs(dir *os.File, path string, t *Tally) []runtimedir.JobDir {
	dirs, more, err := runtimedir.JobDirs(dir)
	if err != nil {
		t.Problem("%v", err)
	}
	if more {
		t.Problem("%s: more than %d entries; only the first were read", path, runtimedir.MaxJobs)
	}
	return dirs
}

// scanNodeLocal finds every node-local job dir of user l.UID (both parents) and reads them.
func scanNodeLocal(l layout.Layout, jobs map[string]*jobInfo, t *Tally) {
	parents := nodeLocalParents(l, true, t)
	defer closeAll(parents)
	for _, p := range parents {
		for _, jd := range jobDirs(p, p.Name(), t) {
			name, key := jd.Name, jd.Key
			if !jd.Info.IsDir() || jd.Info.UID != l.UID {
				continue // another user's job (the runtime root is shared), or not a dir
			}
			d, err := safefs.OpenDirAtOwned(p, name, l.UID)
			if err != nil {
				if !safefs.IsNotExist(err) {
					t.Problem("job dir %s: %v", filepath.Join(p.Name(), name), err)
				}
				continue
			}
			j := jobs[key]
			if j == nil {
				j = newJobInfo(key)
				jobs[key] = j
			}
			if mayRemoveIn(p) {
				j.removable = true
			}
			readNodeLocalJob(d, filepath.Join(p.Name(), name), l, j, t)
			d.Close()
		}
	}
}

// openHomeNodeDir opens <state>/sessions/<node>, checking that every level is the user's and
// no symlink below an admin-controlled prefix is followed. A missing level returns nil, nil.
func openHomeNodeDir(l layout.Layout) (*os.File, error) {
	state, err := safefs.OpenTrustedOwned(l.StateDir, l.UID)
	if err != nil {
		if safefs.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("state dir %s: %w", l.StateDir, err)
	}
	defer state.Close()
	sessions, err := safefs.OpenDirAtOwned(state, layout.SessionsDir, l.UID)
	if err != nil {
		if safefs.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", filepath.Join(l.StateDir, layout.SessionsDir), err)
	}
	defer sessions.Close()
	node, err := safefs.OpenDirAtOwned(sessions, l.Node, l.UID)
	if err != nil {
		if safefs.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", l.HomeNodeDir(), err)
	}
	return node, nil
}

// scanHome finds the user's home job dirs for this node and their sessions.
func scanHome(l layout.Layout, jobs map[string]*jobInfo, t *Tally) {
	node, err := openHomeNodeDir(l)
	if err != nil {
		if safefs.Refused(err) {
			t.update(func(r *Report) { r.Refused++ })
		}
		t.Problem("home: %v: not looked at", err)
		return
	}
	if node == nil {
		return
	}
	defer node.Close()
	for _, jd := range jobDirs(node, l.HomeNodeDir(), t) {
		name, key, fi := jd.Name, jd.Key, jd.Info
		j := jobs[key]
		if j == nil {
			j = newJobInfo(key)
			jobs[key] = j
		}
		path := filepath.Join(l.HomeNodeDir(), name)
		j.home = path
		j.touch(fi.Mtime)
		if !fi.IsDir() {
			continue // a symlink or file in its place: removed as it is, never followed
		}
		readHomeJob(node, name, path, l, j, t)
	}
}

// readHomeJob lists the sessions of one home job dir.
func readHomeJob(node *os.File, name, path string, l layout.Layout, j *jobInfo, t *Tally) {
	d, err := safefs.OpenDirAtOwned(node, name, l.UID)
	if err != nil {
		if !safefs.IsNotExist(err) {
			t.Problem("home job dir %s: %v", path, err)
		}
		return
	}
	defer d.Close()
	names, _, err := safefs.ReadDirNames(d, maxJobEntries)
	if err != nil {
		t.Problem("%v", err)
	}
	for _, n := range names {
		port, err := layout.ParseSessionDirName(n)
		if err != nil {
			continue
		}
		s := j.session(port)
		s.homeDir = filepath.Join(path, n)
		if fi, err := safefs.LstatAt(d, n); err == nil {
			if fi.IsSymlink() {
				t.Problem("home session dir %s is a symlink: only the link is removed, nothing is followed", s.homeDir)
			}
			j.touch(fi.Mtime)
			if fi.Mtime.After(s.activity) {
				s.activity = fi.Mtime
			}
		}
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
