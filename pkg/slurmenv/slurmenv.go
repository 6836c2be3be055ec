// Package slurmenv turns Slurm's environment into a validated Job: who the job
// belongs to, where it runs and which job it is.
//
// Everything here ends up in paths, markers and privilege-drop credentials of
// processes that run as root (ffl-epilog, ffl-prolog), so every value is
// checked strictly before it leaves this package; a Job returned without
// error has only safe fields. The package is a leaf: it imports nothing of
// ffl's own.
package slurmenv

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/ffl-hpc/ffl/internal/oneline"
)

// Environment variables read by this package. Slurm sets them in the batch
// script, srun steps and the Prolog/Epilog (see docs/DESIGN.md).
const (
	EnvJobID         = "SLURM_JOB_ID"
	EnvJobIDLegacy   = "SLURM_JOBID" // older name, still set alongside SLURM_JOB_ID
	EnvJobUID        = "SLURM_JOB_UID"
	EnvJobGID        = "SLURM_JOB_GID"
	EnvJobUser       = "SLURM_JOB_USER"
	EnvNodeName      = "SLURMD_NODENAME"
	EnvClusterName   = "SLURM_CLUSTER_NAME"
	EnvScriptContext = "SLURM_SCRIPT_CONTEXT"
	EnvStepID        = "SLURM_STEP_ID"
	EnvArrayJobID    = "SLURM_ARRAY_JOB_ID"
	EnvArrayTaskID   = "SLURM_ARRAY_TASK_ID"
)

// Job is who/where/what job ffl is working for. Every field of a Job returned
// by FromEnv, ForEpilog or Manual has passed validation.
type Job struct {
	ID            string // decimal Slurm job ID, or "local-<pid>" outside Slurm
	UID, GID      int    // the job owner's uid and primary gid
	User          string // the job owner's name (or "uid<N>" when it cannot be resolved)
	Node          string // SLURMD_NODENAME, else the short hostname
	Cluster       string // SLURM_CLUSTER_NAME (may be "")
	ScriptContext string // SLURM_SCRIPT_CONTEXT: "prolog_slurmd", "epilog_slurmd", ... or ""
	StepID        string // SLURM_STEP_ID (may be "")
	ArrayJobID    string // SLURM_ARRAY_JOB_ID where present
	ArrayTaskID   string // SLURM_ARRAY_TASK_ID where present
	Local         bool   // true outside Slurm
}

// Key returns the job key used in paths and markers: the Slurm job ID ("123")
// or "local-<pid>". For a Job built by this package it is always a single
// path component (see ValidJobKey); the zero Job has an empty key.
func (j Job) Key() string { return j.ID }

// Options injects the process's view of the world, so that tests (and the
// fuzzer) can drive FromEnv without touching the real environment, NSS or
// hostname. Nil fields and a zero PID fall back to the real thing.
type Options struct {
	// Getenv reads one variable; default os.Getenv. An empty value counts as unset.
	Getenv func(string) string
	// Hostname returns the host name (first label is used); default os.Hostname.
	Hostname func() (string, error)
	// LookupUser resolves a user name to its uid through NSS; default os/user.
	LookupUser func(name string) (uid int, err error)
	// LookupUID resolves a uid to its user name through NSS; default os/user.
	LookupUID func(uid int) (name string, err error)
	// LookupGID resolves a uid to its primary gid through NSS; default os/user.
	// Used when the job's gid is not in the environment and the job owner is
	// not the caller (the Epilog runs as root: its own gid would be wrong).
	LookupGID func(uid int) (gid int, err error)
	// Getuid and Getgid return the caller's real uid and gid; default
	// os.Getuid and os.Getgid.
	Getuid, Getgid func() int
	// PID names the scope of a run outside Slurm ("local-<pid>"); default os.Getpid().
	PID int
}

func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	if o.LookupUser == nil {
		o.LookupUser = lookupUser
	}
	if o.LookupUID == nil {
		o.LookupUID = lookupUID
	}
	if o.LookupGID == nil {
		o.LookupGID = lookupGID
	}
	if o.Getuid == nil {
		o.Getuid = os.Getuid
	}
	if o.Getgid == nil {
		o.Getgid = os.Getgid
	}
	if o.PID <= 0 {
		o.PID = os.Getpid()
	}
	return o
}

// EnvError reports one bad or missing input (an environment variable, a flag
// or the hostname). Error() is a single line naming the input, its value and
// what was expected, fit for ffl's exit-code-2 message.
type EnvError struct {
	Var    string // the variable or flag, e.g. "SLURM_JOB_UID" or "--user"
	Value  string // the offending value ("" when missing)
	Reason string // what is wrong and what was expected
	Err    error  // underlying cause (a failed lookup), may be nil
}

// maxShownValue bounds how much of a (possibly hostile, huge) value an error
// message repeats.
const maxShownValue = 64

// Error formats `VAR="value": reason[: cause]` on one line, quoting the value
// (and cutting it at 64 bytes) so a hostile value cannot forge log lines.
func (e *EnvError) Error() string {
	var b strings.Builder
	b.WriteString(e.Var)
	if e.Value == "" {
		b.WriteString(": ")
	} else {
		v, cut := e.Value, ""
		if len(v) > maxShownValue {
			v, cut = v[:maxShownValue], "..."
		}
		b.WriteString("=")
		b.WriteString(strconv.Quote(v))
		b.WriteString(cut)
		b.WriteString(": ")
	}
	b.WriteString(oneline.Line(e.Reason))
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(oneline.Line(e.Err.Error()))
	}
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *EnvError) Unwrap() error { return e.Err }

func envErr(v, value string, err error) *EnvError {
	return &EnvError{Var: v, Value: value, Reason: err.Error()}
}

// FromEnv builds the Job for the launcher (or any non-root caller) from the
// environment. Inside Slurm the job ID comes from SLURM_JOB_ID (or the legacy
// SLURM_JOBID; both set must agree). Outside Slurm the Job is Local with key
// "local-<pid>", so that every manual run is its own scope. Identity values
// absent from the environment come from the calling process (real uid/gid,
// NSS name of the uid, else a valid $USER, else "uid<N>"). When
// SLURM_JOB_USER is set and resolves, its uid must equal the job's uid.
func FromEnv(opts Options) (Job, error) {
	return build(opts.withDefaults(), false)
}

// ForEpilog is FromEnv for the Prolog and Epilog, which run as root: it
// additionally requires SLURM_JOB_ID, SLURM_JOB_UID and SLURM_JOB_USER and never
// falls back to the caller's identity (that would be root's). A missing
// SLURM_JOB_GID is resolved as the job owner's primary group through NSS.
// PATH, HOME and USER are neither required nor read (slurmd passes none).
func ForEpilog(opts Options) (Job, error) {
	return build(opts.withDefaults(), true)
}

// Manual builds a Job by hand for `ffl-epilog --job ID --user NAME` (an admin
// cleaning up after a job whose Epilog did not run). id is a job key (a Slurm
// job ID, or "local-<pid>" to reach a run made outside Slurm); user must
// resolve through NSS, which supplies the uid and primary gid. The node comes
// from SLURMD_NODENAME or the hostname, the cluster from SLURM_CLUSTER_NAME.
func Manual(id, userName string, opts Options) (Job, error) {
	o := opts.withDefaults()
	if err := ValidJobKey(id); err != nil {
		return Job{}, envErr("--job", id, err)
	}
	if err := ValidUserName(userName); err != nil {
		return Job{}, envErr("--user", userName, err)
	}
	uid, err := o.LookupUser(userName)
	if err != nil {
		return Job{}, &EnvError{Var: "--user", Value: userName, Reason: "cannot resolve the user through NSS (give an existing user name)", Err: err}
	}
	if uid < 0 || uid >= MaxID {
		return Job{}, &EnvError{Var: "--user", Value: userName, Reason: fmt.Sprintf("resolves to uid %d, out of range", uid)}
	}
	gid, err := o.LookupGID(uid)
	if err != nil {
		return Job{}, &EnvError{Var: "--user", Value: userName, Reason: fmt.Sprintf("cannot resolve the primary group of uid %d", uid), Err: err}
	}
	if gid < 0 || gid >= MaxID {
		return Job{}, &EnvError{Var: "--user", Value: userName, Reason: fmt.Sprintf("primary gid %d out of range", gid)}
	}
	j := Job{ID: id, UID: uid, GID: gid, User: userName, Local: strings.HasPrefix(id, LocalPrefix)}
	if j.Node, err = nodeName(o); err != nil {
		return Job{}, err
	}
	if j.Cluster, err = optional(o.Getenv, EnvClusterName, validWord); err != nil {
		return Job{}, err
	}
	return j, nil
}

func build(o Options, epilog bool) (Job, error) {
	var j Job
	id, err := jobID(o.Getenv)
	if err != nil {
		return Job{}, err
	}
	switch {
	case id != "":
		j.ID = id
	case epilog:
		return Job{}, missing(EnvJobID)
	default:
		j.Local = true
		j.ID = LocalPrefix + strconv.Itoa(o.PID)
	}

	if j.Node, err = nodeName(o); err != nil {
		return Job{}, err
	}
	for _, f := range []struct {
		dst   *string
		name  string
		check func(string) error
	}{
		{&j.Cluster, EnvClusterName, validWord},
		{&j.ScriptContext, EnvScriptContext, validWord},
		{&j.StepID, EnvStepID, validStepID},
		{&j.ArrayJobID, EnvArrayJobID, ValidJobID},
		{&j.ArrayTaskID, EnvArrayTaskID, validDecimal},
	} {
		if *f.dst, err = optional(o.Getenv, f.name, f.check); err != nil {
			return Job{}, err
		}
	}

	if err := identity(o, epilog, &j); err != nil {
		return Job{}, err
	}
	return j, nil
}

// jobID returns the validated job ID from SLURM_JOB_ID / SLURM_JOBID, or ""
// when neither is set.
func jobID(getenv func(string) string) (string, error) {
	id, legacy := getenv(EnvJobID), getenv(EnvJobIDLegacy)
	if id != "" {
		if err := ValidJobID(id); err != nil {
			return "", envErr(EnvJobID, id, err)
		}
	}
	if legacy != "" {
		if err := ValidJobID(legacy); err != nil {
			return "", envErr(EnvJobIDLegacy, legacy, err)
		}
	}
	if id != "" && legacy != "" && id != legacy {
		return "", &EnvError{Var: EnvJobIDLegacy, Value: legacy,
			Reason: fmt.Sprintf("disagrees with %s=%q (unset one of them)", EnvJobID, id)}
	}
	if id == "" {
		id = legacy
	}
	return id, nil
}

// identity fills UID, GID and User.
func identity(o Options, epilog bool, j *Job) error {
	uidStr, gidStr, userStr := o.Getenv(EnvJobUID), o.Getenv(EnvJobGID), o.Getenv(EnvJobUser)
	if epilog {
		if uidStr == "" {
			return missing(EnvJobUID)
		}
		if userStr == "" {
			return missing(EnvJobUser)
		}
	}

	callerUID := o.Getuid()
	uidFromEnv := uidStr != ""
	if uidFromEnv {
		n, err := parseCanonical(uidStr, MaxID)
		if err != nil {
			return &EnvError{Var: EnvJobUID, Value: uidStr, Reason: err.Error() + " (expected the job owner's numeric uid)"}
		}
		j.UID = int(n)
	} else {
		j.UID = callerUID
	}
	if j.UID < 0 || j.UID >= MaxID {
		return &EnvError{Var: "uid", Value: strconv.Itoa(j.UID), Reason: "the calling process's uid is out of range"}
	}

	switch {
	case gidStr != "":
		n, err := parseCanonical(gidStr, MaxID)
		if err != nil {
			return &EnvError{Var: EnvJobGID, Value: gidStr, Reason: err.Error() + " (expected the job owner's numeric gid)"}
		}
		j.GID = int(n)
	case !epilog && j.UID == callerUID:
		j.GID = o.Getgid()
	default:
		// The job's owner is not the caller (root in the Epilog): the caller's
		// gid would hand root's group to a privilege-dropped helper.
		gid, err := o.LookupGID(j.UID)
		if err != nil {
			return &EnvError{Var: EnvJobGID, Reason: fmt.Sprintf("not set, and the primary group of uid %d cannot be resolved through NSS", j.UID), Err: err}
		}
		j.GID = gid
	}
	if j.GID < 0 || j.GID >= MaxID {
		return &EnvError{Var: "gid", Value: strconv.Itoa(j.GID), Reason: "out of range"}
	}

	if userStr != "" {
		if err := ValidUserName(userStr); err != nil {
			return envErr(EnvJobUser, userStr, err)
		}
		if uid, err := o.LookupUser(userStr); err == nil && uid != j.UID {
			src := EnvJobUID + " is " + strconv.Itoa(j.UID)
			if !uidFromEnv {
				src = "this process runs as uid " + strconv.Itoa(j.UID)
			}
			return &EnvError{Var: EnvJobUser, Value: userStr,
				Reason: fmt.Sprintf("resolves to uid %d, but %s (the job environment is inconsistent)", uid, src)}
		}
		j.User = userStr
		return nil
	}
	j.User = userFor(o, j.UID, !uidFromEnv)
	return nil
}

// userFor names uid when SLURM_JOB_USER is absent: NSS first; then $USER, but
// only when uid is the caller's own (that is all $USER describes) and valid;
// else "uid<N>", which is informational only (callers use UID for lookups).
func userFor(o Options, uid int, isCaller bool) string {
	if name, err := o.LookupUID(uid); err == nil && ValidUserName(name) == nil {
		return name
	}
	if isCaller {
		if name := o.Getenv("USER"); name != "" && ValidUserName(name) == nil {
			return name
		}
	}
	return "uid" + strconv.Itoa(uid)
}

// nodeName returns SLURMD_NODENAME, else the first label of the hostname.
func nodeName(o Options) (string, error) {
	if n := o.Getenv(EnvNodeName); n != "" {
		if err := ValidNodeName(n); err != nil {
			return "", envErr(EnvNodeName, n, err)
		}
		return n, nil
	}
	h, err := o.Hostname()
	if err != nil {
		return "", &EnvError{Var: "hostname", Reason: "cannot read the host name (set " + EnvNodeName + ")", Err: err}
	}
	short, _, _ := strings.Cut(h, ".")
	if err := ValidNodeName(short); err != nil {
		return "", &EnvError{Var: "hostname", Value: h, Reason: err.Error() + " (set " + EnvNodeName + ")"}
	}
	return short, nil
}

func optional(getenv func(string) string, name string, check func(string) error) (string, error) {
	v := getenv(name)
	if v == "" {
		return "", nil
	}
	if err := check(v); err != nil {
		return "", envErr(name, v, err)
	}
	return v, nil
}

func missing(name string) *EnvError {
	return &EnvError{Var: name, Reason: "not set (slurmd sets it for the Prolog/Epilog; run ffl-epilog from Slurm, or pass --job and --user)"}
}

// The default lookups go through os/user, which uses NSS when built with cgo
// (LDAP/SSSD users resolve) and /etc/passwd otherwise.

func lookupUser(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return atoiID(u.Uid)
}

func lookupUID(uid int) (string, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

func lookupGID(uid int) (int, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return 0, err
	}
	return atoiID(u.Gid)
}

func atoiID(s string) (int, error) {
	n, err := parseCanonical(s, MaxID)
	if err != nil {
		return 0, errors.New("NSS returned a non-numeric or out-of-range id " + strconv.Quote(s))
	}
	return int(n), nil
}
