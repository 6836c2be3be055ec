// Package doctor checks a node for what ffl needs and prints the answer as a table an admin can
// act on: every check says pass, warn or fail, and what to do about it. `ffl-launch doctor`
// (a user, inside or outside a job) and `ffl-epilog doctor` (root, the node's side) print it;
// both read only files on the node (never the Slurm controller).
package doctor

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/config"
	"github.com/ffl-hpc/ffl/pkg/execenv"
	"github.com/ffl-hpc/ffl/pkg/prereq"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// Status of one check.
type Status string

// The statuses, worst last.
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "FAIL"
)

// Check is one line of the table.
type Check struct {
	Name   string
	Status Status
	// Detail is what was found, Fix what to do (empty on pass).
	Detail, Fix string
}

// Report is a doctor's table.
type Report struct {
	Checks []Check
}

// Add appends a check (callers add their own, e.g. the launcher's peer check).
func (r *Report) Add(name string, st Status, detail, fix string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: st, Detail: detail, Fix: fix})
}

// Failed reports whether any check failed (the doctor then exits non-zero).
func (r Report) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// Write prints the table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tFOUND\tFIX")
	for _, c := range r.Checks {
		fix := c.Fix
		if fix == "" {
			fix = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Status, oneline.Line(c.Detail), oneline.Line(fix))
	}
	return tw.Flush()
}

// Options are the inputs of the checks.
type Options struct {
	Config config.Config
	// Path is the PATH sessions get (xpra and Firefox are looked up in it).
	Path string
	// SlurmConf is slurm.conf ("" = the one the running slurmd reads, else $SLURM_CONF, else
	// /etc/slurm/slurm.conf, else configless slurmd's cache /run/slurm/conf/slurm.conf).
	SlurmConf string
	// SlurmVersion is the Slurm release whose rules apply ("" = ask slurmd --version).
	SlurmVersion string
	// XDir holds .X11-unix ("" = /tmp).
	XDir string
	// Node adds the node-side (root) checks: the Epilog configured, PrologEpilogTimeout.
	Node bool

	// Where the Slurm side looks; zero values are the real system's (tests set them).
	slurm slurmPaths
}

// Run runs every check.
func Run(ctx context.Context, o Options) Report {
	var r Report
	// The caller's PATH finds xpra and Firefox, but only through directories nobody but root
	// and the caller can change (root's doctor passes execenv.DefaultPath).
	if o.Path == "" {
		o.Path = execenv.DefaultPath
	}
	o.Path = execenv.Path(o.Path, os.Getuid())
	checkSession(ctx, &r, o)
	checkDirs(&r, o)
	checkSlurm(ctx, &r, o)
	return r
}

// checkSession: xpra and Firefox installed, their versions, and what xpra needs to draw.
func checkSession(ctx context.Context, r *Report, o Options) {
	xp, err := prereq.Command(o.Config.Xpra, o.Path, "xpra")
	if err != nil {
		r.Add("xpra", Fail, fmt.Sprintf("%s not found in %s", o.Config.Xpra, o.Path), "apt-get install xpra")
	} else {
		v, verr := prereq.Version(ctx, xp)
		var pv xpra.Version
		if verr == nil {
			pv, verr = xpra.ParseVersion(v)
		}
		switch {
		case verr != nil:
			r.Add("xpra", Fail, verr.Error(), "reinstall xpra: apt-get install --reinstall xpra")
		case pv.Major == 3 || pv.Major >= 5:
			// 3.1 (Debian 12) and 5.x/6.x (xpra.org): ffl builds its command line and speaks the
			// control encoding of each (docs/XPRA.md).
			r.Add("xpra", Pass, xp+": "+v, "")
		default:
			r.Add("xpra", Warn, v, "ffl supports xpra 3.1 (Debian 12) and 5.x/6.x (xpra.org); install one of those")
		}
		if err := prereq.CheckHTML5With(ctx, nil, xp, o.Path); err != nil {
			r.Add("xpra HTML5 client", Fail, err.Error(), "install the package xpra-html5 (xpra 4 and later ship the HTML5 client separately)")
		} else {
			r.Add("xpra HTML5 client", Pass, "found", "")
		}
		interp, err := prereq.Interpreter(xp, o.Path)
		var missing []prereq.Module
		if err == nil {
			missing, err = prereq.MissingModules(ctx, interp, prereq.DrawModules)
		}
		if err != nil {
			r.Add("xpra can draw", Fail, err.Error(), "reinstall xpra")
		} else {
			gone := map[string]bool{}
			for _, m := range missing {
				gone[m.Name] = true
			}
			for _, m := range prereq.DrawModules {
				name := "python: " + m.Name
				switch {
				case !gone[m.Name]:
					r.Add(name, Pass, "imports in "+interp[0], "")
				case m.Required:
					r.Add(name, Fail, "missing: "+m.Why, "apt-get install "+m.Package)
				default:
					r.Add(name, Warn, "missing: "+m.Why, "apt-get install "+m.Package)
				}
			}
		}
	}
	ff, err := prereq.Command(o.Config.Firefox, o.Path, "firefox-esr")
	if err != nil {
		r.Add("firefox", Fail, fmt.Sprintf("%s not found in %s", o.Config.Firefox, o.Path), "apt-get install firefox-esr")
	} else if v, err := prereq.Version(ctx, ff); err != nil {
		r.Add("firefox", Fail, err.Error(), "reinstall firefox-esr")
	} else {
		r.Add("firefox", Pass, ff+": "+v, "")
	}
	if _, err := prereq.LookPath("Xvfb", o.Path); err != nil {
		r.Add("Xvfb", Fail, "Xvfb not found", "apt-get install xvfb")
	} else {
		r.Add("Xvfb", Pass, "found", "")
	}
}

// checkDirs: /tmp/.X11-unix, the runtime root and the temp dir.
func checkDirs(r *Report, o Options) {
	xdir := o.XDir
	if xdir == "" {
		xdir = "/tmp"
	}
	x11 := filepath.Join(xdir, ".X11-unix")
	var st syscall.Stat_t
	switch err := syscall.Lstat(x11, &st); {
	case err != nil:
		r.Add("X socket dir", Warn, x11+" missing", "ffl-prolog creates it; or: mkdir -m 1777 "+x11)
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Uid != 0 || st.Mode&0o7777 != 0o1777:
		r.Add("X socket dir", Fail, fmt.Sprintf("%s: owner uid %d, mode %#o", x11, st.Uid, st.Mode&0o7777),
			"as root: rm -rf "+x11+" && mkdir -m 1777 "+x11+" (a user's Xvfb created it: other users' sessions cannot start)")
	default:
		r.Add("X socket dir", Pass, x11+": root, 1777", "")
	}
	rt := o.Config.RuntimeDir
	switch err := syscall.Lstat(rt, &st); {
	case err != nil:
		r.Add("runtime dir", Warn, rt+" missing: sessions use "+filepath.Join(o.Config.TempDir, "ffl-<uid>"), "configure ffl-prolog as the Prolog (it makes "+rt+")")
	case st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0:
		r.Add("runtime dir", Fail, fmt.Sprintf("%s: owner uid %d, mode %#o", rt, st.Uid, st.Mode&0o7777), "it must be root's and writable by root only: chown root: "+rt+"; chmod 755 "+rt)
	default:
		r.Add("runtime dir", Pass, rt+": root, "+fmt.Sprintf("%#o", st.Mode&0o7777), "")
	}
	tmp := o.Config.TempDir
	switch err := syscall.Stat(tmp, &st); {
	case err != nil:
		r.Add("temp dir", Fail, tmp+": "+err.Error(), "set temp_dir in /etc/ffl/ffl.toml to a node-local directory")
	case st.Mode&0o1000 == 0 && st.Mode&0o002 != 0:
		r.Add("temp dir", Fail, fmt.Sprintf("%s: world-writable without the sticky bit", tmp), "chmod +t "+tmp)
	default:
		r.Add("temp dir", Pass, tmp, "")
	}
}
