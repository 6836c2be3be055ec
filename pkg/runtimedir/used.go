package runtimedir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// JobUsed decides, from node-local state alone, whether job l.JobKey may have used ffl
// on this node: a session-* entry or a supervisor record in either runtime job dir. It is the
// Epilog's fast path for the many jobs that never ran ffl, so it costs a few lstat calls and
// one short directory read, and needs neither a user lookup nor the home. Anything unexpected
// (a symlink, a foreign owner, a crowded directory) answers used, with why: the slow path then
// looks closely and logs.
func JobUsed(l layout.Layout) (used bool, why string) {
	if err := l.ValidateNodeLocal(); err != nil {
		return true, "runtimedir: " + err.Error()
	}
	name := layout.JobDirName(l.JobKey)
	check := func(parent *os.File) (bool, string) {
		fi, err := safefs.LstatAt(parent, name)
		if safefs.IsNotExist(err) {
			return false, ""
		}
		path := filepath.Join(parent.Name(), name)
		if err != nil {
			return true, fmt.Sprintf("%s: %v", path, err)
		}
		if !fi.IsDir() || fi.UID != l.UID {
			return true, fmt.Sprintf("%s: not a directory of uid %d", path, l.UID)
		}
		d, err := safefs.OpenDirAtOwned(parent, name, l.UID)
		if err != nil {
			return true, fmt.Sprintf("%s: %v", path, err)
		}
		defer d.Close()
		names, more, err := safefs.ReadDirNames(d, 64)
		if err != nil || more {
			return true, fmt.Sprintf("%s: crowded or unreadable", path)
		}
		for _, n := range names {
			if n == layout.SupervisorFile || strings.HasPrefix(n, "session-") {
				return true, fmt.Sprintf("%s holds %s", path, n)
			}
		}
		return false, ""
	}
	if rt, err := safefs.OpenTrusted(l.RuntimeDir); err == nil {
		used, why := check(rt)
		rt.Close()
		if used {
			return true, why
		}
	} else if !safefs.IsNotExist(err) {
		return true, fmt.Sprintf("runtime dir %s: %v", l.RuntimeDir, err)
	}
	tmp, err := safefs.OpenTrusted(l.TempDir)
	if err != nil {
		if safefs.IsNotExist(err) {
			return false, ""
		}
		return true, fmt.Sprintf("temp dir %s: %v", l.TempDir, err)
	}
	defer tmp.Close()
	userName := layout.UserTempName(l.UID)
	fi, err := safefs.LstatAt(tmp, userName)
	if safefs.IsNotExist(err) {
		return false, ""
	}
	if err == nil && (!fi.IsDir() || fi.UID != l.UID) {
		// Squatted (another user's doing, or the user's own symlink): the user's launchers then
		// made private parents ffl-<uid>.<hex>; the job used ffl only if one of them holds its
		// session or record. A squat alone keeps the fast path.
		names, lerr := PrivateParents(tmp, l.UID, time.Now().Add(ListTimeout))
		if lerr != nil {
			return true, fmt.Sprintf("%s is squatted and the private parents were not all read: %v", filepath.Join(l.TempDir, userName), lerr)
		}
		for _, n := range names {
			pd, err := safefs.OpenDirAtOwned(tmp, n, l.UID)
			if err != nil {
				if safefs.IsNotExist(err) {
					continue
				}
				return true, fmt.Sprintf("%s: %v", filepath.Join(l.TempDir, n), err)
			}
			used, why := check(pd)
			pd.Close()
			if used {
				return true, why
			}
		}
		return false, ""
	}
	if err != nil {
		return true, fmt.Sprintf("%s: %v", filepath.Join(l.TempDir, userName), err)
	}
	ud, err := safefs.OpenDirAtOwned(tmp, userName, l.UID)
	if err != nil {
		return true, fmt.Sprintf("%s: %v", filepath.Join(l.TempDir, userName), err)
	}
	defer ud.Close()
	return check(ud)
}
