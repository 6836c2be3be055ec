package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/xpra"
)

// TestRealSessionXpra6: the server side of a session with xpra 6 (built from PyPI's source
// release by scripts/xpra6.sh; `make e2e-xpra6` does both), FFL_XPRA6 naming its xpra. It
// proves that ffl's command line is one xpra 6 accepts (no --dbus-proxy, --websocket-upgrade
// and --http on), that xpra 6 serves HTTP on ffl's unix socket, that the control client's
// rencodeplus show-all-windows request is answered (the launcher reports ready only once
// Firefox's window is mapped and painted, read from the X server), and that SIGTERM ends
// everything: exit 143, no process, directory or port left; and that after a SIGKILLed launcher
// the Epilog ends and removes the xpra 6 session. Also that xpra 6 runs no command for a client
// (--start-new-commands=no), asked in rencodeplus on its own socket.
//
// Not tested here: the HTML5 client of xpra 6 in a browser. xpra 4 and later ship it as the
// separate package xpra-html5, which is in neither Debian, PyPI nor npm; the only web root on
// these machines is Debian's xpra 3.1 client, which does not speak xpra 6's protocol.
func TestRealSessionXpra6(t *testing.T) {
	xp := os.Getenv("FFL_XPRA6")
	if xp == "" {
		t.Skip("FFL_XPRA6 unset: `make e2e-xpra6` builds xpra 6 and runs this test")
	}
	require(t, "firefox-esr", "Xvfb")
	out, err := exec.Command(xp, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "xpra v6.") {
		t.Fatalf("%s --version: %q, %v (want xpra 6)", xp, out, err)
	}
	t.Logf("xpra under test: %s", strings.TrimSpace(string(out)))
	e := newEnv(t, "ffltest", "9061", map[string]string{"xpra": strconv.Quote(xp)})
	l := e.run("--url", e.colorPage(t))
	info := l.ready(t)
	if info.HTTPMS <= 0 || info.WindowMS < info.HTTPMS {
		t.Errorf("readiness figures http_ms=%d window_ms=%d: want 0 < http_ms <= window_ms", info.HTTPMS, info.WindowMS)
	}
	t.Logf("ready with xpra 6: http_ms=%d window_ms=%d", info.HTTPMS, info.WindowMS)
	// xpra 6 serves HTTP through ffl's door to the session's user.
	if code := httpAs(e.user, info.URL); code != 200 {
		t.Errorf("the owner got HTTP %d from xpra 6, want 200", code)
	}
	// No client can make xpra 6 run a command (--start-new-commands=no), even one past the door:
	// root on xpra's own unix socket, speaking rencodeplus, asks for start and start-child, and
	// tries to turn the feature back on first. Each is refused in the answer, and nothing ran.
	sock := filepath.Join(e.layout().FallbackRuntimeJobDir(), layout.SessionDirName(info.Port), "xpra", "ffl.sock")
	marker := filepath.Join(e.dir, "xpra6-start-ran")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, req := range [][]string{
		{"start", "echo ran >> " + marker},
		{"start-child", "/bin/sh", "-c", "echo ran >> " + marker},
		{"toggle-feature", "start-new-commands", "1"},
		{"start", "echo ran >> " + marker},
	} {
		text, err := xpra.Control(ctx, sock, xpra.RencodePlus, req...)
		t.Logf("control %q: %q, %v", req[0], text, err)
		var ce *xpra.CommandError
		if req[0] != "toggle-feature" && !errors.As(err, &ce) {
			t.Errorf("xpra 6 answered control %q with %q, %v: want a refusal", req[0], text, err)
		}
	}
	assertNoMarker(t, marker)

	code, took := l.stop(t, syscall.SIGTERM)
	t.Logf("SIGTERM to exit: %v", took)
	if code != 143 {
		t.Errorf("exit code %d, want 143", code)
	}
	e.assertNothingLeft(t, info.Port)

	// Slurm's end of a job whose launcher was SIGKILLed: xpra 6's session is still running, and
	// the Epilog (as root, the way slurmd runs it) ends and removes it.
	e2 := newEnv(t, "ffltest", "9062", map[string]string{"xpra": strconv.Quote(xp)})
	l2 := e2.run("--url", e2.colorPage(t))
	info2 := l2.ready(t)
	testutil.Must(t, l2.cmd.Process.Kill(), "SIGKILL the launcher")
	<-l2.done
	if ids, _ := proc.FindByMarker(e2.user.UID, layout.MarkerVar, e2.layout().JobMarkerPrefix()); len(ids) == 0 {
		t.Fatal("no session process left after the launcher's SIGKILL: the Epilog would have nothing to do")
	}
	epilog := exec.Command(testutil.Build(t, "github.com/ffl-hpc/ffl/cmd/ffl-epilog"), "--config", e2.cfg, "--job", e2.job, "--user", e2.user.Name)
	epilog.Env = []string{"PATH=/usr/bin:/bin", "SLURMD_NODENAME=" + e2.node}
	if out, err := epilog.CombinedOutput(); err != nil {
		t.Fatalf("ffl-epilog: %v\n%s", err, out)
	}
	e2.assertNothingLeft(t, info2.Port)
}
