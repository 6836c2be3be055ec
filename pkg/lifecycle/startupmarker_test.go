package lifecycle

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/layout"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// TestEndStartupTracking: the marker goes, nothing else of the profile does, and a profile that
// is a symlink or writable by others is refused without touching what it points to.
func TestEndStartupTracking(t *testing.T) {
	uid := os.Getuid()
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, state string) (profile, victim string)
		wantErr bool
	}{
		{"marker present", func(t *testing.T, state string) (string, string) {
			p := mkProfile(t, state, 0o700)
			testutil.Must(t, os.WriteFile(filepath.Join(p, StartupMarker), nil, 0o644), "marker")
			return p, ""
		}, false},
		{"no marker", func(t *testing.T, state string) (string, string) {
			return mkProfile(t, state, 0o700), ""
		}, false},
		{"marker is a symlink: the link goes, not its target", func(t *testing.T, state string) (string, string) {
			p := mkProfile(t, state, 0o700)
			victim := filepath.Join(state, "victim")
			testutil.Must(t, os.WriteFile(victim, []byte("keep"), 0o600), "victim")
			testutil.Must(t, os.Symlink(victim, filepath.Join(p, StartupMarker)), "link")
			return p, victim
		}, false},
		{"profile is a symlink", func(t *testing.T, state string) (string, string) {
			real := filepath.Join(state, "real")
			testutil.Must(t, os.Mkdir(real, 0o700), "real")
			testutil.Must(t, os.WriteFile(filepath.Join(real, "prefs.js"), []byte("// prefs\n"), 0o600), "prefs")
			victim := filepath.Join(real, StartupMarker)
			testutil.Must(t, os.WriteFile(victim, nil, 0o644), "marker")
			link := filepath.Join(state, layout.ProfileDir)
			testutil.Must(t, os.Symlink(real, link), "link")
			return link, victim
		}, true},
		{"profile writable by others", func(t *testing.T, state string) (string, string) {
			p := mkProfile(t, state, 0o777)
			testutil.Must(t, os.Chmod(p, 0o777), "chmod")
			victim := filepath.Join(p, StartupMarker)
			testutil.Must(t, os.WriteFile(victim, nil, 0o644), "marker")
			return p, victim
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			profile, victim := tt.prepare(t, state)
			keep := filepath.Join(profile, "prefs.js")
			err := endStartupTracking(state, uid)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && testutil.Exists(filepath.Join(profile, StartupMarker)) {
				t.Error("marker left")
			}
			if victim != "" && !testutil.Exists(victim) {
				t.Errorf("%s was removed", victim)
			}
			if !testutil.Exists(keep) {
				t.Error("prefs.js was removed")
			}
		})
	}
}

// mkProfile makes <state>/profile with a prefs.js in it.
func mkProfile(t *testing.T, state string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(state, layout.ProfileDir)
	testutil.Must(t, os.Mkdir(p, mode), "profile")
	testutil.Must(t, os.WriteFile(filepath.Join(p, "prefs.js"), []byte("// prefs\n"), 0o600), "prefs")
	return p
}

// TestStopEndsStartupTracking: a session ffl stops whose processes all end from the TERM takes
// Firefox's start marker out of the persistent profile, as Firefox's own quit would; a session
// whose processes needed a KILL, or that ended before ffl's TERM (closed, or crashed), leaves
// it to Firefox's own recovery.
func TestStopEndsStartupTracking(t *testing.T) {
	faketree, fakexpra, dir, ok := asUser(t, "TestStopEndsStartupTracking")
	if !ok {
		return
	}
	if err := proc.SetChildSubreaper(); err != nil {
		t.Fatal(err)
	}
	for i, tt := range []struct {
		name, mode  string
		endedBefore bool
		wantMarker  bool
	}{
		{"stopped, all ended from the TERM", "compliant,no-tree", false, false},
		{"stopped, a process needed KILL", "", false, true},
		{"ended before the stop", "compliant,no-tree", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := testManager(t, faketree, fakexpra, filepath.Join(dir, "s"+strconv.Itoa(i)), "78", tt.mode, 300*time.Millisecond)
			m.s.PersistentProfile = true
			l := m.s.Layout
			testutil.Must(t, os.MkdirAll(l.StateDir, 0o700), "state")
			profile := mkProfile(t, l.StateDir, 0o700)
			marker := filepath.Join(profile, StartupMarker)
			testutil.Must(t, os.WriteFile(marker, nil, 0o644), "marker")
			ctx := context.Background()
			info, err := m.Start(ctx, StartRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if tt.endedBefore {
				s := m.session(info.Port)
				_, id := s.started()
				testutil.Must(t, proc.Signal(id, unix.SIGTERM), "TERM xpra")
				select {
				case <-s.exited:
				case <-time.After(10 * time.Second):
					t.Fatal("xpra did not exit")
				}
			}
			if err := m.StopAll(ctx); err != nil && !tt.wantMarker {
				t.Fatalf("stop: %v", err)
			}
			if got := testutil.Exists(marker); got != tt.wantMarker {
				t.Errorf("marker there = %v, want %v", got, tt.wantMarker)
			}
			if !testutil.Exists(filepath.Join(profile, "prefs.js")) {
				t.Error("prefs.js was removed")
			}
			testutil.Must(t, m.Close(), "close")
		})
	}
}
