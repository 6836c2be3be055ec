package runtimedir

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// The seen records close the reboot gap: a reboot wipes /run (and usually /tmp), so nothing on
// the node says any more which users had sessions here, while their home still holds
// sessions/<node>/job-* trees of the jobs the crash ended. <seen_dir>/<node>/<uid> (root's,
// on disk) holds the boot id of the user's last Prolog on this node; the first Prolog of the
// user in a new boot sweeps that user's stale sessions, and the sweep visits every recorded
// user. Written by root only, in a directory only root can write: no user can add or remove
// records.

// maxSeenUsers bounds the records one sweep reads.
const maxSeenUsers = 1 << 16

// openSeenDir opens (creating when missing, as root) <dir>/<node>: root's, writable by
// nobody else.
func openSeenDir(dir, node string) (*os.File, error) {
	if err := layout.ValidComponent(node); err != nil {
		return nil, fmt.Errorf("seen dir: node name: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seen dir %s: %w", dir, err)
	}
	parent, err := safefs.OpenTrusted(dir)
	if err != nil {
		return nil, fmt.Errorf("seen dir %s: %w", dir, err)
	}
	defer parent.Close()
	if err := safefs.CheckOwner(parent, 0, true); err != nil {
		return nil, fmt.Errorf("seen dir %s: %w: it must be root's and writable by root only", dir, err)
	}
	d, err := safefs.MkdirAt(parent, node, 0o700, 0)
	if err != nil {
		return nil, fmt.Errorf("seen dir %s: %w", filepath.Join(dir, node), err)
	}
	return d, nil
}

// RecordSeen notes that uid runs a job on node in boot bootID, and reports whether the user's
// last recorded job here was in another boot (a reboot since: their home may hold stale trees).
func RecordSeen(dir, node string, uid int, bootID string) (rebooted bool, err error) {
	if uid <= 0 {
		return false, fmt.Errorf("seen record for uid %d: refused", uid)
	}
	d, err := openSeenDir(dir, node)
	if err != nil {
		return false, err
	}
	defer d.Close()
	name := strconv.Itoa(uid)
	old, rerr := safefs.ReadFileCapped(d, name, 128)
	if rerr == nil && strings.TrimSpace(string(old)) == bootID {
		return false, nil
	}
	if err := safefs.WriteFileAtomic(d, name, []byte(bootID+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("seen record %s: %w", filepath.Join(d.Name(), name), err)
	}
	return rerr == nil, nil
}

// SeenUIDs lists the users recorded for node (a missing directory is no user).
func SeenUIDs(dir, node string) ([]int, error) {
	if dir == "" {
		return nil, nil
	}
	d, err := safefs.OpenTrusted(filepath.Join(dir, node))
	if err != nil {
		if safefs.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("seen dir %s: %w", filepath.Join(dir, node), err)
	}
	defer d.Close()
	if err := safefs.CheckOwner(d, 0, true); err != nil {
		return nil, fmt.Errorf("seen dir %s: %w: ignored", d.Name(), err)
	}
	names, _, err := safefs.ReadDirNames(d, maxSeenUsers)
	var uids []int
	for _, n := range names {
		uid, perr := strconv.Atoi(n)
		if perr != nil || uid <= 0 || strconv.Itoa(uid) != n {
			continue
		}
		uids = append(uids, uid)
	}
	return uids, err
}
