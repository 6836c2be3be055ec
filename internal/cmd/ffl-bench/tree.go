package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/layout"
)

// planter creates directories and files as root, owned by the bench user, the way the launcher
// leaves them (0700 dirs, 0600 files), optionally with an old mtime (for the sweep). It works
// with descriptors, so that building 20,000 session trees takes seconds.
type planter struct {
	uid, gid int
	mtime    time.Time // zero: leave the current time
}

const dirOpen = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// mkdirAt creates (or reuses) name below dfd and returns it open.
func (p planter) mkdirAt(dfd int, name string) (int, error) {
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("mkdir %s: %w", name, err)
	}
	fd, err := unix.Openat(dfd, name, dirOpen, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", name, err)
	}
	if err := unix.Fchown(fd, p.uid, p.gid); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("chown %s: %w", name, err)
	}
	return fd, nil
}

// fileAt writes name below dfd.
func (p planter) fileAt(dfd int, name string, data []byte) error {
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	defer unix.Close(fd)
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		data = data[n:]
	}
	if err := unix.Fchown(fd, p.uid, p.gid); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	return p.touch(fd)
}

// touch sets the planter's mtime (and atime) on an open file or directory; call it on a
// directory after its content is complete (adding entries changes a directory's mtime).
func (p planter) touch(fd int) error {
	if p.mtime.IsZero() {
		return nil
	}
	tv := unix.NsecToTimeval(p.mtime.UnixNano())
	return unix.Futimes(fd, []unix.Timeval{tv, tv})
}

// chain opens base (an existing directory) and creates each of names below it, returning the
// last one open.
func (p planter) chain(base string, names ...string) (int, error) {
	fd, err := unix.Open(base, dirOpen, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", base, err)
	}
	for _, n := range names {
		next, err := p.mkdirAt(fd, n)
		unix.Close(fd)
		if err != nil {
			return -1, fmt.Errorf("%s: %w", base, err)
		}
		fd = next
	}
	return fd, nil
}

// Contents of a session's files, sized like the launcher's.
var (
	passwordData = []byte("5f0c1e7a9b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c") // 48 hex, as lifecycle writes
	xpraConfData = []byte("# ffl: no default start commands\nstart =\n")
	userJSData   = func() []byte {
		b := []byte("// written by ffl for this session only\n")
		for i := 0; i < 17; i++ {
			b = append(b, `user_pref("bench.pref.`+strconv.Itoa(i)+`", false);`+"\n"...)
		}
		return b
	}()
	xpraLogData = []byte("2024-01-01 00:00:00,000 xpra is ready.\n2024-01-01 00:00:00,001 xpra HTML5 client on tcp\n")
)

// homeSession lays out a home session dir as the launcher makes it: password, Xauthority, and
// profile/ (user.js), home/, config/, data/, xpraconf/ (xpra.conf): 10 entries.
func (p planter) homeSession(jobfd, port int) error {
	sfd, err := p.mkdirAt(jobfd, layout.SessionDirName(port))
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	if err := p.fileAt(sfd, layout.PasswordFile, passwordData); err != nil {
		return err
	}
	if err := p.fileAt(sfd, "Xauthority", nil); err != nil {
		return err
	}
	for _, d := range []string{"profile", "home", "config", "data", "xpraconf"} {
		dfd, err := p.mkdirAt(sfd, d)
		if err != nil {
			return err
		}
		switch d {
		case "profile":
			err = p.fileAt(dfd, "user.js", userJSData)
		case "xpraconf":
			err = p.fileAt(dfd, "xpra.conf", xpraConfData)
		}
		if err == nil {
			err = p.touch(dfd)
		}
		unix.Close(dfd)
		if err != nil {
			return err
		}
	}
	return p.touch(sfd)
}

// runtimeSession lays out a node-local session dir: state.json, xpra.log and run/ xpra/ tmp/
// cache/.
func (p planter) runtimeSession(jobfd, port int, state []byte) error {
	sfd, err := p.mkdirAt(jobfd, layout.SessionDirName(port))
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	for _, d := range []string{"run", "xpra", "tmp", "cache"} {
		dfd, err := p.mkdirAt(sfd, d)
		if err != nil {
			return err
		}
		unix.Close(dfd)
	}
	if err := p.fileAt(sfd, "xpra.log", xpraLogData); err != nil {
		return err
	}
	return p.fileAt(sfd, layout.StateFile, state)
}

// sweepTree builds, below nodeDir (<state>/sessions/<node>, made here), jobs job dirs of perJob
// home session dirs each, every entry with the planter's mtime: the stale home trees of jobs
// whose node-local record is gone (a reboot, a crash), which is what the sweep exists for.
// Two workers: the machine has at least two CPUs.
func (p planter) sweepTree(stateDir, node string, firstJob, jobs, perJob int) error {
	nfd, err := p.chain(filepath.Dir(stateDir), filepath.Base(stateDir), layout.SessionsDir, node)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < jobs; j += 2 {
				if err := p.homeJob(nfd, strconv.Itoa(firstJob+j), perJob); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p planter) homeJob(nfd int, key string, perJob int) error {
	jfd, err := p.mkdirAt(nfd, layout.JobDirName(key))
	if err != nil {
		return err
	}
	defer unix.Close(jfd)
	for s := 0; s < perJob; s++ {
		if err := p.homeSession(jfd, 8001+s); err != nil {
			return err
		}
	}
	return p.touch(jfd)
}

// countEntries counts the entries below dir (dir excluded), for the notes.
func countEntries(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			n++
		}
		return nil
	})
	return n, err
}
