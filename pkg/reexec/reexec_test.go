package reexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
)

// childArg makes the test binary act as a re-executed child (see TestMain): the mode says what
// the child does, the request is the last argument.
const childArg = "reexec-test-child"

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == childArg {
		os.Exit(child(os.Args[2], os.Args[3]))
	}
	os.Exit(m.Run())
}

// probe is what the "probe" child reports about itself.
type probe struct {
	UID, GID int
	Groups   []int
	Env      []string
	Cwd      string
	Dumpable int
	FDs      []string
	Request  string
}

func child(mode, arg string) int {
	switch mode {
	case "raw": // protocol breakers: the request names what to print
		var env envelope
		_ = json.Unmarshal([]byte(arg), &env)
		var what string
		_ = json.Unmarshal(env.Request, &what)
		switch what {
		case "garbage":
			fmt.Println("garbage")
		case "huge":
			os.Stdout.Write([]byte(strings.Repeat("x", MaxLine+10)))
		case "two fields":
			fmt.Println(`{"result":{},"error":"x"}`)
		case "nothing":
		case "unknown field":
			fmt.Println(`{"result":{"bogus":1}}`)
		}
		return 3
	case "hold": // a process of the user holds the answer pipe (what pidfd_getfd gives it)
		holder := exec.Command("/bin/sleep", holderArg(os.Getppid()))
		holder.Stdout = os.Stdout
		holder.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // out of the child's group
		_ = holder.Start()
		fmt.Fprintln(os.Stderr, "holder", holder.Process.Pid)
	}
	err := Serve(arg, os.Stdout, func(ctx context.Context, req json.RawMessage, emit func(any) error) (any, error) {
		switch mode {
		case "probe":
			p := probe{UID: os.Getuid(), GID: os.Getgid(), Env: os.Environ(), Request: string(req)}
			p.Groups, _ = os.Getgroups()
			p.Cwd, _ = os.Getwd()
			p.Dumpable, _ = unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
			ents, _ := os.ReadDir("/proc/self/fd")
			for _, e := range ents {
				target, _ := os.Readlink("/proc/self/fd/" + e.Name())
				p.FDs = append(p.FDs, e.Name()+"="+target)
			}
			return p, nil
		case "items":
			for i := 0; i < 3; i++ {
				if err := emit(i); err != nil {
					return nil, err
				}
			}
			return "done", nil
		case "items then hang":
			_ = emit(1)
			<-time.After(time.Minute)
			return nil, nil
		case "hang":
			<-time.After(time.Minute)
			return nil, nil
		case "deadline":
			<-ctx.Done()
			return nil, fmt.Errorf("stopped: %w", ctx.Err())
		case "fail":
			return nil, errors.New("line one\nforged line")
		}
		return "ok", nil
	})
	if err != nil {
		return 1
	}
	if mode == "hold and hang" {
		<-time.After(time.Minute)
	}
	return 0
}

func self(mode string) Command { return Command{Args: []string{childArg, mode}} }

func TestItemsAndResult(t *testing.T) {
	var items []int
	var res string
	err := self("items").Call(context.Background(), nil, "req", func(raw json.RawMessage) error {
		var i int
		items = append(items, 0)
		return json.Unmarshal(raw, &i)
	}, &res)
	if err != nil || res != "done" || len(items) != 3 {
		t.Errorf("err %v, result %q, %d items", err, res, len(items))
	}
	if err := self("items").Call(context.Background(), nil, "req", nil, &res); !errors.Is(err, ErrBadAnswer) {
		t.Errorf("items without a callback: %v", err)
	}
}

func TestChildRunsAsTheUserWithNothingInherited(t *testing.T) {
	testutil.RequireRoot(t)
	u := testutil.TestUser(t, "ffltest1")
	// A descriptor this process got without close-on-exec (as from slurmd) must not reach it.
	secret, err := os.CreateTemp("", "reexec-secret-")
	testutil.Must(t, err, "temp file")
	defer os.Remove(secret.Name())
	fd, err := unix.Dup(int(secret.Fd()))
	testutil.Must(t, err, "dup")
	defer unix.Close(fd)
	var p probe
	cred := &Credential{UID: u.UID, GID: u.GID, Groups: []int{u.GID}}
	if err := self("probe").Call(context.Background(), cred, map[string]int{"x": 1}, nil, &p); err != nil {
		t.Fatal(err)
	}
	if p.UID != u.UID || p.GID != u.GID || len(p.Groups) != 1 || p.Groups[0] != u.GID {
		t.Errorf("credentials: %+v", p)
	}
	if len(p.Env) != 0 || p.Cwd != "/" || p.Dumpable != 0 || p.Request != `{"x":1}` {
		t.Errorf("env %q, cwd %q, dumpable %d, request %q", p.Env, p.Cwd, p.Dumpable, p.Request)
	}
	for _, f := range p.FDs {
		if strings.Contains(f, secret.Name()) {
			t.Errorf("the child inherited %s", f)
		}
	}
	if err := self("probe").Call(context.Background(), &Credential{UID: 0}, nil, nil, nil); err == nil {
		t.Error("dropped to uid 0")
	}
}

func TestProtocolBreakers(t *testing.T) {
	for _, what := range []string{"garbage", "huge", "two fields", "nothing", "unknown field"} {
		t.Run(what, func(t *testing.T) {
			var res struct{}
			err := self("raw").Call(context.Background(), nil, what, nil, &res)
			if err == nil {
				t.Error("accepted")
			}
			t.Log(err)
		})
	}
	err := self("fail").Call(context.Background(), nil, nil, nil, nil)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("error line: %q", err)
	}
}

// TestBounds: whatever the child does, Call returns by the deadline plus KillWait (plus a
// generous margin for a loaded machine), and what the child streamed before is kept.
func TestBounds(t *testing.T) {
	const timeout = 700 * time.Millisecond
	for _, tc := range []struct {
		mode    string
		want    error
		items   int
		holding bool
	}{
		{"hang", ErrTimeout, 0, false},
		{"items then hang", ErrTimeout, 1, false},
		{"deadline", nil, 0, false}, // answers with its error before the parent's deadline
		{"hold", nil, 0, true},      // answered; a process holds the pipe: no wait for EOF
		{"hold and hang", nil, 0, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			items := 0
			t0 := time.Now()
			err := self(tc.mode).Call(ctx, nil, nil, func(json.RawMessage) error { items++; return nil }, nil)
			took := time.Since(t0)
			t.Logf("%s: %v after %s", tc.mode, err, took)
			if took > timeout+KillWait+time.Second {
				t.Errorf("returned after %s", took)
			}
			switch {
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("err %v, want %v", err, tc.want)
			case tc.mode == "deadline" && (err == nil || !strings.Contains(err.Error(), "stopped")):
				t.Errorf("err %v, want the child's own deadline error", err)
			case tc.holding && err != nil:
				t.Errorf("err %v", err)
			}
			if items != tc.items {
				t.Errorf("%d items, want %d", items, tc.items)
			}
			if tc.holding {
				killHolders(t)
			}
		})
	}
}

// holderArg is the pipe holder's sleep argument, unique to one test process.
func holderArg(testPID int) string { return "30.0" + strconv.Itoa(testPID) }

// killHolders ends this test process's pipe holders (children of init once their parent is
// gone): tests disarm what they arm.
func killHolders(t *testing.T) {
	want := "/bin/sleep\x00" + holderArg(os.Getpid()) + "\x00"
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// comm first: only sleep's command lines are read (a hostile test elsewhere may have a
		// process whose memory reads block).
		if comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm"); strings.TrimSpace(string(comm)) != "sleep" {
			continue
		}
		if cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); string(cmd) == want {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
