package hook

import (
	"os"
	"sync"
	"time"
)

// WatchdogMargin is how long after its timeout a hook run is ended whatever it is doing: well
// under the 1 s the hooks promise, and after the steps' own deadlines plus the kill waits of
// their children (reexec.KillWait), so it fires only when something in this process is stuck.
const WatchdogMargin = 400 * time.Millisecond

// Run tracks one hook run for its summary line: the step it is in (Phase) and whether the
// summary was written. Its watchdog, armed with Arm, writes the summary itself, naming what did
// not finish, and exits 0 if the run has not exited by its timeout plus WatchdogMargin.
type Run struct {
	mu         sync.Mutex
	phase      string
	summarized bool
}

// Phase records the step the run is in now (reclaim's Phase* names).
func (r *Run) Phase(name string) {
	r.mu.Lock()
	r.phase = name
	r.mu.Unlock()
}

// Claim is called by whoever writes the summary line, exactly once per run: it returns false
// when the other side (the run, or its watchdog) already did. The run claims after its last step.
func (r *Run) Claim() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.summarized {
		return false
	}
	r.summarized = true
	return true
}

// Arm starts the watchdog: at after (the run's timeout plus WatchdogMargin) it calls summary
// with the step in progress, if the run has not claimed the summary yet, gives the log sinks
// FlushTimeout, and exits the process with status 0: a hook past PrologEpilogTimeout drains the
// node, whatever it was waiting for. (If the run claimed but is stuck writing, it exits too.)
// A run that ends by itself waits for its sinks (log's Close) until then at most. Arm and Close
// are called from the same goroutine.
func (r *Run) Arm(after time.Duration, log *Logger, summary func(unfinished string)) {
	log.bound = time.Now().Add(after)
	time.AfterFunc(after, func() {
		if r.Claim() {
			r.mu.Lock()
			phase := r.phase
			r.mu.Unlock()
			summary(phase)
		}
		log.Flush(time.Now().Add(FlushTimeout))
		os.Exit(0)
	})
}
