package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// SetChildSubreaper marks the calling process as a child subreaper (prctl
// PR_SET_CHILD_SUBREAPER). Processes of the session that daemonize or lose their parent (Xvfb
// after xpra is killed, Firefox's crashhelper, which always double-forks) then reparent to the
// launcher instead of PID 1, so it can still find, end and reap them. Unprivileged processes may
// set it. The caller must then reap such orphans: see Reaper.
func SetChildSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// DefaultReapInterval is how often Run reaps even without SIGCHLD: a backstop, since signals
// coalesce and a notification can be consumed by a pass that ran just before the exit.
const DefaultReapInterval = 2 * time.Second

// Reaper reaps zombie children that nobody else waits for: orphans adopted as child subreaper.
//
// It never calls wait4(-1), which would steal the exit status of children that os/exec owns
// (exec.Cmd.Wait would then fail with ECHILD; canonical/pebble#101 describes that race). Instead
// each pass scans /proc for zombies whose parent is this process and waits for those PIDs only,
// skipping the "owned" ones: PIDs started with os/exec whose Wait belongs to someone else.
//
// Every child this process starts while a Reaper runs must be owned before it can exit, or the
// Reaper may reap it first. Reaper.Start does that without a window (it holds the lock the reap
// pass takes across cmd.Start and the registration); Reaper.Wait disowns after cmd.Wait. Own and
// Disown are for children started some other way; call Own before the child can exit.
type Reaper struct {
	// Interval is how often Run reaps without a SIGCHLD; zero means DefaultReapInterval.
	// Set it before Run.
	Interval time.Duration

	fs   FS
	self int

	mu    sync.Mutex
	owned map[int]struct{}
}

// NewReaper returns a Reaper for the calling process.
func NewReaper() *Reaper {
	return &Reaper{fs: FS{}, self: os.Getpid(), owned: map[int]struct{}{}}
}

// Own marks pid as a child whose exit status belongs to someone else (an exec.Cmd): never reap it.
func (r *Reaper) Own(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned[pid] = struct{}{}
}

// Disown forgets pid. Call it only after the owner has reaped the child (cmd.Wait returned),
// never before, or the Reaper may take its exit status.
func (r *Reaper) Disown(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.owned, pid)
}

// Start starts cmd and owns its PID atomically with respect to reap passes, so even a child that
// exits at once is left to cmd.Wait.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.owned[cmd.Process.Pid] = struct{}{}
	return nil
}

// Wait waits for a command started with Start and then disowns its PID.
func (r *Reaper) Wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	r.Disown(cmd.Process.Pid)
	return err
}

// ReapOnce reaps, now, every zombie child of this process that is not owned, and returns how
// many it reaped. It never blocks on a live child (WNOHANG).
func (r *Reaper) ReapOnce() int {
	var zombies []int
	// The scan runs without the lock; Start holds it across fork, so a child seen here as a
	// zombie before its owner registered it is found owned below.
	_ = r.fs.newScanner().walk(false, func(_ pidDir, st Stat, _ int) {
		if st.PPID == r.self && st.State == 'Z' {
			zombies = append(zombies, st.PID)
		}
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, pid := range zombies {
		if _, ok := r.owned[pid]; ok {
			continue
		}
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err == nil && got == pid {
				n++
			}
			break // ECHILD: reaped by someone else meanwhile; 0: not a zombie after all
		}
	}
	return n
}

// Run reaps on every SIGCHLD and every Interval until ctx is done. Run it in one goroutine per
// process; SIGCHLD notification does not disturb os/exec.
func (r *Reaper) Run(ctx context.Context) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
	defer signal.Stop(sigs)
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultReapInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	r.ReapOnce() // orphans that died before Run started
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-tick.C:
		}
		r.ReapOnce()
	}
}
