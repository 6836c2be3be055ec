package reclaim

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/account"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/slurmenv"
)

func accountOf(u testUser) account.Account {
	return account.Account{Name: u.name, UID: u.uid, GID: u.gid, Groups: []int{u.gid}, Home: u.home}
}

// shHelper runs a shell script as the helper (the request becomes $0); it answers in reexec's
// protocol: {"result": REPORT}.
func shHelper(script string) Helper {
	return Helper{Path: "/bin/sh", Args: []string{"-c", script}}
}

func homeRequest(f *fixture) HelperRequest {
	l := f.layout(f.user, "1")
	return HelperRequest{Op: OpHome, StateDir: l.StateDir, RuntimeDir: l.RuntimeDir, TempDir: l.TempDir, Node: l.Node, Job: "1", BootID: f.bootID}
}

func TestHelperRunsAsTheUserWithNothingInherited(t *testing.T) {
	f := newFixture(t)
	h := shHelper(`printf '{"result":{"removed":["%s|%s|%s|%s|%s"]}}\n' "$(id -u)" "$(id -g)" "$(id -G)" "$(wc -c < /proc/$$/environ)" "$(pwd)"`)
	rep, err := RunHelper(context.Background(), h, accountOf(f.user), f.user.gid, homeRequest(f))
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(f.user.uid) + "|" + strconv.Itoa(f.user.gid) + "|" + strconv.Itoa(f.user.gid) + "|0|/"
	if len(rep.Removed) != 1 || rep.Removed[0] != want {
		t.Errorf("helper saw %q, want %q", rep.Removed, want)
	}
}

func TestHelperRefusesRoot(t *testing.T) {
	testutil.RequireRoot(t)
	ran := filepath.Join(t.TempDir(), "ran")
	_, err := RunHelper(context.Background(), shHelper("touch "+ran), account.Account{Name: "root"}, 0, HelperRequest{})
	if err == nil || testutil.Exists(ran) {
		t.Errorf("helper ran as root (err %v)", err)
	}
}

func TestHelperBadOutput(t *testing.T) {
	f := newFixture(t)
	for name, script := range map[string]string{
		"garbage":       "echo garbage",
		"huge":          "head -c 2000000 /dev/zero",
		"forged counts": `echo '{"result":{"left":-1}}'`,
		"unknown field": `echo '{"result":{"bogus":1}}'`,
		"nothing":       "exit 3",
		"two values":    `echo '{"result":{}}{"result":{}}'`,
	} {
		t.Run(name, func(t *testing.T) {
			rep, err := RunHelper(context.Background(), shHelper(script), accountOf(f.user), f.user.gid, homeRequest(f))
			if err == nil {
				t.Errorf("accepted: %+v", rep)
			}
		})
	}
}

// TestHelperKilledAtDeadline is the hung-NFS case: the helper blocks; Run returns at the
// deadline with ErrHelperTimeout and the helper and what it started are killed.
func TestHelperKilledAtDeadline(t *testing.T) {
	f := newFixture(t)
	marker := "61.5" + strconv.Itoa(os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := RunHelper(ctx, shHelper("sleep "+marker+"; :"), accountOf(f.user), f.user.gid, homeRequest(f))
	if !errors.Is(err, ErrHelperTimeout) {
		t.Fatalf("err = %v, want ErrHelperTimeout", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for procWithArg(marker) {
		if time.Now().After(deadline) {
			t.Fatal("the helper's child survived")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procWithArg reports whether a sleep process has arg in its command line. Only sleep's
// command lines are read: a hostile test elsewhere may have a process whose memory reads block
// (reading a command line is such a read), and every process's would then hang this test.
func procWithArg(arg string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); strings.TrimSpace(string(comm)) != "sleep" {
			continue
		}
		if data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(data), arg) {
			return true
		}
	}
	return false
}

func TestServeHelperChecksItsUID(t *testing.T) {
	testutil.RequireRoot(t)
	req := validRequest() // uid 1000, while this test runs as root
	data, _ := json.Marshal(req)
	if res, err := serveHelper(context.Background(), data, nil); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("helper acted for another uid: %+v, %v", res, err)
	}
	if _, err := serveHelper(context.Background(), []byte("{not json"), nil); err == nil {
		t.Error("garbage request accepted")
	}
}

// TestEpilogHungHelper: a helper that never finishes (a hung NFS home) does not hold up the
// Epilog: it is killed at the deadline, and the node-local part is still removed.
func TestEpilogHungHelper(t *testing.T) {
	f := newFixture(t)
	procs := ids(t, f.tree(f.user, f.layout(f.user, "1101").Marker(8001)))
	f.addSession(sessionSpec{user: f.user, job: "1101", port: 8001, processes: procs})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	res := Epilog(ctx, EpilogParams{
		Job:        slurmenv.Job{ID: "1101", UID: f.user.uid, GID: f.user.gid, User: f.user.name, Node: f.node},
		RuntimeDir: f.runtime, TempDir: f.temp, StateDir: "~/.firefox-launcher", XDir: f.xdir,
		Grace: 100 * time.Millisecond, Helper: shHelper("sleep 120; :"), BootID: f.bootID,
	})
	took := time.Since(start)
	t.Logf("result after %s: %+v", took, res)
	if took > 10*time.Second {
		t.Errorf("the Epilog waited %s for a hung helper", took)
	}
	if !hasLine(res.Problems, "timed out") {
		t.Errorf("no problem line says the helper timed out: %q", res.Problems)
	}
	testutil.WaitGone(t, procs)
	if testutil.Exists(f.layout(f.user, "1101").PreferredRuntimeJobDir()) {
		t.Error("node-local dir not removed after the helper timed out")
	}
	if !testutil.Exists(f.layout(f.user, "1101").HomeJobDir()) {
		t.Error("the home was touched by root")
	}
	_ = layout.StateFile
}
