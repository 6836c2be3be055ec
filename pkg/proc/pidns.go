package proc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// PID namespaces. Slurm's namespace/linux with clone_ns_flags CLONE_NEWPID (Slurm 25.11+) runs
// every job in a PID namespace of its own, with its own /proc. ffl-launch then records the PIDs
// of its namespace (its own, its xpra's), while the Prolog and Epilog, run by slurmd in the
// node's namespace, see the same processes under other PIDs; a job's launcher, in its own
// namespace, does not see another job's processes at all. Start times (field 22 of stat, clock
// ticks after boot) are the same in every PID namespace. So a record carries the PID namespace
// it was made in (the inode of /proc/self/ns/pid), and a reader in another namespace finds the
// process through the NSpid line of /proc/PID/status, whose last number is the PID in the
// process's own namespace, never through the PID alone.

// NSResult is what Resolve found for an identity recorded in another PID namespace.
type NSResult int

const (
	// NSSame: the record was made in the reader's own PID namespace (or says none): its PID is
	// the reader's.
	NSSame NSResult = iota
	// NSFound: a process of the record's namespace has the recorded PID, start time and uid;
	// Resolve returned it under the reader's PID.
	NSFound
	// NSGone: the reader sees processes of the record's namespace, none of them the recorded
	// one: it has exited.
	NSGone
	// NSHidden: the reader sees no process of the record's namespace: the namespace has ended,
	// or it is not below the reader's (a sibling job's), or its processes are not the reader's
	// to inspect. Nothing can be said about the recorded process.
	NSHidden
)

func (r NSResult) String() string {
	switch r {
	case NSSame:
		return "same PID namespace"
	case NSFound:
		return "found in its PID namespace"
	case NSGone:
		return "gone from its PID namespace"
	case NSHidden:
		return "PID namespace not visible"
	}
	return "NSResult(" + strconv.Itoa(int(r)) + ")"
}

// maxNSLink caps a namespace link's text ("pid:[4026531836]").
const maxNSLink = 64

// parseNSLink reads the inode out of a namespace link's text: "pid:[4026531836]".
func parseNSLink(link string) (uint64, error) {
	rest, ok := bytes.CutPrefix([]byte(link), []byte("pid:["))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != ']' {
		return 0, fmt.Errorf("pid namespace link %q: want pid:[INODE]", link)
	}
	n, err := strconv.ParseUint(string(rest[:len(rest)-1]), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("pid namespace link %q: want pid:[INODE]", link)
	}
	return n, nil
}

// SelfPIDNamespace returns the inode of the caller's PID namespace (/proc/self/ns/pid).
func (fs FS) SelfPIDNamespace() (uint64, error) {
	p := filepath.Join(fs.root(), "self", "ns", "pid")
	link, err := os.Readlink(p)
	if err != nil {
		return 0, fmt.Errorf("own pid namespace: %w", err)
	}
	return parseNSLink(link)
}

// SelfPIDNamespace reads /proc; see FS.SelfPIDNamespace.
func SelfPIDNamespace() (uint64, error) { return FS{}.SelfPIDNamespace() }

// PIDNamespaceOf returns the inode of process pid's PID namespace (reading another user's
// needs ptrace access, as root has).
func (fs FS) PIDNamespaceOf(pid int) (uint64, error) {
	d, err := fs.openPID(pid)
	if err != nil {
		return 0, err
	}
	defer d.close()
	return d.pidNS()
}

// PIDNamespaceOf reads /proc; see FS.PIDNamespaceOf.
func PIDNamespaceOf(pid int) (uint64, error) { return FS{}.PIDNamespaceOf(pid) }

// pidNS reads the PID namespace inode of an open /proc/PID directory. Reading another user's
// namespace links needs ptrace access: such a process is not the reader's to inspect.
func (d pidDir) pidNS() (uint64, error) {
	buf := make([]byte, maxNSLink)
	n, err := unix.Readlinkat(d.fd, "ns/pid", buf)
	if err != nil {
		return 0, goneOr(d.pid, "readlink ns/pid", err)
	}
	return parseNSLink(string(buf[:n]))
}

// nsPID reads the last number of the NSpid line of an open /proc/PID directory's status: the
// process's PID in its own (innermost) PID namespace. A status without the line (Linux before
// 4.1) gives the PID itself.
func (d pidDir) nsPID(buf []byte) (int, error) {
	data, _, err := d.read("status", buf)
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("NSpid:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("pid %d: empty NSpid line", d.pid)
		}
		return parseDecimal(f[len(f)-1])
	}
	return d.pid, nil
}

// Resolve finds the process an identity names when the record was made in PID namespace ns
// (0: the record says none, an older ffl's, read as the reader's own). For ns the reader's own
// namespace it returns id unchanged and NSSame. Otherwise it walks the reader's /proc for the
// processes of uid id.UID in namespace ns and returns the one whose PID there, start time and
// uid are id's, under the reader's PID (NSFound), or NSGone when the namespace has processes of
// that uid but not this one, or NSHidden when the reader sees none of them. Only a process that
// matches PID, start time and uid is ever returned: a process of the reader's namespace that
// merely has the recorded number is never taken for it.
func (fs FS) Resolve(ctx context.Context, id Identity, ns uint64) (Identity, NSResult, error) {
	got, res, err := fs.ResolveAll(ctx, []Identity{id}, ns)
	if len(got) == 0 {
		return Identity{}, NSHidden, err
	}
	return got[0], res[0], err
}

// ResolveAll is Resolve for several identities of one namespace in one walk of /proc (a
// session's recorded processes): got[i] and res[i] are Resolve's answers for ids[i].
func (fs FS) ResolveAll(ctx context.Context, ids []Identity, ns uint64) (got []Identity, res []NSResult, err error) {
	got, res = make([]Identity, len(ids)), make([]NSResult, len(ids))
	if ns == 0 {
		copy(got, ids)
		return got, res, nil // NSSame
	}
	self, err := fs.SelfPIDNamespace()
	if err != nil {
		for i := range res {
			res[i] = NSHidden
		}
		return got, res, err
	}
	if self == ns {
		copy(got, ids)
		return got, res, nil
	}
	visible := map[int]bool{} // uids with a process in ns
	s := fs.newScanner()
	err = s.walkCtx(ctx, true, nil, func(d pidDir, st Stat, uid int) {
		want := false
		for _, id := range ids {
			if id.UID == uid {
				want = true
				break
			}
		}
		if !want {
			return
		}
		if n, err := d.pidNS(); err != nil || n != ns {
			return
		}
		visible[uid] = true
		if st.Zombie() {
			return
		}
		nsPID := -1
		for i, id := range ids {
			if id.UID != uid || id.StartTime != st.StartTime || res[i] == NSFound {
				continue
			}
			if nsPID < 0 {
				p, err := d.nsPID(s.statusBuf)
				if err != nil {
					return
				}
				nsPID = p
			}
			if nsPID == id.PID {
				got[i], res[i] = Identity{PID: st.PID, StartTime: st.StartTime, UID: uid}, NSFound
			}
		}
	})
	for i, id := range ids {
		switch {
		case res[i] == NSFound:
		case visible[id.UID]:
			res[i] = NSGone
		default:
			res[i] = NSHidden
		}
	}
	return got, res, err
}

// ResolveAll reads /proc; see FS.ResolveAll.
func ResolveAll(ctx context.Context, ids []Identity, ns uint64) ([]Identity, []NSResult, error) {
	return FS{}.ResolveAll(ctx, ids, ns)
}

// Resolve reads /proc; see FS.Resolve.
func Resolve(ctx context.Context, id Identity, ns uint64) (Identity, NSResult, error) {
	return FS{}.Resolve(ctx, id, ns)
}

// AliveIn says whether the process id names, recorded in PID namespace ns (0: the reader's
// own), is alive (Resolve: in another namespace only through it, never by the number alone);
// hidden says that the reader sees no process of that namespace at all, so that nothing can be
// said of the process (NSHidden): its job's own cleanup is the one to decide.
func AliveIn(ctx context.Context, id Identity, ns uint64) (alive, hidden bool) {
	_, res, _ := Resolve(ctx, id, ns)
	switch res {
	case NSSame:
		return id.PID > 0 && id.Alive(), false
	case NSFound:
		return true, false
	case NSGone:
		return false, false
	}
	return false, true
}
