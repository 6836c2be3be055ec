// Package proc knows processes the way ffl needs to: as identities that survive PID reuse, found
// by walking /proc, and signalled only after proving they are still the process we recorded.
//
// ffl-epilog runs as root on every node and acts on PIDs read from files a user can write, so a
// bare PID is never trusted: an Identity is PID + start time (field 22 of /proc/PID/stat) + real
// uid, and Signal re-checks all three through a pidfd before it sends anything (see Signal for why
// that closes the check-then-kill race). Readers of /proc open the /proc/PID directory once and
// read stat, status and environ relative to it, so the three files describe one process even if
// the PID is recycled while we read.
//
// The launcher side adds a child subreaper (SetChildSubreaper) and a Reaper that reaps orphans
// adopted that way without stealing exec.Cmd.Wait, and End, the TERM-grace-KILL escalation every
// cleanup path shares.
package proc
