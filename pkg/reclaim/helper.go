package reclaim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ffl-hpc/ffl/pkg/account"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/procscan"
	"github.com/ffl-hpc/ffl/pkg/reexec"
	"github.com/ffl-hpc/ffl/pkg/safefs"
)

// Helper operations (HelperRequest.Op).
const (
	// OpHome is the Epilog's home step: CleanHome for one job.
	OpHome = "home"
	// OpStale is the Prolog's sweep: Stale, excluding the new job.
	OpStale = "stale"
	// OpSweep is the periodic sweep of one user: SweepUser.
	OpSweep = "sweep"
)

// Caps on what crosses the privilege boundary.
const (
	// MaxHelperRequest caps the request (one command-line argument).
	MaxHelperRequest = 16 << 10
	// MaxHelperOutput caps the report the root parent accepts from the helper.
	MaxHelperOutput = reexec.MaxLine
	// maxDuration caps every duration in a request (ten years).
	maxDuration = 10 * 365 * 24 * time.Hour
	// DefaultHelperTimeout applies when the caller's context has no deadline.
	DefaultHelperTimeout = reexec.DefaultTimeout
)

// ErrHelperTimeout means the helper did not finish by the deadline and was killed.
var ErrHelperTimeout = errors.New("helper timed out")

// HelperRequest is what the root parent asks the helper to do, as the user. It travels as one
// JSON command-line argument, so nothing of the parent's environment is needed.
type HelperRequest struct {
	Op         string `json:"op"`
	UID        int    `json:"uid"`
	Home       string `json:"home,omitempty"` // for messages: "the home does not exist"
	StateDir   string `json:"state_dir"`
	RuntimeDir string `json:"runtime_dir"`
	TempDir    string `json:"temp_dir"`
	XDir       string `json:"x_dir,omitempty"`
	Node       string `json:"node"`
	Job        string `json:"job"`
	BootID     string `json:"boot_id"`
	// Durations in milliseconds.
	GraceMS         int64 `json:"grace_ms,omitempty"`
	OlderThanMS     int64 `json:"older_than_ms,omitempty"`
	TempOlderThanMS int64 `json:"temp_older_than_ms,omitempty"`
	DryRun          bool  `json:"dry_run,omitempty"`
}

func (r HelperRequest) layout() layout.Layout {
	return layout.Layout{StateDir: r.StateDir, RuntimeDir: r.RuntimeDir, TempDir: r.TempDir, UID: r.UID, Node: r.Node, JobKey: r.Job}
}

func ms(d time.Duration) int64   { return d.Milliseconds() }
func dur(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
func cleanAbs(p string) bool     { return filepath.IsAbs(p) && filepath.Clean(p) == p }
func isHexDash(s string) bool    { return strings.Trim(s, "0123456789abcdef-") == "" }
func validMS(v int64) bool       { return v >= 0 && v <= ms(maxDuration) }
func (r HelperRequest) opts() Options {
	return Options{BootID: r.BootID, Grace: dur(r.GraceMS), DryRun: r.DryRun, OlderThan: dur(r.OlderThanMS), XDir: r.XDir}
}

// Validate refuses a request the helper must not act on.
func (r HelperRequest) Validate() error {
	switch r.Op {
	case OpHome, OpStale, OpSweep:
	default:
		return fmt.Errorf("helper request: unknown op %q", r.Op)
	}
	if r.UID <= 0 || r.UID >= 1<<31 {
		return fmt.Errorf("helper request: uid %d: the helper never runs as root", r.UID)
	}
	if err := r.layout().Validate(); err != nil {
		return fmt.Errorf("helper request: %w", err)
	}
	for _, p := range []string{r.StateDir, r.RuntimeDir, r.TempDir} {
		if !cleanAbs(p) {
			return fmt.Errorf("helper request: %q is not a clean absolute path", p)
		}
	}
	if (r.Home != "" && !cleanAbs(r.Home)) || (r.XDir != "" && !cleanAbs(r.XDir)) {
		return fmt.Errorf("helper request: home %q / x dir %q: not clean absolute paths", r.Home, r.XDir)
	}
	if r.BootID == "" || len(r.BootID) > 64 || !isHexDash(r.BootID) {
		return fmt.Errorf("helper request: boot id %q", r.BootID)
	}
	for _, v := range []int64{r.GraceMS, r.OlderThanMS, r.TempOlderThanMS} {
		if !validMS(v) {
			return fmt.Errorf("helper request: duration %d ms out of range", v)
		}
	}
	return nil
}

// ParseHelperRequest decodes and validates a request strictly (size cap, no unknown fields, one
// JSON value): it is the helper's only input.
func ParseHelperRequest(data []byte) (HelperRequest, error) {
	var r HelperRequest
	if len(data) > MaxHelperRequest {
		return r, fmt.Errorf("helper request: %d bytes (max %d)", len(data), MaxHelperRequest)
	}
	if err := reexec.DecodeStrict(data, &r); err != nil {
		return HelperRequest{}, fmt.Errorf("helper request: %w", err)
	}
	if err := r.Validate(); err != nil {
		return HelperRequest{}, err
	}
	return r, nil
}

// ParseHelperResult decodes the report a helper answered. The helper runs as the user, who can
// make it answer anything, so the report is capped, parsed strictly, stripped of control
// characters and trusted only for logging: no decision of the root parent depends on it.
func ParseHelperResult(data []byte) (Report, error) {
	var rep Report
	if len(data) > MaxHelperOutput {
		return rep, fmt.Errorf("helper output: more than %d bytes", MaxHelperOutput)
	}
	if err := reexec.DecodeStrict(data, &rep); err != nil {
		return Report{}, fmt.Errorf("helper output: %w", err)
	}
	for _, n := range []*int{&rep.Sessions, &rep.Termed, &rep.Killed, &rep.Left, &rep.Dirs, &rep.Files, &rep.Refused, &rep.MoreProblems} {
		if *n < 0 {
			return Report{}, fmt.Errorf("helper output: negative count %d", *n)
		}
	}
	if rep.Bytes < 0 {
		return Report{}, fmt.Errorf("helper output: negative bytes %d", rep.Bytes)
	}
	if len(rep.Removed) > maxRemoved || len(rep.Problems) > maxProblems {
		return Report{}, fmt.Errorf("helper output: %d removed lines, %d problems (max %d, %d)", len(rep.Removed), len(rep.Problems), maxRemoved, maxProblems)
	}
	for i := range rep.Removed {
		rep.Removed[i] = Sanitize(rep.Removed[i])
	}
	for i := range rep.Problems {
		rep.Problems[i] = Sanitize(rep.Problems[i])
	}
	if len(rep.Unfinished) > maxUnfinished {
		return Report{}, fmt.Errorf("helper output: %d unfinished steps (max %d)", len(rep.Unfinished), maxUnfinished)
	}
	for i, u := range rep.Unfinished {
		if len(u) > 32 || strings.Trim(u, "abcdefghijklmnopqrstuvwxyz-") != "" {
			return Report{}, fmt.Errorf("helper output: unfinished step %q", Sanitize(u))
		}
		rep.Unfinished[i] = u
	}
	return rep, nil
}

// Helper is the privilege-dropped helper: this program (by default through /proc/self/exe)
// re-executed as the job's user for one HelperRequest, with every bound of package reexec.
// Doing the home's work as the user is the strongest defence against a hostile home: a planted
// symlink then reaches only what the user could delete anyway, kill() reaches only the user's
// processes, and it works on root_squash NFS where root cannot even enter a 0700 home.
type Helper = reexec.Command

// RunHelper runs req in helper h as acct (uid acct.UID, gid gid, acct's supplementary groups)
// and returns the report it answered. It returns by ctx's deadline plus reexec.KillWait
// whatever the helper does (a hung NFS home, a process of the user holding its pipes).
func RunHelper(ctx context.Context, h Helper, acct account.Account, gid int, req HelperRequest) (Report, error) {
	if acct.UID <= 0 {
		return Report{}, fmt.Errorf("helper: uid %d: refusing to run the helper as root", acct.UID)
	}
	req.UID = acct.UID
	if err := req.Validate(); err != nil {
		return Report{}, err
	}
	cred := acct.Credential()
	cred.GID = gid
	var raw json.RawMessage
	err := h.Call(ctx, cred, req, nil, &raw)
	if errors.Is(err, reexec.ErrTimeout) {
		return Report{}, fmt.Errorf("helper as uid %d: %w (killed at the deadline; hung home file system?): %v", acct.UID, ErrHelperTimeout, err)
	}
	if err != nil {
		return Report{}, fmt.Errorf("helper as uid %d: %v", acct.UID, Sanitize(err.Error()))
	}
	rep, err := ParseHelperResult(raw)
	if err != nil {
		return Report{}, fmt.Errorf("helper as uid %d: %w", acct.UID, err)
	}
	return rep, nil
}

// ServeHelper is the helper's side (its process's whole work): parse the request, check that
// this process runs as the requested non-root uid, do the work within the deadline the parent
// gave, and answer the report on out (reexec's protocol). scanner runs the helper's marker
// scans (nil: in the helper's process).
func ServeHelper(arg string, out io.Writer, scanner procscan.Scanner) error {
	return reexec.Serve(arg, out, func(ctx context.Context, data json.RawMessage, _ func(any) error) (any, error) {
		return serveHelper(ctx, data, scanner)
	})
}

func serveHelper(ctx context.Context, data []byte, scanner procscan.Scanner) (Report, error) {
	req, err := ParseHelperRequest(data)
	if err != nil {
		return Report{}, err
	}
	if os.Getuid() != req.UID || os.Geteuid() != req.UID {
		return Report{}, fmt.Errorf("helper runs as uid %d (euid %d), request is for uid %d: refused", os.Getuid(), os.Geteuid(), req.UID)
	}
	l := req.layout()
	opts := req.opts()
	opts.Scanner = scanner
	var rep Report
	switch req.Op {
	case OpHome:
		rep = CleanHome(ctx, l, opts)
		if len(rep.Problems) == 0 && req.Home != "" {
			if _, err := os.Lstat(req.Home); safefs.IsNotExist(err) {
				rep.Problems = append(rep.Problems, Sanitize(fmt.Sprintf("home %s of uid %d does not exist", req.Home, req.UID)))
			}
		}
	case OpStale:
		rep, _ = Stale(ctx, l, opts)
	case OpSweep:
		rep, _ = SweepUser(ctx, l, opts, dur(req.TempOlderThanMS))
	}
	return rep, nil
}
