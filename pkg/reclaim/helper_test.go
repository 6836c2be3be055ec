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

	"github.com/ffl-hpc/ffl/internal/reclaimtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/account"
)

func accountOf(u reclaimtest.User) account.Account {
	return account.Account{Name: u.Name, UID: u.UID, GID: u.GID, Groups: []int{u.GID}, Home: u.Home}
}

func homeRequest(f *reclaimtest.Fixture) HelperRequest {
	l := f.Layout(f.User, "1")
	return HelperRequest{Op: OpHome, StateDir: l.StateDir, RuntimeDir: l.RuntimeDir, TempDir: l.TempDir, Node: l.Node, Job: "1", BootID: f.BootID}
}

func TestHelperRunsAsTheUserWithNothingInherited(t *testing.T) {
	f := newFixture(t)
	h := reclaimtest.ShHelper(`printf '{"result":{"removed":["%s|%s|%s|%s|%s"]}}\n' "$(id -u)" "$(id -g)" "$(id -G)" "$(wc -c < /proc/$$/environ)" "$(pwd)"`)
	rep, err := RunHelper(context.Background(), h, accountOf(f.User), f.User.GID, homeRequest(f))
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(f.User.UID) + "|" + strconv.Itoa(f.User.GID) + "|" + strconv.Itoa(f.User.GID) + "|0|/"
	if len(rep.Removed) != 1 || rep.Removed[0] != want {
		t.Errorf("helper saw %q, want %q", rep.Removed, want)
	}
}

func TestHelperRefusesRoot(t *testing.T) {
	testutil.RequireRoot(t)
	ran := filepath.Join(t.TempDir(), "ran")
	_, err := RunHelper(context.Background(), reclaimtest.ShHelper("touch "+ran), account.Account{Name: "root"}, 0, HelperRequest{})
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
			rep, err := RunHelper(context.Background(), reclaimtest.ShHelper(script), accountOf(f.User), f.User.GID, homeRequest(f))
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
	_, err := RunHelper(ctx, reclaimtest.ShHelper("sleep "+marker+"; :"), accountOf(f.User), f.User.GID, homeRequest(f))
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
