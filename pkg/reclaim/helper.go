package reclaim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ffl-hpc/ffl/pkg/layout"
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
	// MaxHelperOutput caps what the root parent reads from the helper's stdout.
	MaxHelperOutput = 256 << 10
	// maxHelperStderr caps the helper's stderr kept for the log.
	maxHelperStderr = 4 << 10
	// maxDisplays caps the displays one request names.
	maxDisplays = 256
	// maxDuration caps every duration in a request (ten years).
	maxDuration = 10 * 365 * 24 * time.Hour
	// helperKillWait is how long the parent waits for a killed helper to exit before giving up
	// on it (a process blocked on a dead NFS server may not die at once).
	helperKillWait = 2 * time.Second
	// DefaultHelperTimeout applies when the caller's context has no deadline.
	DefaultHelperTimeout = 10 * time.Second
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
	Displays   []int  `json:"displays,omitempty"`
	// Durations in milliseconds.
	GraceMS         int64 `json:"grace_ms,omitempty"`
	TimeoutMS       int64 `json:"timeout_ms"`
	OlderThanMS     int64 `json:"older_than_ms,omitempty"`
	TempOlderThanMS int64 `json:"temp_older_than_ms,omitempty"`
	DryRun          bool  `json:"dry_run,omitempty"`
}

// HelperResult is what the helper prints: its report, or why it did nothing.
type HelperResult struct {
	Report Report `json:"report"`
	Error  string `json:"error,omitempty"`
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
	if len(r.Displays) > maxDisplays {
		return fmt.Errorf("helper request: %d displays (max %d)", len(r.Displays), maxDisplays)
	}
	for _, d := range r.Displays {
		if d < 0 || d > 65535 {
			return fmt.Errorf("helper request: display %d", d)
		}
	}
	for _, v := range []int64{r.GraceMS, r.TimeoutMS, r.OlderThanMS, r.TempOlderThanMS} {
		if !validMS(v) {
			return fmt.Errorf("helper request: duration %d ms out of range", v)
		}
	}
	if r.TimeoutMS == 0 {
		return errors.New("helper request: no timeout")
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
	if err := decodeStrict(data, &r); err != nil {
		return HelperRequest{}, fmt.Errorf("helper request: %w", err)
	}
	if err := r.Validate(); err != nil {
		return HelperRequest{}, err
	}
	return r, nil
}

// ParseHelperResult decodes what a helper printed. The helper runs as the user, who can make it
// print anything, so the result is capped, parsed strictly, stripped of control characters and
// trusted only for logging: no decision of the root parent depends on it.
func ParseHelperResult(data []byte) (HelperResult, error) {
	var r HelperResult
	if len(data) > MaxHelperOutput {
		return r, fmt.Errorf("helper output: more than %d bytes", MaxHelperOutput)
	}
	if err := decodeStrict(data, &r); err != nil {
		return HelperResult{}, fmt.Errorf("helper output: %w", err)
	}
	rep := &r.Report
	for _, n := range []*int{&rep.Sessions, &rep.Termed, &rep.Killed, &rep.Left, &rep.Dirs, &rep.Files, &rep.Refused, &rep.MoreProblems} {
		if *n < 0 {
			return HelperResult{}, fmt.Errorf("helper output: negative count %d", *n)
		}
	}
	if rep.Bytes < 0 {
		return HelperResult{}, fmt.Errorf("helper output: negative bytes %d", rep.Bytes)
	}
	if len(rep.Removed) > maxRemoved || len(rep.Problems) > maxProblems {
		return HelperResult{}, fmt.Errorf("helper output: %d removed lines, %d problems (max %d, %d)", len(rep.Removed), len(rep.Problems), maxRemoved, maxProblems)
	}
	for i := range rep.Removed {
		rep.Removed[i] = Sanitize(rep.Removed[i])
	}
	for i := range rep.Problems {
		rep.Problems[i] = Sanitize(rep.Problems[i])
	}
	r.Error = Sanitize(r.Error)
	return r, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// Helper re-executes a program (by default this one, through /proc/self/exe, so the helper is
// exactly the parent's code even during a package upgrade and even if the binary lives in a
// directory the user cannot enter) as the job's user, to do the work in the user's home. That
// is the strongest defence against a hostile home: a planted symlink then reaches only what the
// user could delete anyway, kill() reaches only the user's processes, and it works on
// root_squash NFS where root cannot even enter a 0700 home.
type Helper struct {
	// Path is the program; "" means /proc/self/exe.
	Path string
	// Args come before the request argument, e.g. {"helper"} for `ffl-epilog helper REQUEST`.
	Args []string
}

// Run runs the helper as acct (uid acct.UID, gid gid, acct's supplementary groups) with an empty
// environment, stdin /dev/null, cwd /, its own session, and returns the report it printed.
// The helper is killed when ctx is done (a hung NFS home must not hang the Epilog); it is told a
// slightly earlier deadline so that it can stop and report first.
func (h Helper) Run(ctx context.Context, acct Account, gid int, req HelperRequest) (Report, error) {
	if acct.UID <= 0 {
		return Report{}, fmt.Errorf("helper: uid %d: refusing to run the helper as root", acct.UID)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultHelperTimeout)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	left := time.Until(dl)
	if left <= 0 {
		return Report{}, fmt.Errorf("helper: %w before it started", ErrHelperTimeout)
	}
	req.UID = acct.UID
	req.TimeoutMS = max(ms(left-min(left/5, time.Second)), 1)
	if err := req.Validate(); err != nil {
		return Report{}, err
	}
	arg, err := json.Marshal(req)
	if err != nil {
		return Report{}, fmt.Errorf("helper: %w", err)
	}
	path := h.Path
	if path == "" {
		path = "/proc/self/exe"
	}
	groups := make([]uint32, 0, len(acct.Groups))
	for _, g := range acct.Groups {
		groups = append(groups, uint32(g))
	}
	cmd := exec.Command(path, append(append([]string{}, h.Args...), string(arg))...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(gid), Groups: groups},
		Setsid:     true,
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return Report{}, fmt.Errorf("helper: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return Report{}, fmt.Errorf("helper: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return Report{}, fmt.Errorf("helper: start %s as uid %d: %w", path, acct.UID, err)
	}
	// Readers drain everything (so the helper never blocks on a full pipe) and keep a capped part.
	outCh := make(chan []byte, 1)
	errCh := make(chan []byte, 1)
	go func() { outCh <- readCapped(outR, MaxHelperOutput+1) }()
	go func() { errCh <- readCapped(errR, maxHelperStderr) }()
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()

	var waitErr error
	select {
	case waitErr = <-waitCh:
	case <-ctx.Done():
		// The helper leads its own process group (Setsid) and is not reaped yet, so no other
		// process can hold that group id: kill whatever it may have started, too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		select {
		case <-waitCh:
			return Report{}, fmt.Errorf("helper as uid %d: %w (killed at the deadline; hung home file system?)", acct.UID, ErrHelperTimeout)
		case <-time.After(helperKillWait):
			return Report{}, fmt.Errorf("helper as uid %d: %w, and it did not exit after SIGKILL (pid %d; hung NFS?)", acct.UID, ErrHelperTimeout, cmd.Process.Pid)
		}
	}
	out := <-outCh
	stderr := strings.TrimSpace(string(<-errCh))
	res, perr := ParseHelperResult(out)
	switch {
	case perr != nil && waitErr != nil:
		return Report{}, fmt.Errorf("helper as uid %d: %v: %s", acct.UID, waitErr, Sanitize(stderr))
	case perr != nil:
		return Report{}, fmt.Errorf("helper as uid %d: %w", acct.UID, perr)
	case res.Error != "":
		return res.Report, fmt.Errorf("helper as uid %d: %s", acct.UID, res.Error)
	}
	return res.Report, nil
}

// readCapped reads r to the end and returns at most max bytes of it; r is closed.
func readCapped(r *os.File, max int64) []byte {
	defer r.Close()
	data, _ := io.ReadAll(io.LimitReader(r, max))
	_, _ = io.Copy(io.Discard, r)
	return data
}

// ServeHelper is the helper's side: parse the request (the one argument), check that this
// process runs as the requested non-root uid, do the work and print the HelperResult as JSON on
// out. It never fails in a way the parent must handle: every problem is in the result.
func ServeHelper(ctx context.Context, arg string, out io.Writer) error {
	res := serveHelper(ctx, arg)
	enc := json.NewEncoder(out)
	return enc.Encode(res)
}

func serveHelper(ctx context.Context, arg string) HelperResult {
	req, err := ParseHelperRequest([]byte(arg))
	if err != nil {
		return HelperResult{Error: err.Error()}
	}
	if os.Getuid() != req.UID || os.Geteuid() != req.UID {
		return HelperResult{Error: fmt.Sprintf("helper runs as uid %d (euid %d), request is for uid %d: refused", os.Getuid(), os.Geteuid(), req.UID)}
	}
	ctx, cancel := context.WithTimeout(ctx, dur(req.TimeoutMS))
	defer cancel()
	l := req.layout()
	opts := req.opts()
	var rep Report
	switch req.Op {
	case OpHome:
		rep = CleanHome(ctx, l, req.Displays, opts)
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
	return HelperResult{Report: rep}
}
