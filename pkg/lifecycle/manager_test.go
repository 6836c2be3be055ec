package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"github.com/ffl-hpc/ffl/pkg/xpra"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/front"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// asUser runs the named test as a non-root user when the suite runs as root: session processes
// of root are refused by design, exactly as in production.
func asUser(t *testing.T, name string) (faketree, fakexpra, dir string, ok bool) {
	t.Helper()
	if testutil.IsChild() || os.Getuid() != 0 {
		if testutil.IsChild() {
			return os.Getenv("FFL_T_FAKETREE"), os.Getenv("FFL_T_FAKEXPRA"), os.Getenv("FFL_T_DIR"), true
		}
		return testutil.Build(t, "github.com/ffl-hpc/ffl/internal/faketree"), testutil.Build(t, "github.com/ffl-hpc/ffl/internal/fakexpra"), t.TempDir(), true
	}
	u := testutil.TestUser(t, "ffltest")
	ft := testutil.Build(t, "github.com/ffl-hpc/ffl/internal/faketree")
	fx := testutil.Build(t, "github.com/ffl-hpc/ffl/internal/fakexpra")
	d := testutil.UserDir(t, u)
	testutil.RunTestAs(t, u, name, "FFL_T_FAKETREE="+ft, "FFL_T_FAKEXPRA="+fx, "FFL_T_DIR="+d)
	return "", "", "", false
}

func freeRange(t *testing.T, n int) (int, int) {
	t.Helper()
	for try := 0; try < 50; try++ {
		lo := 20000 + rand.IntN(20000)
		ok := true
		for p := lo; p < lo+n; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return lo, lo + n - 1
		}
	}
	t.Fatal("no free port range")
	return 0, 0
}

// testManager is a manager over fake xpra sessions, with its own running Reaper (the test
// process is made a child subreaper by the tests that need one).
func testManager(t *testing.T, faketree, fakexpra, dir, job, mode string, grace time.Duration) *Manager {
	t.Helper()
	r := proc.NewReaper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.Run(ctx)
	return newTestManager(t, faketree, fakexpra, dir, job, mode, grace, r)
}

// newTestManager is testManager with the given Reaper (nil: none). A process must run at most
// one Reaper: each knows only the children it owns, so a second one reaps the first one's
// children (a supervisor's wrapped command) before their cmd.Wait, which then fails with
// ECHILD.
func newTestManager(t *testing.T, faketree, fakexpra, dir, job, mode string, grace time.Duration, r *proc.Reaper) *Manager {
	t.Helper()
	lo, hi := freeRange(t, 8)
	self, err := proc.Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	m, err := NewManager(Settings{
		Config: Config{
			Xpra:           fakexpra,
			XpraArgs:       []string{"--fakexpra-faketree=" + faketree, "--fakexpra-mode=" + mode},
			Firefox:        "/bin/true",
			BindAddress:    "127.0.0.1",
			PortMin:        lo,
			PortMax:        hi,
			MaxSessions:    4,
			StartTimeout:   30 * time.Second,
			CleanupTimeout: grace,
		},
		JobIdentity: JobIdentity{
			Layout: layout.Layout{StateDir: filepath.Join(dir, "home", ".firefox-launcher"), RuntimeDir: filepath.Join(dir, "run-ffl"), TempDir: tmp, UID: os.Getuid(), Node: "n1", JobKey: job},
			User:   "tester",
			BootID: "test-boot",
			Self:   self,
		},
		Deps:  Deps{Log: logrus.NewEntry(log), Reaper: r},
		Seams: Seams{Probe: HTTPProbe{}, DrawCheck: func(context.Context, string, string) error { return nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func markerProcs(t *testing.T, marker string) []proc.Identity {
	t.Helper()
	ids, err := proc.FindByMarker(os.Getuid(), layout.MarkerVar, marker)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestStopOneSessionLeavesTheOther: a session tree with a TERM-ignoring child and a daemonized
// grandchild is gone after Stop, with its directories, while a second session of the same user
// and job beside it keeps every process and directory.
func TestStopOneSessionLeavesTheOther(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestStopOneSessionLeavesTheOther")
	if !ok {
		return
	}
	if err := proc.SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"", "compliant", "ignore-term"} {
		t.Run("mode="+mode, func(t *testing.T) {
			m := testManager(t, faketree, fakexpra, filepath.Join(dir, "m"+mode), "77", mode, 500*time.Millisecond)
			ctx := context.Background()
			a, err := m.Start(ctx, StartRequest{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Start(ctx, StartRequest{})
			if err != nil {
				t.Fatal(err)
			}
			l := m.s.Layout
			ma, mb := l.Marker(a.Port), l.Marker(b.Port)
			// The tree is complete when fakexpra, faketree's root and child, and the daemon are up
			// and faketree's short-lived intermediate is gone: the daemon then has reparented to
			// this process (the subreaper), beside xpra.
			treeUp := func(mk string) bool {
				ids := markerProcs(t, mk)
				ours := 0
				for _, id := range ids {
					if st, err := proc.ReadStat(id.PID); err == nil && st.PPID == os.Getpid() {
						ours++
					}
				}
				return len(ids) == 4 && ours == 2
			}
			for _, mk := range []string{ma, mb} {
				if !testutil.Eventually(20*time.Second, func() bool { return treeUp(mk) }) {
					t.Fatalf("session %s: tree never came up: %v", mk, markerProcs(t, mk))
				}
			}
			before := markerProcs(t, mb)
			if err := m.Stop(ctx, a.Port); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if left := markerProcs(t, ma); len(left) != 0 {
				t.Errorf("session A left processes: %v", left)
			}
			for _, p := range []string{l.HomeSessionDir(a.Port), filepath.Join(m.RuntimeDir(), layout.SessionDirName(a.Port))} {
				if testutil.Exists(p) {
					t.Errorf("session A dir left: %s", p)
				}
			}
			for _, id := range before {
				if !id.Alive() {
					t.Errorf("session B process %v was ended by A's stop", id)
				}
			}
			for _, p := range []string{l.HomeSessionDir(b.Port), filepath.Join(m.RuntimeDir(), layout.SessionDirName(b.Port), layout.StateFile)} {
				if !testutil.Exists(p) {
					t.Errorf("session B lost %s", p)
				}
			}
			if err := m.StopAll(ctx); err != nil {
				t.Fatalf("stop all: %v", err)
			}
			if left := markerProcs(t, l.JobMarkerPrefix()); len(left) != 0 {
				t.Errorf("job left processes: %v", left)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := m.RemoveRuntimeJobDir(); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{l.HomeJobDir(), l.FallbackRuntimeJobDir()} {
				if testutil.Exists(p) {
					t.Errorf("left behind: %s", p)
				}
			}
			if !testutil.PortFree(a.Port) || !testutil.PortFree(b.Port) {
				t.Errorf("ports still held")
			}
		})
	}
}

// TestStartErrors covers bad requests: nothing of a refused or failed start is left.
func TestStartErrors(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestStartErrors")
	if !ok {
		return
	}
	m := testManager(t, faketree, fakexpra, dir, "78", "no-tree", time.Second)
	ctx := context.Background()
	if _, err := m.Start(ctx, StartRequest{Port: 80}); !errors.Is(err, ErrBadInput) {
		t.Errorf("port outside range: got %v, want ErrBadInput", err)
	}
	busy, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", m.s.PortMin))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := m.Start(ctx, StartRequest{Port: m.s.PortMin}); !errors.Is(err, ErrBadInput) || !errors.Is(err, ErrPortInUse) {
		t.Errorf("port in use: got %v", err)
	}
	if entries, _ := os.ReadDir(m.RuntimeDir()); len(entries) != 0 {
		t.Errorf("refused starts left entries in %s: %v", m.RuntimeDir(), entries)
	}
	info, err := m.Start(ctx, StartRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Port == m.s.PortMin {
		t.Errorf("got the busy port")
	}
	if err := m.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(m.RuntimeDir()); len(entries) != 0 {
		t.Errorf("left entries in %s: %v", m.RuntimeDir(), entries)
	}
}

func TestShellJoin(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"firefox-esr", "--profile", "/home/a b/p"}, `firefox-esr --profile '/home/a b/p'`},
		{[]string{"x", "it's"}, `x 'it'\''s'`},
		{[]string{"about:blank"}, `about:blank`},
		{[]string{""}, `''`},
		{[]string{"$(rm -rf ~)"}, `'$(rm -rf ~)'`},
	} {
		if got := shellJoin(c.in); got != c.want {
			t.Errorf("shellJoin(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestXpraArgsConfine(t *testing.T) {
	p := sessionPaths{Home: "/h/s", Runtime: "/r/s"}
	args := xpraArgs(xpra.Version{Major: 3, Minor: 1, Micro: 3}, p, 3, "1920x1080", []string{"firefox-esr"}, []string{"--extra"})
	want := map[string]bool{"--daemon=no": true, "--systemd-run=no": true, "--start-new-commands=no": true, "--bind=/r/s/xpra/ffl.sock": true,
		"--socket-dir=/r/s/xpra": true, "--displayfd=3": true, "--extra": true, "--opengl=noprobe": true,
		"--xvfb=" + xvfbCommand("1920x1080"): true}
	for _, a := range args {
		delete(want, a)
		if strings.HasPrefix(a, "--bind-tcp") || strings.HasPrefix(a, "--tcp-auth") || strings.HasPrefix(a, "--auth") {
			t.Errorf("xpra must listen on its unix socket only, got %q", a)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing args: %v in %v", want, args)
	}
	if last := args[len(args)-1]; !strings.HasPrefix(last, "--start-child=") {
		t.Errorf("--start-child must come last (after xpra_args), got %q", last)
	}
	env := xpraEnv(p, "u", "/bin", "", "1/n/8001/")
	if env[0] != layout.MarkerVar+"=1/n/8001/" {
		t.Errorf("the marker must be the first variable, env %v", env)
	}
	ff := firefoxCommand("firefox-esr", p, p.profile(), "", nil, []string{"about:blank"})
	if ff[0] != "/bin/sh" || ff[2] != "exec firefox-esr --no-remote --new-instance --profile /h/s/profile about:blank >>/r/s/firefox.log 2>&1" {
		t.Errorf("firefox command %q", ff)
	}
	// With the user's home: Firefox (only Firefox, not xpra) runs there, on the given profile,
	// the notice page first.
	ff = firefoxCommand("firefox-esr", p, "/home/u x/.firefox-launcher/profile", "/home/u x", nil, []string{"file:///h/s/notice.html", "http://x/"})
	if want := "cd '/home/u x' && HOME='/home/u x' exec firefox-esr --no-remote --new-instance --profile '/home/u x/.firefox-launcher/profile' file:///h/s/notice.html http://x/ >>/r/s/firefox.log 2>&1"; ff[2] != want {
		t.Errorf("firefox command with home\n got %q\nwant %q", ff[2], want)
	}
}

// TestPortsHeldFromThePick: a session's port is bound by ffl when it is picked, so nobody else
// can take it while the session lives; ports somebody else holds are skipped; with every port
// of the range taken the start fails, naming the cause, and leaves nothing.
func TestPortsHeldFromThePick(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestPortsHeldFromThePick")
	if !ok {
		return
	}
	m := testManager(t, faketree, fakexpra, dir, "79", "no-tree", time.Second)
	var busy []net.Listener
	defer func() {
		for _, l := range busy {
			l.Close()
		}
	}()
	for p := m.s.PortMin; p < m.s.PortMax; p++ {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		busy = append(busy, l)
		// Both families, as other sessions hold them: a port held on one family alone is
		// still a session's when nothing else is free (pickPort's second pass).
		if l6, err := net.Listen("tcp", "[::1]:"+strconv.Itoa(p)); err == nil {
			busy = append(busy, l6)
		}
	}
	ctx := context.Background()
	info, err := m.Start(ctx, StartRequest{})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if info.Port != m.s.PortMax {
		t.Errorf("port %d, want the only free one %d", info.Port, m.s.PortMax)
	}
	if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(info.Port)); err == nil {
		l.Close()
		t.Errorf("port %d of a live session could be bound by someone else", info.Port)
	}
	if _, err := m.Start(ctx, StartRequest{}); !errors.Is(err, ErrPortInUse) || !errors.Is(err, ErrBadInput) {
		t.Errorf("all ports taken: got %v, want ErrPortInUse", err)
	}
	if entries, _ := os.ReadDir(m.RuntimeDir()); len(entries) != 1 {
		t.Errorf("the refused start left entries: %v", entries)
	}
	if err := m.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if !testutil.PortFree(info.Port) {
		t.Errorf("port %d still held after the stop", info.Port)
	}
}

// TestFailedStart: xpra dying before it is ready is a StartError quoting its last line; nothing
// of the attempt is left and its port is free again.
func TestFailedStart(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestFailedStart")
	if !ok {
		return
	}
	m := testManager(t, faketree, fakexpra, dir, "81", "no-tree,exit-early", time.Second)
	_, err := m.Start(context.Background(), StartRequest{Port: m.s.PortMin})
	var se *StartError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "exiting early as asked") {
		t.Fatalf("got %v, want a StartError quoting xpra", err)
	}
	if entries, _ := os.ReadDir(m.RuntimeDir()); len(entries) != 0 {
		t.Errorf("failed start left entries: %v", entries)
	}
	if testutil.Exists(m.s.Layout.HomeSessionDir(m.s.PortMin)) {
		t.Errorf("failed start left its home dir")
	}
	if !testutil.PortFree(m.s.PortMin) {
		t.Errorf("failed start kept its port")
	}
	if err := CheckStartURL(context.Background(), "file:///nonexistent/page.html"); !errors.Is(err, ErrBadInput) {
		t.Errorf("missing start page: %v", err)
	}
	if err := CheckStartURL(context.Background(), "http://127.0.0.1:1/"); !errors.Is(err, ErrBadInput) {
		t.Errorf("refused start page: %v", err)
	}
	if err := CheckStartURL(context.Background(), "about:blank"); err != nil {
		t.Errorf("about:blank: %v", err)
	}
}

// TestReuseWhileStopping: a start with Reuse (the proxy command, or an owner's visit to the
// idle proxy port, which the HTML5 client makes at once when its session goes) that finds the
// port's session being stopped waits until it is gone and gets a new one. It used to get "the
// session ended": a visit's on-demand start then failed, and the port stayed idle for good
// (the front asks once per idle period). The Reuse start is made while the stop is held in its
// grace step; it finds the stopping session unless it is scheduled only after the whole stop.
func TestReuseWhileStopping(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestReuseWhileStopping")
	if !ok {
		return
	}
	if err := proc.SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	m := testManager(t, faketree, fakexpra, dir, "82", "no-tree", 500*time.Millisecond)
	inGrace, goOn := make(chan struct{}), make(chan struct{})
	var once sync.Once
	m.s.Failpoint = func(step string) {
		if step == StepGrace {
			once.Do(func() { close(inGrace); <-goOn })
		}
	}
	f, err := m.Bind(nil, "secret")
	if err != nil {
		t.Fatal(err)
	}
	m.Lend(f)
	defer func() {
		_ = m.StopAll(context.Background())
		_ = f.Close()
		_ = m.Close()
		_ = m.RemoveRuntimeJobDir()
	}()
	ctx := context.Background()
	req := StartRequest{Port: f.Port(), Reuse: true}
	first, err := m.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop(ctx, first.Port) }()
	<-inGrace
	type result struct {
		info Info
		err  error
	}
	reused := make(chan result, 1)
	go func() {
		info, err := m.Start(ctx, req)
		reused <- result{info, err}
	}()
	close(goOn)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	r := <-reused
	if r.err != nil {
		t.Fatalf("Reuse start during a stop: %v, want a new session", r.err)
	}
	if r.info.PID == first.PID || f.State() != front.Ready {
		t.Errorf("got session %+v (front %v), want a new one, ready, after %+v", r.info, f.State(), first)
	}
}

// TestXpraArgsPerVersion: the options whose existence changed between xpra 3.1 and 6.x are
// passed exactly where that version's option parser has them (docs/XPRA.md), and the defences
// every version has are always there.
func TestXpraArgsPerVersion(t *testing.T) {
	p := sessionPaths{Home: "/h/s", Runtime: "/r/s"}
	for _, tc := range []struct {
		version      string
		with, absent []string
	}{
		{"xpra v3.1.3", []string{"--dbus-proxy=no"}, []string{"--websocket-upgrade=yes", "--http=yes", "--packet-encoders=rencodeplus", "--ssh-upgrade=no", "--ssl-upgrade=no", "--rdp-upgrade=no"}},
		{"xpra v4.4.6", []string{"--dbus-proxy=no"}, []string{"--websocket-upgrade=yes", "--http=yes", "--packet-encoders=rencodeplus", "--ssh-upgrade=no"}},
		{"xpra v5.1.6", []string{"--dbus-proxy=no", "--packet-encoders=rencodeplus", "--ssh-upgrade=no"}, []string{"--websocket-upgrade=yes", "--http=yes", "--ssl-upgrade=no", "--rdp-upgrade=no"}},
		{"xpra v6.0", []string{"--websocket-upgrade=yes", "--packet-encoders=rencodeplus", "--ssh-upgrade=no", "--ssl-upgrade=no"}, []string{"--dbus-proxy=no", "--http=yes", "--rdp-upgrade=no"}},
		{"xpra v6.2.5", []string{"--websocket-upgrade=yes", "--packet-encoders=rencodeplus", "--ssh-upgrade=no", "--ssl-upgrade=no"}, []string{"--dbus-proxy=no", "--http=yes", "--rdp-upgrade=no"}},
		{"xpra v6.3", []string{"--websocket-upgrade=yes", "--http=yes", "--packet-encoders=rencodeplus", "--ssh-upgrade=no", "--ssl-upgrade=no", "--rdp-upgrade=no"}, []string{"--dbus-proxy=no"}},
		{"xpra v6.5.5", []string{"--websocket-upgrade=yes", "--http=yes", "--packet-encoders=rencodeplus", "--ssh-upgrade=no", "--ssl-upgrade=no", "--rdp-upgrade=no"}, []string{"--dbus-proxy=no"}},
	} {
		t.Run(tc.version, func(t *testing.T) {
			v, err := xpra.ParseVersion(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			args := xpraArgs(v, p, 3, "1920x1080", []string{"firefox-esr"}, []string{"--extra"})
			has := map[string]bool{}
			for _, a := range args {
				has[a] = true
			}
			for _, a := range append(tc.with, "--start-new-commands=no", "--daemon=no", "--html=on", "--bind=/r/s/xpra/ffl.sock") {
				if !has[a] {
					t.Errorf("%s: %s missing from %v", tc.version, a, args)
				}
			}
			for _, a := range tc.absent {
				if has[a] {
					t.Errorf("%s: %s passed, but that version's parser does not know it", tc.version, a)
				}
			}
			// The admin's xpra_args still come after ffl's defaults, --start-child last.
			if args[len(args)-2] != "--extra" || !strings.HasPrefix(args[len(args)-1], "--start-child=") {
				t.Errorf("%s: order of the tail: %v", tc.version, args[len(args)-2:])
			}
		})
	}
}

func TestIdleArgs(t *testing.T) {
	v3, v6 := xpra.Version{Major: 3, Minor: 1, Micro: 3}, xpra.Version{Major: 6, Minor: 5, Micro: 5}
	for _, tc := range []struct {
		v    xpra.Version
		idle time.Duration
		want []string
	}{
		{v3, 0, nil},
		{v6, 0, nil}, // nothing at all: xpra 6 starts its idle subsystem for either option
		{v3, -time.Second, nil},
		{v3, 30 * time.Minute, []string{"--idle-timeout=1800"}},
		{v3, 20 * time.Second, []string{"--idle-timeout=20"}},
		{v3, 10*time.Second + time.Millisecond, []string{"--idle-timeout=11"}}, // up: never shorter than asked
		{v6, 30 * time.Minute, []string{"--idle-timeout=1800", "--server-idle-timeout=4294967"}},
	} {
		if got := idleArgs(tc.v, tc.idle); !slices.Equal(got, tc.want) {
			t.Errorf("idleArgs(%v, %v) = %q, want %q", tc.v, tc.idle, got, tc.want)
		}
	}
}
