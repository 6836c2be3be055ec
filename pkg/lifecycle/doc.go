// Package lifecycle runs one job's Firefox sessions on one node: three types, each the owner of
// one span of a session's life, told here in the order of the Step constants a Failpoint is
// called at.
//
// Supervisor is `ffl-launch run`, the process Slurm signals. Its Run has three parts: setup
// (subreaper and reaper, the reclaim of an earlier dead run of the job, the Manager, the
// supervisor record, the control API, the Jupyter proxy port, the initial sessions, the wrapped
// command) returns the undo of all of it; loop waits for a reason to stop (a signal, the wrapped
// command's end, the last session's end, a failed start) and the exit status that goes with it;
// stop is the one stop path, the grace path after a signal.
//
// Manager holds the job's ports and sessions: Start picks and binds a port (front.Listen, never
// a probe followed by a bind), reserves it and hands it to a new Session (startOne); StopAll is
// the grace path for all of them at once; Close removes the job's home subtree.
//
// Session is one xpra server with Firefox in it, behind one port. Its start walks the steps:
//
//   - StepDirsCreated: the node-local session dir (the record an Epilog looks for, so a
//     launcher killed at any later step is still cleaned up) and its subdirs exist.
//   - StepStateWritten: the state file names the session, the supervisor and (empty) processes.
//   - StepXpraStarted: xpra runs in its own process group, its identity is recorded.
//   - StepWaitingReady: the Probe waits until Firefox's window has painted; the session is then
//     ready and its port relays to xpra.
//
// Its Stop (a user's stop, Firefox closed, or StopAll) walks the rest:
//
//   - StepGrace: TERM went to xpra and then to every process carrying the session's marker or
//     recorded in its state; KILL follows at the cleanup timeout.
//   - StepRemoving: the processes are gone and the session's home dir removed; the node-local
//     one (the Epilog's record) goes now, and then the port is released.
//
// What a session knows of its Manager is its settings (fixed once NewManager returns) and four
// calls: its address, the release of its port, the news that it ended, and the Manager's wait
// for its watcher.
package lifecycle
