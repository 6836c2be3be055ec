package proc

import "fmt"

// Identity is a process as ffl records it. A PID alone proves nothing (PIDs are reused, and a
// user can write any number into a state file); PID + start time (field 22 of /proc/PID/stat,
// clock ticks after boot) + real uid names one process for the lifetime of one boot. Records
// also carry the boot id (BootID) so identities from before a reboot are never trusted.
type Identity struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	UID       int    `json:"uid"`
}

// String formats the identity for logs: "pid 123 (start 456, uid 1000)".
func (id Identity) String() string {
	return fmt.Sprintf("pid %d (start %d, uid %d)", id.PID, id.StartTime, id.UID)
}
