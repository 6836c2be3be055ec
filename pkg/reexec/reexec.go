// Package reexec is how the root hooks hand work to a child process and stay bounded whatever
// the child does: this program re-executed (through /proc/self/exe, so the child is exactly the
// parent's code even during a package upgrade) for ONE request, either as the job's user (the
// privilege-dropped helper that works in the home) or as root (the process scan, whose reads of
// other processes' memory can block in the kernel). Every wait of the parent has a deadline:
//
//   - the request travels as one command-line argument (capped), nothing else is inherited: an
//     empty environment, cwd "/", stdin /dev/null, its own session, every other descriptor of
//     the parent marked close-on-exec first;
//   - the answer is newline-terminated JSON lines on a pipe: "item" lines (streamed, so a child
//     cut short still delivered what it found) and one final "result" or "error" line. The
//     parent reads them with read deadlines (never waiting for EOF: a process of the user can
//     copy the pipe's write end with pidfd_getfd and hold it open forever), caps each line and
//     the whole answer, and stops at the final line;
//   - at the deadline the child's process group is SIGKILLed; its exit is awaited for at most
//     KillWait, then the child is abandoned (a process stuck in the kernel may never die);
//   - the child learns its deadline (a little earlier than the parent's) so it can stop and
//     answer first; a child that dropped privileges makes itself non-dumpable at once, so other
//     processes of its user cannot ptrace it or copy its descriptors after that point.
//
// A child running as the user is the user's process in every respect: what it prints is parsed
// strictly and trusted only as far as the caller decides (the hooks use it for log lines).
package reexec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/oneline"
	"github.com/ffl-hpc/ffl/pkg/execenv"
)

// Bounds on what crosses between parent and child.
const (
	// MaxRequest caps the request argument.
	MaxRequest = 64 << 10
	// MaxLine caps one answer line; MaxAnswer the whole answer.
	MaxLine   = 256 << 10
	MaxAnswer = 4 << 20
	// maxStderr caps the child's stderr kept for the error message.
	maxStderr = 4 << 10
	// KillWait is how long the parent waits for a killed child (or one that answered) to exit
	// before abandoning it.
	KillWait = 300 * time.Millisecond
	// DefaultTimeout applies when the caller's context has no deadline.
	DefaultTimeout = 10 * time.Second
	// maxGroups bounds the supplementary groups (NGROUPS_MAX).
	maxGroups = 65536
)

// Errors of Call, for errors.Is.
var (
	// ErrTimeout means the child gave no final answer by the deadline and was killed.
	ErrTimeout = errors.New("child timed out")
	// ErrNoAnswer means the child ended (or closed its output) without a final answer.
	ErrNoAnswer = errors.New("child gave no answer")
	// ErrBadAnswer means the child's output broke the protocol (too long, not JSON, ...).
	ErrBadAnswer = errors.New("child's answer refused")
)

// Command is a program run for one request.
type Command struct {
	// Path is the program; "" means /proc/self/exe (this program).
	Path string
	// Args come before the request argument, e.g. {"helper"} for `ffl-epilog helper REQUEST`.
	Args []string
}

// Credential is who the child runs as. Nil in Call means the caller's own credentials.
type Credential struct {
	UID, GID int
	Groups   []int
}

// envelope is the request argument: the caller's request and the child's own deadline.
type envelope struct {
	DeadlineMS int64           `json:"deadline_ms"`
	Request    json.RawMessage `json:"request"`
}

// line is one answer line; exactly one field is set.
type line struct {
	Item   json.RawMessage `json:"item,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Call runs c with req (JSON) as its request, as cred (nil: as the caller; a cred with uid 0 is
// refused), calls onItem for every item line in order (nil: items are a protocol error), and
// decodes the final result line strictly into result (nil: ignored). Whatever the child does,
// Call returns by ctx's deadline (DefaultTimeout without one) plus at most KillWait.
func (c Command) Call(ctx context.Context, cred *Credential, req any, onItem func(json.RawMessage) error, result any) error {
	if cred != nil && cred.UID <= 0 {
		return fmt.Errorf("reexec: uid %d: refusing to drop privileges to root", cred.UID)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	dl, _ := ctx.Deadline()
	left := time.Until(dl)
	if left <= 0 {
		return fmt.Errorf("reexec: %w before it started", ErrTimeout)
	}
	reqData, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("reexec: request: %w", err)
	}
	// The child stops a fifth (at most 1 s) before the parent gives up, to answer in time.
	arg, err := json.Marshal(envelope{DeadlineMS: max((left - min(left/5, time.Second)).Milliseconds(), 1), Request: reqData})
	if err != nil {
		return fmt.Errorf("reexec: request: %w", err)
	}
	if len(arg) > MaxRequest {
		return fmt.Errorf("reexec: request of %d bytes (max %d)", len(arg), MaxRequest)
	}
	cmd, path, who, err := c.command(cred, arg)
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("reexec: %w", err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return fmt.Errorf("reexec: %w", err)
	}
	defer errR.Close()
	cmd.Stdout, cmd.Stderr = outW, errW
	// Nothing this process inherited without close-on-exec may reach the child.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return fmt.Errorf("reexec: start %s %s: %w", path, who, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stderr := make(chan []byte, 1)
	go func() { stderr <- readUntil(errR, dl, maxStderr) }()

	final, rerr := readAnswer(outR, dl, onItem)
	endChild(cmd, exited, rerr == nil, dl)
	_ = errR.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var msg []byte
	select {
	case msg = <-stderr:
	case <-time.After(50 * time.Millisecond):
	}
	if rerr != nil {
		if s := sanitize(strings.TrimSpace(string(msg))); s != "" {
			return fmt.Errorf("reexec: %s %s: %w (stderr: %s)", path, who, rerr, s)
		}
		return fmt.Errorf("reexec: %s %s: %w", path, who, rerr)
	}
	if final.Error != "" {
		return fmt.Errorf("reexec: %s %s: %s", path, who, sanitize(final.Error))
	}
	if result != nil {
		if err := DecodeStrict(final.Result, result); err != nil {
			return fmt.Errorf("reexec: %s %s: result: %w: %w", path, who, ErrBadAnswer, err)
		}
	}
	return nil
}

// command builds the child's command line: c's program (this binary by default) with the
// request as its last argument, in its own session, as cred when given. It also returns the
// program and whom it runs as, for errors.
func (c Command) command(cred *Credential, arg []byte) (cmd *exec.Cmd, path, who string, err error) {
	path = c.Path
	if path == "" {
		path = "/proc/self/exe"
	}
	cmd = execenv.Command("/", nil, path, append(append([]string{}, c.Args...), string(arg))...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	who = fmt.Sprintf("as uid %d", os.Geteuid())
	if cred != nil {
		if len(cred.Groups) > maxGroups {
			return nil, "", "", fmt.Errorf("reexec: %d groups (max %d)", len(cred.Groups), maxGroups)
		}
		groups := make([]uint32, len(cred.Groups))
		for i, g := range cred.Groups {
			groups[i] = uint32(g)
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(cred.UID), Gid: uint32(cred.GID), Groups: groups}
		who = fmt.Sprintf("as uid %d", cred.UID)
	}
	return cmd, path, who, nil
}

// endChild makes sure the child goes now, whatever happened (it answered, or it is past its
// time): one that answered gets until the deadline (at most KillWait) to exit by itself, then
// its session is killed. Its exit is awaited only briefly: killing a process stuck in the kernel
// may take forever.
func endChild(cmd *exec.Cmd, exited <-chan error, answered bool, dl time.Time) {
	if answered {
		select {
		case <-exited:
			return
		case <-time.After(min(KillWait, max(time.Until(dl), 0))):
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // Setsid: its group is its own
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(KillWait):
	}
}

// readAnswer reads answer lines from r until the final one or the deadline.
func readAnswer(r *os.File, dl time.Time, onItem func(json.RawMessage) error) (line, error) {
	if err := r.SetReadDeadline(dl); err != nil {
		return line{}, fmt.Errorf("read deadline: %w", err)
	}
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 32<<10)
	total := 0
	for {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			var l line
			if err := DecodeStrict(buf[:i], &l); err != nil {
				return line{}, fmt.Errorf("%w: %v", ErrBadAnswer, err)
			}
			buf = buf[i+1:]
			switch set := btoi(l.Item != nil) + btoi(l.Result != nil) + btoi(l.Error != ""); {
			case set != 1:
				return line{}, fmt.Errorf("%w: a line with %d of item, result, error", ErrBadAnswer, set)
			case l.Item != nil:
				if onItem == nil {
					return line{}, fmt.Errorf("%w: unexpected item", ErrBadAnswer)
				}
				if err := onItem(l.Item); err != nil {
					return line{}, fmt.Errorf("%w: item: %v", ErrBadAnswer, err)
				}
				continue
			default:
				return l, nil
			}
		}
		if len(buf) > MaxLine {
			return line{}, fmt.Errorf("%w: a line longer than %d bytes", ErrBadAnswer, MaxLine)
		}
		n, err := r.Read(chunk)
		if total += n; total > MaxAnswer {
			return line{}, fmt.Errorf("%w: more than %d bytes", ErrBadAnswer, MaxAnswer)
		}
		buf = append(buf, chunk[:n]...)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return line{}, fmt.Errorf("%w (killed at the deadline)", ErrTimeout)
		case errors.Is(err, io.EOF):
			if n == 0 && bytes.IndexByte(buf, '\n') < 0 {
				return line{}, ErrNoAnswer
			}
		default:
			return line{}, err
		}
	}
}

// readUntil reads r until EOF, the deadline or max bytes, keeping at most max.
func readUntil(r *os.File, dl time.Time, max int) []byte {
	_ = r.SetReadDeadline(dl)
	var out []byte
	chunk := make([]byte, 4096)
	for {
		n, err := r.Read(chunk)
		if len(out) < max {
			out = append(out, chunk[:min(n, max-len(out))]...)
		}
		if err != nil {
			return out
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DecodeStrict decodes exactly one JSON value with no unknown fields: how both sides read what
// crosses the privilege boundary.
func DecodeStrict(data []byte, v any) error {
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

// sanitize keeps a child's text safe for a log line (oneline.Sanitize, 1 KiB).
func sanitize(s string) string { return oneline.Sanitize(s, 1024) }

// Serve is the child's side, the whole of a re-executed process's work: it makes the process
// non-dumpable when it runs as someone other than root, parses arg (the envelope Call built),
// runs handle with a context bounded by the child's deadline and an emit function for item
// lines, and writes the final result or error line on out. It returns the write error only.
func Serve(arg string, out io.Writer, handle func(ctx context.Context, req json.RawMessage, emit func(item any) error) (any, error)) error {
	if os.Geteuid() != 0 {
		// From here on other processes of this user can no longer ptrace this one or copy its
		// descriptors (pidfd_getfd): the protocol's bounds hold either way, this only narrows.
		_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	}
	write := func(l line) error {
		data, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = out.Write(append(data, '\n'))
		return err
	}
	var env envelope
	if len(arg) > MaxRequest {
		return write(line{Error: fmt.Sprintf("request of %d bytes (max %d)", len(arg), MaxRequest)})
	}
	if err := DecodeStrict([]byte(arg), &env); err != nil || env.DeadlineMS <= 0 || env.Request == nil {
		return write(line{Error: fmt.Sprintf("request envelope refused: %v", err)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(env.DeadlineMS)*time.Millisecond)
	defer cancel()
	emit := func(item any) error {
		data, err := json.Marshal(item)
		if err != nil {
			return err
		}
		return write(line{Item: data})
	}
	res, err := handle(ctx, env.Request, emit)
	if err != nil {
		msg := err.Error()
		if msg == "" {
			msg = "failed"
		}
		return write(line{Error: msg})
	}
	if res == nil {
		res = struct{}{}
	}
	data, err := json.Marshal(res)
	if err != nil {
		return write(line{Error: err.Error()})
	}
	return write(line{Result: data})
}
