package lifecycle

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// lockSession is a Session of a manager with just what the profile lock reads.
func lockSession(t *testing.T, state string, port int, jobLive JobLive) *Session {
	return lockSessionOf(t, state, port, jobLive, os.Getuid())
}

func lockSessionOf(t *testing.T, state string, port int, jobLive JobLive, uid int) *Session {
	t.Helper()
	self, err := proc.Lookup(os.Getpid())
	testutil.Must(t, err, "self")
	l := layout.Layout{StateDir: state, RuntimeDir: "/run/ffl", TempDir: "/tmp", UID: uid, Node: "n1", JobKey: "7"}
	m := &Manager{s: Settings{JobIdentity: JobIdentity{Layout: l, BootID: "boot-now", Self: self}, Deps: Deps{JobLive: jobLive, Log: logrus.NewEntry(logrus.New())}}}
	return &Session{m: m, st: &m.s, port: port, marker: l.Marker(port), log: m.s.Log}
}

// deadIdentity is the identity of a process that has exited.
func deadIdentity(t *testing.T) proc.Identity {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "60")
	testutil.Must(t, cmd.Start(), "start")
	id, err := proc.Lookup(cmd.Process.Pid)
	testutil.Must(t, err, "lookup")
	testutil.Must(t, cmd.Process.Kill(), "kill")
	_ = cmd.Wait()
	return id
}

func writeHolder(t *testing.T, state string, h ProfileHolder) string {
	t.Helper()
	b, err := json.Marshal(h)
	testutil.Must(t, err, "marshal")
	b = append(b, '\n')
	testutil.Must(t, os.WriteFile(filepath.Join(state, layout.ProfileLockFile), b, 0o600), "write")
	return string(b)
}

// TestProfileLock: one holder at a time; a record is replaced only when its holder is proven
// gone (another boot of this node; on this node, launcher and session processes gone; on
// another node, the job ended by Slurm's word), never while a process of its session runs or
// when Slurm cannot say; a taken profile's Firefox lock files are removed (never followed).
func TestProfileLock(t *testing.T) {
	ctx := context.Background()
	live := func(context.Context, string) bool { return true }
	ended := func(context.Context, string) bool { return false }

	t.Run("one holder at a time, released on stop", func(t *testing.T) {
		state := t.TempDir()
		a := lockSession(t, state, 8001, live)
		lock, holder, err := a.acquireProfile(ctx)
		if err != nil || lock == nil || holder != nil {
			t.Fatalf("first acquire: %v %v %v", lock, holder, err)
		}
		b := lockSession(t, state, 8002, live)
		lock2, holder2, err := b.acquireProfile(ctx)
		if err != nil || lock2 != nil || holder2 == nil || holder2.Port != 8001 || holder2.Node != "n1" {
			t.Fatalf("second acquire while the first holds it: lock %v holder %+v err %v", lock2, holder2, err)
		}
		testutil.Must(t, lock.release(), "release")
		if _, err := os.Lstat(filepath.Join(state, layout.ProfileLockFile)); !os.IsNotExist(err) {
			t.Fatalf("record left after release: %v", err)
		}
		lock3, _, err := b.acquireProfile(ctx)
		if err != nil || lock3 == nil {
			t.Fatalf("acquire after release: %v %v", lock3, err)
		}
		// A release by a session that no longer holds the record leaves the new holder's.
		testutil.Must(t, lock.release(), "stale release")
		if _, err := os.Lstat(filepath.Join(state, layout.ProfileLockFile)); err != nil {
			t.Fatalf("the new holder's record was removed by the old one: %v", err)
		}
	})

	// Session processes are a user's (the marker scan skips root's by design).
	uid := os.Getuid()
	marked := exec.Command("/bin/sleep", "60")
	if uid == 0 {
		u := testutil.TestUser(t, "ffltest")
		uid = u.UID
		marked.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	}
	marked.Env = []string{layout.MarkerVar + "=6/n1/8009/"}
	testutil.Must(t, marked.Start(), "start a session process")
	t.Cleanup(func() { _ = marked.Process.Kill(); _ = marked.Wait() })
	markedLive := func() bool {
		ids, _ := proc.FindByMarker(uid, layout.MarkerVar, "6/n1/8009/")
		return len(ids) > 0
	}
	if !testutil.Eventually(5*time.Second, markedLive) {
		t.Fatal("the marked process is not found by its marker")
	}
	dead := deadIdentity(t)
	for _, tt := range []struct {
		name    string
		holder  ProfileHolder
		jobLive JobLive
		taken   bool
	}{
		{"this node, another boot", ProfileHolder{Node: "n1", BootID: "boot-before", Job: "5", Marker: "5/n1/8001/", Launcher: dead}, live, true},
		{"this node, launcher and session gone", ProfileHolder{Node: "n1", BootID: "boot-now", Job: "5", Marker: "5/n1/8001/", Launcher: dead}, live, true},
		{"this node, launcher gone, Firefox still running", ProfileHolder{Node: "n1", BootID: "boot-now", Job: "6", Marker: "6/n1/8009/", Launcher: dead}, live, false},
		{"another node, job running", ProfileHolder{Node: "n2", BootID: "x", Job: "5", Marker: "5/n2/8001/", Launcher: dead}, live, false},
		{"another node, job ended", ProfileHolder{Node: "n2", BootID: "x", Job: "5", Marker: "5/n2/8001/", Launcher: dead}, ended, true},
		// A holder in another job's PID namespace (namespace/linux, CLONE_NEWPID), which this
		// one cannot see: its recorded PID here names another process or none, and its
		// session's processes are out of sight, so only Slurm can say.
		{"this node, another job's PID namespace, job running", ProfileHolder{Node: "n1", BootID: "boot-now", Job: "5", Marker: "5/n1/8001/", Launcher: dead, PIDNS: 1}, live, false},
		{"this node, another job's PID namespace, job ended", ProfileHolder{Node: "n1", BootID: "boot-now", Job: "5", Marker: "5/n1/8001/", Launcher: dead, PIDNS: 1}, ended, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			rec := writeHolder(t, state, tt.holder)
			profile := filepath.Join(state, layout.ProfileDir)
			testutil.Must(t, os.Mkdir(profile, 0o700), "profile")
			victim := filepath.Join(state, "victim")
			testutil.Must(t, os.WriteFile(victim, []byte("keep"), 0o600), "victim")
			testutil.Must(t, os.Symlink(victim, filepath.Join(profile, "lock")), "firefox lock")
			s := lockSessionOf(t, state, 8001, tt.jobLive, uid)
			lock, holder, err := s.acquireProfile(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := lock != nil; got != tt.taken {
				t.Fatalf("taken = %v, want %v (holder %+v)", got, tt.taken, holder)
			}
			b, _ := os.ReadFile(filepath.Join(state, layout.ProfileLockFile))
			_, lerr := os.Lstat(filepath.Join(profile, "lock"))
			if tt.taken {
				if string(b) == rec {
					t.Error("the stale record is still there")
				}
				if lerr == nil {
					t.Error("Firefox's lock of the dead holder is still there")
				}
			} else {
				if string(b) != rec {
					t.Errorf("the live holder's record changed: %q", b)
				}
				if lerr != nil {
					t.Error("Firefox's lock of a live holder was removed")
				}
			}
			if v, err := os.ReadFile(victim); err != nil || string(v) != "keep" {
				t.Errorf("the lock symlink's target was touched: %q %v", v, err)
			}
		})
	}

	t.Run("a record being written is not taken", func(t *testing.T) {
		state := t.TempDir()
		testutil.Must(t, os.WriteFile(filepath.Join(state, layout.ProfileLockFile), nil, 0o600), "empty")
		lock, holder, err := lockSession(t, state, 8001, live).acquireProfile(ctx)
		if err != nil || lock != nil || holder == nil {
			t.Fatalf("an empty, fresh record: lock %v holder %v err %v; want a fallback", lock, holder, err)
		}
		old := time.Now().Add(-2 * time.Minute)
		testutil.Must(t, os.Chtimes(filepath.Join(state, layout.ProfileLockFile), old, old), "age")
		lock, _, err = lockSession(t, state, 8001, live).acquireProfile(ctx)
		if err != nil || lock == nil {
			t.Fatalf("an empty record older than a minute: lock %v err %v; want it replaced", lock, err)
		}
	})
}

// TestSqueueJobLive: only Slurm's definite word that the job is over frees another node's
// profile; no squeue, an error or a job key Slurm does not know (local-<pid>) keep it.
func TestSqueueJobLive(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name, script, job string
		want              bool
	}{
		{"running", "echo RUNNING", "12", true},
		{"completing", "echo COMPLETING", "12", true},
		{"completed", "echo COMPLETED", "12", false},
		{"node failed", "echo NODE_FAIL", "12", false},
		{"purged", "exit 0", "12", false},
		{"unknown to Slurm", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1", "12", false},
		{"controller down", "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; exit 1", "12", true},
		{"local job of another node", "echo COMPLETED", "local-99", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testutil.Must(t, os.WriteFile(filepath.Join(dir, "squeue"), []byte("#!/bin/sh\n"+tt.script+"\n"), 0o755), "squeue")
			if got := SqueueJobLive(nil, dir)(ctx, tt.job); got != tt.want {
				t.Errorf("live = %v, want %v", got, tt.want)
			}
		})
	}
	if !SqueueJobLive(nil, t.TempDir())(ctx, "12") {
		t.Error("without squeue a job must count as live")
	}
}
