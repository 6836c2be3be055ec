package slurmenv

import (
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// A small fake world: the caller is uid 1000 (alice) with real gid 100; alice's
// NSS primary group is 1001 so that tests can tell the two gid sources apart.
var fakeUsers = map[string]struct{ uid, gid int }{
	"root":  {0, 0},
	"alice": {1000, 1001},
	"bob":   {1002, 1002},
	"weird": {1003, 1003},
}

var errNoUser = errors.New("user: unknown user")

func fakeOpts(env map[string]string) Options {
	return Options{
		Getenv:   func(k string) string { return env[k] },
		Hostname: func() (string, error) { return "n7.cluster.example.org", nil },
		LookupUser: func(name string) (int, error) {
			if u, ok := fakeUsers[name]; ok {
				return u.uid, nil
			}
			return 0, errNoUser
		},
		LookupUID: func(uid int) (string, error) {
			if uid == 1003 {
				return "bad name", nil // NSS may return names we refuse
			}
			for n, u := range fakeUsers {
				if u.uid == uid {
					return n, nil
				}
			}
			return "", errNoUser
		},
		LookupGID: func(uid int) (int, error) {
			for _, u := range fakeUsers {
				if u.uid == uid {
					return u.gid, nil
				}
			}
			return 0, errNoUser
		},
		Getuid: func() int { return 1000 },
		Getgid: func() int { return 100 },
		PID:    4711,
	}
}

// batchEnv is what a batch script of alice's job 123 sees.
func batchEnv() map[string]string {
	return map[string]string{
		EnvJobID: "123", EnvJobIDLegacy: "123", EnvJobUID: "1000", EnvJobUser: "alice",
		EnvNodeName: "n1", EnvClusterName: "linux",
	}
}

// epilogEnv is what slurmd gives the Epilog of bob's job 77 (no PATH/HOME/USER).
func epilogEnv() map[string]string {
	return map[string]string{
		EnvJobID: "77", EnvJobIDLegacy: "77", EnvJobUID: "1002", EnvJobGID: "1002", EnvJobUser: "bob",
		EnvNodeName: "n1", EnvClusterName: "linux", EnvScriptContext: "epilog_slurmd",
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Job
		wantVar string // expected EnvError.Var; "" = success
		wantMsg string // substring of the error
	}{
		{
			name: "outside Slurm: local scope and the caller's identity",
			env:  map[string]string{"USER": "ignored-because-nss-resolves"},
			want: Job{ID: "local-4711", UID: 1000, GID: 100, User: "alice", Node: "n7", Local: true},
		},
		{
			name: "batch job",
			env:  batchEnv(),
			want: Job{ID: "123", UID: 1000, GID: 100, User: "alice", Node: "n1", Cluster: "linux"},
		},
		{
			name: "srun step in an array job",
			env:  with(batchEnv(), EnvStepID, "0", EnvArrayJobID, "120", EnvArrayTaskID, "3", EnvJobGID, "1001"),
			want: Job{ID: "123", UID: 1000, GID: 1001, User: "alice", Node: "n1", Cluster: "linux",
				StepID: "0", ArrayJobID: "120", ArrayTaskID: "3"},
		},
		{
			name: "only the legacy SLURM_JOBID",
			env:  map[string]string{EnvJobIDLegacy: "9"},
			want: Job{ID: "9", UID: 1000, GID: 100, User: "alice", Node: "n7"},
		},
		{
			name: "only SLURM_JOB_ID",
			env:  map[string]string{EnvJobID: "9"},
			want: Job{ID: "9", UID: 1000, GID: 100, User: "alice", Node: "n7"},
		},
		{
			name: "job uid differs from caller and no gid: NSS primary group, not the caller's",
			env:  map[string]string{EnvJobID: "9", EnvJobUID: "1002"},
			want: Job{ID: "9", UID: 1002, GID: 1002, User: "bob", Node: "n7"},
		},
		{
			name: "uid without NSS name: uid<N>, never the caller's $USER",
			env:  map[string]string{EnvJobID: "9", EnvJobUID: "5555", EnvJobGID: "5555", "USER": "alice"},
			want: Job{ID: "9", UID: 5555, GID: 5555, User: "uid5555", Node: "n7"},
		},
		{
			name: "NSS name invalid: falls back to uid<N>",
			env:  map[string]string{EnvJobID: "9", EnvJobUID: "1003", EnvJobGID: "1003"},
			want: Job{ID: "9", UID: 1003, GID: 1003, User: "uid1003", Node: "n7"},
		},
		{
			name: "user without uid: consistent with the caller",
			env:  map[string]string{EnvJobID: "9", EnvJobUser: "alice"},
			want: Job{ID: "9", UID: 1000, GID: 100, User: "alice", Node: "n7"},
		},
		{
			name: "user that does not resolve is accepted as is",
			env:  map[string]string{EnvJobID: "9", EnvJobUID: "1000", EnvJobUser: "ldapdown"},
			want: Job{ID: "9", UID: 1000, GID: 100, User: "ldapdown", Node: "n7"},
		},
		{
			name: "uid 0 is a number like any other (callers decide about root)",
			env:  map[string]string{EnvJobID: "9", EnvJobUID: "0", EnvJobUser: "root"},
			want: Job{ID: "9", UID: 0, GID: 0, User: "root", Node: "n7"},
		},
		{
			name: "prolog context",
			env:  with(batchEnv(), EnvScriptContext, "prolog_slurmd"),
			want: Job{ID: "123", UID: 1000, GID: 100, User: "alice", Node: "n1", Cluster: "linux", ScriptContext: "prolog_slurmd"},
		},

		// SLURM_JOB_ID / SLURM_JOBID
		{name: "job id not a number", env: with(batchEnv(), EnvJobID, "abc"), wantVar: EnvJobID, wantMsg: `SLURM_JOB_ID="abc": not a decimal number`},
		{name: "job id 0", env: map[string]string{EnvJobID: "0"}, wantVar: EnvJobID, wantMsg: "start at 1"},
		{name: "job id leading zero", env: map[string]string{EnvJobID: "0123"}, wantVar: EnvJobID, wantMsg: "leading zeros"},
		{name: "job id path traversal", env: map[string]string{EnvJobID: "../../etc"}, wantVar: EnvJobID},
		{name: "job id too long", env: map[string]string{EnvJobID: strings.Repeat("9", 21)}, wantVar: EnvJobID, wantMsg: "longer than 20"},
		{name: "legacy job id bad", env: map[string]string{EnvJobIDLegacy: "1 2"}, wantVar: EnvJobIDLegacy},
		{name: "job ids disagree", env: with(batchEnv(), EnvJobIDLegacy, "124"), wantVar: EnvJobIDLegacy, wantMsg: `disagrees with SLURM_JOB_ID="123"`},

		// SLURM_JOB_UID
		{name: "uid not a number", env: with(batchEnv(), EnvJobUID, "abc"), wantVar: EnvJobUID,
			wantMsg: `SLURM_JOB_UID="abc": not a decimal number (expected the job owner's numeric uid)`},
		{name: "uid negative", env: with(batchEnv(), EnvJobUID, "-1"), wantVar: EnvJobUID},
		{name: "uid 2^31", env: with(batchEnv(), EnvJobUID, "2147483648"), wantVar: EnvJobUID, wantMsg: "out of range"},
		{name: "uid 2^32-1", env: with(batchEnv(), EnvJobUID, "4294967295"), wantVar: EnvJobUID, wantMsg: "out of range"},
		{name: "uid leading zero", env: with(batchEnv(), EnvJobUID, "01000"), wantVar: EnvJobUID, wantMsg: "leading zero"},
		{name: "uid with space", env: with(batchEnv(), EnvJobUID, "1000 "), wantVar: EnvJobUID},

		// SLURM_JOB_GID
		{name: "gid not a number", env: with(batchEnv(), EnvJobGID, "users"), wantVar: EnvJobGID, wantMsg: "numeric gid"},
		{name: "gid 2^31", env: with(batchEnv(), EnvJobGID, "2147483648"), wantVar: EnvJobGID, wantMsg: "out of range"},
		{name: "gid missing and unresolvable for another uid", env: map[string]string{EnvJobID: "9", EnvJobUID: "5555"},
			wantVar: EnvJobGID, wantMsg: "primary group of uid 5555"},

		// SLURM_JOB_USER
		{name: "user with slash", env: with(batchEnv(), EnvJobUser, "../root"), wantVar: EnvJobUser},
		{name: "user with newline", env: with(batchEnv(), EnvJobUser, "alice\nroot"), wantVar: EnvJobUser, wantMsg: `contains "\n"`},
		{name: "user leading dash", env: with(batchEnv(), EnvJobUser, "-rf"), wantVar: EnvJobUser, wantMsg: "starts with '-'"},
		{name: "user too long", env: with(batchEnv(), EnvJobUser, strings.Repeat("a", 65)), wantVar: EnvJobUser},
		{name: "user does not own the uid", env: with(batchEnv(), EnvJobUser, "bob"), wantVar: EnvJobUser,
			wantMsg: "resolves to uid 1002, but SLURM_JOB_UID is 1000"},
		{name: "user does not match the caller", env: map[string]string{EnvJobID: "9", EnvJobUser: "bob"}, wantVar: EnvJobUser,
			wantMsg: "this process runs as uid 1000"},

		// SLURMD_NODENAME and the other optional variables
		{name: "node name with slash", env: with(batchEnv(), EnvNodeName, "n1/../x"), wantVar: EnvNodeName},
		{name: "node name too long", env: with(batchEnv(), EnvNodeName, strings.Repeat("n", 65)), wantVar: EnvNodeName},
		{name: "node name dotdot", env: with(batchEnv(), EnvNodeName, ".."), wantVar: EnvNodeName},
		{name: "cluster name with newline", env: with(batchEnv(), EnvClusterName, "a\nb"), wantVar: EnvClusterName},
		{name: "script context odd", env: with(batchEnv(), EnvScriptContext, "epilog slurmd"), wantVar: EnvScriptContext},
		{name: "step id not a number", env: with(batchEnv(), EnvStepID, "batch"), wantVar: EnvStepID},
		{name: "array job id 0", env: with(batchEnv(), EnvArrayJobID, "0"), wantVar: EnvArrayJobID},
		{name: "array task id negative", env: with(batchEnv(), EnvArrayTaskID, "-1"), wantVar: EnvArrayTaskID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromEnv(fakeOpts(tt.env))
			checkResult(t, got, err, tt.want, tt.wantVar, tt.wantMsg)
		})
	}
}

func TestFromEnvHostname(t *testing.T) {
	tests := []struct {
		name     string
		hostname func() (string, error)
		wantNode string
		wantMsg  string
	}{
		{"short name kept", func() (string, error) { return "n9", nil }, "n9", ""},
		{"fqdn cut to first label", func() (string, error) { return "gpu-3.hpc.example", nil }, "gpu-3", ""},
		{"hostname fails", func() (string, error) { return "", errors.New("uname failed") }, "", "hostname: cannot read the host name (set SLURMD_NODENAME): uname failed"},
		{"empty hostname", func() (string, error) { return "", nil }, "", "hostname: empty"},
		{"hostile hostname", func() (string, error) { return "a/b", nil }, "", `hostname="a/b": contains "/"`},
		{"leading dot", func() (string, error) { return ".example", nil }, "", "hostname="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fakeOpts(map[string]string{})
			o.Hostname = tt.hostname
			got, err := FromEnv(o)
			if tt.wantMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("FromEnv: err = %v, want %q", err, tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got.Node != tt.wantNode {
				t.Errorf("Node = %q, want %q", got.Node, tt.wantNode)
			}
		})
	}
}

func TestFromEnvUserFallback(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"valid $USER when NSS has no name", map[string]string{"USER": "carol"}, "carol"},
		{"invalid $USER ignored", map[string]string{"USER": "../carol"}, "uid4242"},
		{"no $USER", map[string]string{}, "uid4242"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fakeOpts(tt.env)
			o.Getuid = func() int { return 4242 }
			got, err := FromEnv(o)
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			if got.User != tt.want || got.UID != 4242 || got.GID != 100 {
				t.Errorf("got User=%q UID=%d GID=%d, want %q 4242 100", got.User, got.UID, got.GID, tt.want)
			}
		})
	}
}

func TestForEpilog(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Job
		wantVar string
		wantMsg string
	}{
		{
			name: "slurmd's epilog environment",
			env:  epilogEnv(),
			want: Job{ID: "77", UID: 1002, GID: 1002, User: "bob", Node: "n1", Cluster: "linux", ScriptContext: "epilog_slurmd"},
		},
		{
			name: "no gid: the owner's primary group, never root's",
			env:  with(epilogEnv(), EnvJobGID, ""),
			want: Job{ID: "77", UID: 1002, GID: 1002, User: "bob", Node: "n1", Cluster: "linux", ScriptContext: "epilog_slurmd"},
		},
		{
			name: "no gid: the owner's NSS primary group, not the caller's",
			env:  with(epilogEnv(), EnvJobGID, "", EnvJobUID, "1000", EnvJobUser, "alice"),
			want: Job{ID: "77", UID: 1000, GID: 1001, User: "alice", Node: "n1", Cluster: "linux", ScriptContext: "epilog_slurmd"},
		},
		{
			name: "legacy id only",
			env:  with(epilogEnv(), EnvJobID, ""),
			want: Job{ID: "77", UID: 1002, GID: 1002, User: "bob", Node: "n1", Cluster: "linux", ScriptContext: "epilog_slurmd"},
		},
		{name: "no job id", env: with(epilogEnv(), EnvJobID, "", EnvJobIDLegacy, ""), wantVar: EnvJobID, wantMsg: "SLURM_JOB_ID: not set"},
		{name: "no uid", env: with(epilogEnv(), EnvJobUID, ""), wantVar: EnvJobUID, wantMsg: "SLURM_JOB_UID: not set"},
		{name: "no user", env: with(epilogEnv(), EnvJobUser, ""), wantVar: EnvJobUser, wantMsg: "SLURM_JOB_USER: not set"},
		{name: "user/uid mismatch", env: with(epilogEnv(), EnvJobUser, "alice"), wantVar: EnvJobUser, wantMsg: "resolves to uid 1000"},
		{name: "bad uid", env: with(epilogEnv(), EnvJobUID, "1002x"), wantVar: EnvJobUID},
		{name: "unresolvable gid", env: with(epilogEnv(), EnvJobGID, "", EnvJobUID, "5555", EnvJobUser, "ghost"), wantVar: EnvJobGID},
		{name: "bad job id", env: with(epilogEnv(), EnvJobID, "77;rm"), wantVar: EnvJobID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fakeOpts(tt.env)
			o.Getuid = func() int { return 0 } // the Epilog runs as root
			o.Getgid = func() int { return 0 }
			got, err := ForEpilog(o)
			checkResult(t, got, err, tt.want, tt.wantVar, tt.wantMsg)
		})
	}
}

func TestManual(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		user    string
		env     map[string]string
		want    Job
		wantVar string
		wantMsg string
	}{
		{name: "slurm job", id: "123", user: "bob", env: map[string]string{},
			want: Job{ID: "123", UID: 1002, GID: 1002, User: "bob", Node: "n7"}},
		{name: "node and cluster from the environment", id: "123", user: "alice",
			env:  map[string]string{EnvNodeName: "n2", EnvClusterName: "c1", EnvJobID: "999", EnvJobUID: "1"},
			want: Job{ID: "123", UID: 1000, GID: 1001, User: "alice", Node: "n2", Cluster: "c1"}},
		{name: "local scope", id: "local-31337", user: "alice", env: map[string]string{},
			want: Job{ID: "local-31337", UID: 1000, GID: 1001, User: "alice", Node: "n7", Local: true}},
		{name: "bad id", id: "12/..", user: "bob", env: map[string]string{}, wantVar: "--job", wantMsg: `--job="12/..": not a decimal`},
		{name: "empty id", id: "", user: "bob", env: map[string]string{}, wantVar: "--job", wantMsg: "--job: empty"},
		{name: "bad user", id: "1", user: "bob smith", env: map[string]string{}, wantVar: "--user"},
		{name: "unknown user", id: "1", user: "ghost", env: map[string]string{}, wantVar: "--user", wantMsg: "cannot resolve the user"},
		{name: "bad node", id: "1", user: "bob", env: map[string]string{EnvNodeName: "a b"}, wantVar: EnvNodeName},
		{name: "bad cluster", id: "1", user: "bob", env: map[string]string{EnvClusterName: "-x"}, wantVar: EnvClusterName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Manual(tt.id, tt.user, fakeOpts(tt.env))
			checkResult(t, got, err, tt.want, tt.wantVar, tt.wantMsg)
		})
	}
}

func TestManualGIDLookupFails(t *testing.T) {
	o := fakeOpts(map[string]string{})
	o.LookupGID = func(int) (int, error) { return 0, errors.New("nss down") }
	_, err := Manual("1", "bob", o)
	var ee *EnvError
	if !errors.As(err, &ee) || ee.Var != "--user" || !strings.Contains(err.Error(), "nss down") {
		t.Fatalf("Manual: err = %v, want an --user EnvError wrapping the NSS failure", err)
	}
}

func checkResult(t *testing.T, got Job, err error, want Job, wantVar, wantMsg string) {
	t.Helper()
	if wantVar == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if got != want {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
		if got.Key() != want.ID {
			t.Fatalf("Key() = %q, want %q", got.Key(), want.ID)
		}
		return
	}
	var ee *EnvError
	if !errors.As(err, &ee) {
		t.Fatalf("err = %v (%T), want *EnvError for %s", err, err, wantVar)
	}
	if ee.Var != wantVar {
		t.Errorf("EnvError.Var = %q, want %q (error: %v)", ee.Var, wantVar, err)
	}
	if !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("error %q does not contain %q", err, wantMsg)
	}
	if strings.ContainsAny(err.Error(), "\n\r\x00") {
		t.Errorf("error is not one line: %q", err)
	}
	if got != (Job{}) {
		t.Errorf("a failed call returned a non-zero Job: %+v", got)
	}
}

func TestEnvErrorFormat(t *testing.T) {
	tests := []struct {
		err  *EnvError
		want string
	}{
		{&EnvError{Var: "SLURM_JOB_UID", Value: "abc", Reason: "not a number"}, `SLURM_JOB_UID="abc": not a number`},
		{&EnvError{Var: "SLURM_JOB_UID", Reason: "not set"}, `SLURM_JOB_UID: not set`},
		{&EnvError{Var: "X", Value: "a\nb\x00", Reason: "bad\nreason", Err: errors.New("cause\nline")}, `X="a\nb\x00": bad reason: cause line`},
		{&EnvError{Var: "X", Value: strings.Repeat("v", 100), Reason: "long"}, `X="` + strings.Repeat("v", 64) + `"...: long`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	cause := errors.New("cause")
	if !errors.Is(&EnvError{Var: "X", Err: cause}, cause) {
		t.Error("EnvError does not unwrap to its cause")
	}
}

// TestRealDefaults runs FromEnv against the real process (uid, NSS, hostname)
// with an empty environment: the result must be this process's local scope.
func TestRealDefaults(t *testing.T) {
	got, err := FromEnv(Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if !got.Local || got.ID != "local-"+strconv.Itoa(os.Getpid()) {
		t.Errorf("got ID %q Local %v, want local-%d", got.ID, got.Local, os.Getpid())
	}
	if got.UID != os.Getuid() || got.GID != os.Getgid() {
		t.Errorf("got uid/gid %d/%d, want %d/%d", got.UID, got.GID, os.Getuid(), os.Getgid())
	}
	if u, err := user.LookupId(strconv.Itoa(os.Getuid())); err == nil && ValidUserName(u.Username) == nil && got.User != u.Username {
		t.Errorf("User = %q, want %q", got.User, u.Username)
	}
	if err := ValidNodeName(got.Node); err != nil {
		t.Errorf("Node %q: %v", got.Node, err)
	}
}

// TestRealLookups checks the NSS-backed default lookups against root, which
// exists on every system.
func TestRealLookups(t *testing.T) {
	if uid, err := lookupUser("root"); err != nil || uid != 0 {
		t.Errorf("lookupUser(root) = %d, %v; want 0", uid, err)
	}
	if name, err := lookupUID(0); err != nil || name != "root" {
		t.Errorf("lookupUID(0) = %q, %v; want root", name, err)
	}
	if gid, err := lookupGID(0); err != nil || gid != 0 {
		t.Errorf("lookupGID(0) = %d, %v; want 0", gid, err)
	}
	if _, err := lookupUser("no-such-user-ffl-test"); err == nil {
		t.Error("lookupUser of a missing user succeeded")
	}
	got, err := Manual("5", "root", Options{Getenv: func(string) string { return "" }})
	if err != nil || got.UID != 0 || got.GID != 0 || got.User != "root" {
		t.Errorf("Manual(5, root) = %+v, %v", got, err)
	}
}

func FuzzFromEnv(f *testing.F) {
	f.Add("123", "123", "1000", "", "alice", "n1", "linux", "", "", "", "")
	f.Add("", "", "", "", "", "", "", "", "", "", "")
	f.Add("0", "1", "-1", "x", "../root", "a/b", "a\nb", "epilog_slurmd", "batch", "0", "-1")
	f.Add("77", "77", "1002", "1002", "bob", "n1", "c", "epilog_slurmd", "0", "76", "3")
	f.Add("18446744073709551616", "", "2147483648", "01", "-rf", "..", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, legacy, uid, gid, usr, node, cluster, script, step, arrJob, arrTask string) {
		env := map[string]string{
			EnvJobID: id, EnvJobIDLegacy: legacy, EnvJobUID: uid, EnvJobGID: gid, EnvJobUser: usr,
			EnvNodeName: node, EnvClusterName: cluster, EnvScriptContext: script, EnvStepID: step,
			EnvArrayJobID: arrJob, EnvArrayTaskID: arrTask, "USER": usr,
		}
		for _, build := range []func(Options) (Job, error){FromEnv, ForEpilog} {
			j, err := build(fakeOpts(env))
			if err != nil {
				var ee *EnvError
				if !errors.As(err, &ee) {
					t.Fatalf("error %v is %T, want *EnvError", err, err)
				}
				if strings.ContainsAny(err.Error(), "\n\r\x00") {
					t.Fatalf("error is not one line: %q", err)
				}
				continue
			}
			checkJob(t, j)
		}
		if j, err := Manual(id, usr, fakeOpts(env)); err == nil {
			checkJob(t, j)
		}
	})
}

func checkJob(t *testing.T, j Job) {
	t.Helper()
	k := j.Key()
	if k == "" || k == "." || strings.Contains(k, "..") || strings.ContainsAny(k, "/\x00\n") {
		t.Fatalf("Key() = %q is not a single safe path component", k)
	}
	if err := ValidJobKey(k); err != nil {
		t.Fatalf("Key() = %q: %v", k, err)
	}
	if err := ValidUserName(j.User); err != nil {
		t.Fatalf("User %q: %v", j.User, err)
	}
	if err := ValidNodeName(j.Node); err != nil {
		t.Fatalf("Node %q: %v", j.Node, err)
	}
	if j.UID < 0 || j.UID >= MaxID || j.GID < 0 || j.GID >= MaxID {
		t.Fatalf("uid/gid out of range: %d/%d", j.UID, j.GID)
	}
	if j.Local != strings.HasPrefix(k, LocalPrefix) {
		t.Fatalf("Local = %v for key %q", j.Local, k)
	}
}
