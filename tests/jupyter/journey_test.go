package jupyter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
	"github.com/ffl-hpc/ffl/internal/testutil"
	"github.com/ffl-hpc/ffl/pkg/proc"
)

// figures collects the suite's timings; TestMain's last test prints them.
type figure struct {
	what string
	d    time.Duration
}

var figures []figure

func addFigure(t *testing.T, what string, d time.Duration) {
	t.Helper()
	figures = append(figures, figure{what, d})
	t.Logf("figure: %s: %.2f s", what, d.Seconds())
}

// session is one user's browser plus the hub's view of the user's server.
type session struct {
	e       *Env
	u       User
	b       *Browser
	job     *Job
	color   string
	started []proc.Identity // the job's and its sessions' processes when last checked
}

func (e *Env) newSession(t *testing.T, name string) *session {
	t.Helper()
	u := e.users[name]
	b, err := newBrowser(e.hub, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Login(); err != nil {
		t.Fatalf("log in as %s: %v", name, err)
	}
	color := pageColorUser1
	if name == "ffluser2" {
		color = pageColorUser2
	}
	return &session{e: e, u: u, b: b, color: color}
}

// spawn starts the user's server through the hub's spawn page and checks that it runs as a
// Slurm job of the user under ffl-launch run.
func (s *session) spawn(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	r, err := s.b.Spawn(spawnLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK {
		t.Fatalf("spawning %s's server failed: %s", s.u.Name, r.Message)
	}
	addFigure(t, "spawn of "+s.u.Name+"'s server (request to the server's page)", time.Since(t0))
	id, err := s.e.hub.JobID(s.u.Name)
	if err != nil {
		t.Fatal(err)
	}
	s.job = s.e.job(s.u, id)
	t.Cleanup(func() { s.job.dumpJob(t) })
	if st, _ := s.job.state(); st != "RUNNING" {
		t.Fatalf("job %s of %s: %s, want RUNNING", id, s.u.Name, st)
	}
	var sockets string
	if !slurmtest.WaitUntil(30*time.Second, func() bool {
		sockets, err = s.job.serverEnv("FFL_CONTROL_SOCKET")
		return err == nil
	}) {
		t.Fatalf("%s's notebook server does not run under ffl-launch run (no FFL_CONTROL_SOCKET): %v", s.u.Name, err)
	}
	s.started = stable(s.job.procs())
	t.Logf("%s's server: job %s, control socket %s, %d processes", s.u.Name, id, sockets, len(s.started))
}

// visit opens /user/NAME/firefox/ and requires the user's painted page.
func (s *session) visit(t *testing.T, what string) {
	t.Helper()
	d, st, err := s.b.VisitFirefox(s.u.Name, s.color, visitLimit)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	addFigure(t, what+": request of /user/"+s.u.Name+"/firefox/ to Firefox's painted page", d)
	t.Logf("%s: %s (%.0f%% of the window is the page's colour)", what, st.Detail, 100*st.Match)
	s.started = stable(append(s.job.procs(), s.job.sessionProcs()...))
}

// launch clicks the Firefox card of JupyterLab's launcher and requires the user's painted page
// in the tab it opens.
func (s *session) launch(t *testing.T, what string) {
	t.Helper()
	d, st, err := s.b.LaunchFirefoxFromLab(s.color, visitLimit)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	addFigure(t, what+": click on JupyterLab's Firefox card to Firefox's painted page in the new tab", d)
	t.Logf("%s: %s (%.0f%% of the window is the page's colour)", what, st.Detail, 100*st.Match)
	s.started = stable(append(s.job.procs(), s.job.sessionProcs()...))
}

// TestFailFast: a launcher that fails at once (here a bad FIREFOX_LAUNCHER_CLEANUP_TIMEOUT in
// the user's environment) ends the job at once with the reason in the job log, and the hub
// shows the failure with that reason within seconds, long before start_timeout (300 s).
func TestFailFast(t *testing.T) {
	e := env(t)
	defer e.hub.dumpOnFailure(t)
	if err := e.hub.SetUserEnv(map[string]map[string]string{"ffluser1": {"FIREFOX_LAUNCHER_CLEANUP_TIMEOUT": "0"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.hub.SetUserEnv(nil) })
	s := e.newSession(t, "ffluser1")
	t0 := time.Now()
	r, err := s.b.Spawn(spawnLimit)
	took := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK {
		t.Fatalf("the server started although ffl-launch cannot: %s", r.URL)
	}
	addFigure(t, "spawn request to the hub's 'Spawn failed' page (a launcher that fails at once)", took)
	t.Logf("the hub says: %s", r.Message)
	if took > 100*time.Second {
		t.Errorf("the failure took %v to show, want it well before start_timeout (300 s)", took)
	}
	if !strings.Contains(r.Message, "FIREFOX_LAUNCHER_CLEANUP_TIMEOUT") {
		t.Errorf("the hub's message does not name the reason (FIREFOX_LAUNCHER_CLEANUP_TIMEOUT): %q", r.Message)
	}
	m := regexp.MustCompile(`batch job (\d+) ended`).FindStringSubmatch(r.Message)
	if m == nil {
		t.Fatalf("the hub's message names no job: %q", r.Message)
	}
	j := e.job(s.u, m[1])
	j.assertClean(t, nil)
	if log := string(testutil.MustRead(t, j.Log())); !strings.Contains(log, "FIREFOX_LAUNCHER_CLEANUP_TIMEOUT") {
		t.Errorf("job log %s does not name the reason:\n%s", j.Log(), log)
	}
	if st, code := j.state(); st != "FAILED" {
		t.Errorf("job %s: %s (exit %s), want FAILED", j.ID, st, code)
	}
	u, err := e.hub.User(s.u.Name)
	if err != nil || len(u.Servers) != 0 || u.Pending != nil {
		t.Errorf("after the failed start the hub still lists a server or a pending spawn for %s: %+v (%v)", s.u.Name, u, err)
	}
	assertSpawnMetrics(t, e)
}

// assertSpawnMetrics: the failed start is in the hub's spawn metrics with a label of few values,
// never with the message (a job id and a log path per failure would make a new time series of
// every failed start). JupyterHub 6 labels a failure with the exception's reason: FFLSlurmSpawner
// gives "job_ended" there.
func assertSpawnMetrics(t *testing.T, e *Env) {
	t.Helper()
	metrics, err := e.hub.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	var spawns []string
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "jupyterhub_server_spawn_duration_seconds_count{") {
			spawns = append(spawns, line)
		}
	}
	t.Logf("the hub's spawn metrics: %q", spawns)
	all := strings.Join(spawns, "\n")
	if strings.Contains(all, "batch job") || strings.Contains(all, "ended before") {
		t.Errorf("a spawn metric's label carries the failure's message: %q", spawns)
	}
	if e.stack.Major("jupyterhub") >= 6 && !strings.Contains(all, `reason="job_ended"`) {
		t.Errorf("JupyterHub %s: no spawn metric with reason=\"job_ended\" after a job that ended at once: %q", e.stack.Versions["jupyterhub"], spawns)
	}
}

// TestJourney is the user's journey, in order: both users log in and spawn, JupyterLab opens and
// each clicks the Firefox card of its launcher, which opens Firefox at /user/NAME/firefox/ in a
// new tab (no password), the launcher entry is served, later visits by URL, the other user is
// refused, ffluser1's server is culled through the API and leaves nothing while ffluser2's runs
// on untouched, the hub restarts while ffluser2's server runs and finds it again, and ffluser2's
// server is culled too; the node is then idle.
func TestJourney(t *testing.T) {
	e := env(t)
	defer e.hub.dumpOnFailure(t)
	s1 := e.newSession(t, "ffluser1")
	s2 := e.newSession(t, "ffluser2")
	var proxyPort1 int

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"spawn_both", func(t *testing.T) {
			s2.spawn(t)
			s1.spawn(t)
		}},
		{"firefox_first_visit", func(t *testing.T) {
			e.requireProxy(t)
			// The user's way: JupyterLab, the Firefox card of its launcher, a new tab.
			s1.launch(t, "first visit of ffluser1")
			s2.launch(t, "first visit of ffluser2")
		}},
		{"launcher_entry", func(t *testing.T) {
			for _, s := range []*session{s1, s2} {
				s.assertLauncherEntry(t)
			}
		}},
		{"firefox_later_visits", func(t *testing.T) {
			e.requireProxy(t)
			for i := 2; i <= 3; i++ {
				s1.visit(t, "later visit of ffluser1 (#"+strconv.Itoa(i)+")")
			}
			s2.job.assertRunning(t, s2.started)
		}},
		{"other_user_refused", func(t *testing.T) {
			e.requireProxy(t)
			// Through the hub: ffluser2's login does not open ffluser1's server.
			_, st, err := s2.b.VisitFirefox("ffluser1", s1.color, 60*time.Second)
			if err == nil || st.State == "painted" || st.State == "window" {
				t.Fatalf("ffluser2 opened /user/ffluser1/firefox/: %s %v", st.State, err)
			}
			if !strings.Contains(st.Detail, "403") {
				t.Errorf("ffluser2 at /user/ffluser1/firefox/: want the hub's 403 page, got %q: %v", st.State, err)
			}
			t.Logf("ffluser2 at /user/ffluser1/firefox/: %v", err)
			// On the node: a process of ffluser2 gets no page from ffluser1's port.
			port, err := s1.job.serverEnv("FFL_PROXY_PORT")
			if err != nil {
				t.Fatal(err)
			}
			proxyPort1, _ = strconv.Atoi(port)
			url := "http://127.0.0.1:" + port + "/"
			// The owner on the node is admitted by the kernel's answer (a page, not a reset), but
			// the proxy port relays only what carries the job's secret (jupyter-server-proxy's
			// header): the owner's plain curl gets ffl's 403 page naming the Jupyter path...
			own, err := e.asUser(context.Background(), s1.u, nil, "curl", "-sS", "-m", "20", url)
			if err != nil || !strings.Contains(own, "Jupyter proxy") || strings.Contains(own, "xpra") {
				ss, _ := slurmtest.Output(context.Background(), nil, "ss", "-ltnp", "sport = :"+port)
				t.Errorf("ffluser1's own curl of its proxy port %s: %v %.200q, want the 403 page naming the Jupyter proxy\n%s", port, err, own, ss)
			}
			// ... another user of the node gets nothing.
			out, _ := e.asUser(context.Background(), s2.u, nil, "curl", "-sS", "-m", "10", url)
			if strings.Contains(strings.ToLower(out), "<html") || strings.Contains(out, "xpra") {
				t.Errorf("ffluser2's curl of ffluser1's session port %s got a page: %.200q", port, out)
			}
			t.Logf("ffluser2's curl of ffluser1's port %s: %.120q", port, out)
			// ... and ffl says so in ffluser1's job log. (The refusal is logged after the
			// connection is closed: wait for it, so that the next step's look at the log does
			// not take it for one of its own.)
			refused := fmt.Sprintf("peer_uid=%d port=%s", s2.u.UID, port)
			if !slurmtest.WaitUntil(15*time.Second, func() bool {
				log := string(testutil.MustRead(t, s1.job.Log()))
				return strings.Contains(log, "not the session's user") && strings.Contains(log, refused)
			}) {
				t.Errorf("ffluser1's job log %s names no refusal of ffluser2 (%s) on the session port", s1.job.Log(), refused)
			}
		}},
		{"firefox_closed", func(t *testing.T) {
			e.requireProxy(t)
			// The user quits Firefox: the session ends, `ffl-launch proxy` exits 0 and says
			// nothing alarming; the next visit gets Firefox again (the supervisor starts a
			// session on the held proxy port when its owner visits it: jupyter-server-proxy 4.1
			// never runs an exited command again), never a hang or someone else's session.
			logBefore := len(testutil.MustRead(t, s1.job.Log()))
			ff := firefoxMain(t, s1.job)
			if _, err := e.asUser(context.Background(), s1.u, nil, "kill", "-TERM", strconv.Itoa(ff.PID)); err != nil {
				t.Fatalf("close Firefox (pid %d) as ffluser1: %v", ff.PID, err)
			}
			if !slurmtest.WaitUntil(60*time.Second, func() bool { return len(s1.job.sessionProcs()) == 0 && len(s1.job.proxyProcs()) == 0 }) {
				t.Fatalf("60 s after Firefox was closed: session processes %v, ffl-launch proxy %v", describe(s1.job.sessionProcs()), describe(s1.job.proxyProcs()))
			}
			for _, l := range strings.Split(string(testutil.MustRead(t, s1.job.Log())[logBefore:]), "\n") {
				if strings.Contains(l, "level=warning") || strings.Contains(l, "level=error") {
					t.Errorf("job log of ffluser1 after Firefox was closed: %s", l)
				}
			}
			d, st, err := s1.b.VisitFirefox(s1.u.Name, s1.color, visitLimit)
			if err != nil {
				t.Errorf("after Firefox was closed, /user/ffluser1/firefox/: want Firefox again, got %q: %v", st.State, err)
			} else {
				addFigure(t, "visit of ffluser1 after Firefox was closed (a new session)", d)
			}
			s2.job.assertRunning(t, s2.started)
		}},
		{"cull_ffluser1", func(t *testing.T) {
			if err := e.hub.StopServer("ffluser1"); err != nil {
				t.Fatal(err)
			}
			var ports []int
			if proxyPort1 != 0 {
				ports = append(ports, proxyPort1)
			}
			s1.job.assertClean(t, ports)
			s2.job.assertRunning(t, s2.started)
		}},
		{"hub_restart", func(t *testing.T) {
			if err := e.hub.Stop(); err != nil {
				t.Fatal(err)
			}
			s2.job.assertRunning(t, s2.started)
			if err := e.hub.Start(); err != nil {
				t.Fatal(err)
			}
			var u HubUser
			if !slurmtest.WaitUntil(60*time.Second, func() bool {
				var err error
				u, err = e.hub.User("ffluser2")
				return err == nil && u.Servers[""].Ready
			}) {
				t.Fatalf("after the restart the hub does not list ffluser2's server as ready: %+v", u)
			}
			if id, err := e.hub.JobID("ffluser2"); err != nil || id != s2.job.ID {
				t.Errorf("after the restart ffluser2's server is job %q (%v), want %s", id, err, s2.job.ID)
			}
			s2.job.assertRunning(t, s2.started)
			if e.hasProxyCommand() {
				before := s2.job.sessionProcs()
				s2.visit(t, "visit of ffluser2 after a hub restart")
				testutilSame(t, "ffluser2's Firefox session", before, s2.job.sessionProcs())
			}
		}},
		{"cull_ffluser2", func(t *testing.T) {
			if err := e.hub.StopServer("ffluser2"); err != nil {
				t.Fatal(err)
			}
			s2.job.assertClean(t, nil)
			if !slurmtest.WaitUntil(30*time.Second, func() bool { return e.nodeState() == "idle" }) {
				t.Errorf("node state %q after both servers were culled, want idle", e.nodeState())
			}
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) && st.name == "spawn_both" {
			t.Fatal("no servers: the rest of the journey cannot run")
		}
	}
	logFigures(t)
}

// assertLauncherEntry checks, through the user's own login, what JupyterLab's launcher shows:
// jupyter-server-proxy's servers-info lists an enabled "Firefox" entry with an SVG icon.
func (s *session) assertLauncherEntry(t *testing.T) {
	t.Helper()
	base := "/user/" + s.u.Name + "/server-proxy/"
	// JupyterLab's requests (its ServerConnection) carry the server's _xsrf cookie as
	// X-XSRFToken: from JupyterHub 4.1 on, a cookie-authenticated request that is not a page
	// navigation is refused without it (sent to the hub's login again).
	js := fmt.Sprintf(`(async () => {
		const m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
		const opts = {credentials: "same-origin", headers: m ? {"X-XSRFToken": decodeURIComponent(m[1])} : {}};
		const r = await fetch(%q, opts);
		const info = r.ok ? await r.json() : null;
		const entry = info && info.server_processes.find(p => p.name === "firefox");
		let icon = null;
		if (entry && entry.launcher_entry.icon_url) {
			const i = await fetch(entry.launcher_entry.icon_url, opts);
			icon = {status: i.status, type: i.headers.get("content-type"), svg: (await i.text()).includes("<svg")};
		}
		return JSON.stringify({status: r.status, entry, icon});
	})()`, base+"servers-info")
	ctx, cancel := context.WithTimeout(s.b.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(s.e.hub.URL+base+"servers-info")); err != nil {
		t.Fatalf("open %sservers-info: %v", base, err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %sservers-info: %v", base, err)
	}
	t.Logf("%s's launcher entry: %s", s.u.Name, out)
	for _, want := range []string{`"status":200`, `"name":"firefox"`, `"enabled":true`, `"title":"Firefox"`, `"svg":true`} {
		if !strings.Contains(out, want) {
			t.Errorf("%s's servers-info lacks %s: %s", s.u.Name, want, out)
		}
	}
}

// TestCollision: two users and a port range of two ports. ffluser2 holds the first port with a
// plain sbatch session; ffluser1's server must get the second and show ffluser1's Firefox;
// ffluser2's server then finds no port: a visible error page, never anyone else's session.
func TestCollision(t *testing.T) {
	e := env(t)
	e.requireProxy(t)
	defer e.hub.dumpOnFailure(t)
	lo, err := slurmtest.FreePortRange(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range e.users {
		if err := e.writeUserConfig(u, lo, lo+1); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, u := range e.users {
			_ = e.writeUserConfig(u, e.portMin, e.portMax)
		}
	})
	u2 := e.users["ffluser2"]
	work := filepath.Join(u2.Home, "ffl-jupytertest-sbatch")
	if _, err := e.asUser(context.Background(), u2, nil, "mkdir", "-p", work); err != nil {
		t.Fatal(err)
	}
	out, err := e.asUser(context.Background(), u2, []string{"FFL_LAUNCH=" + filepath.Join(e.bin, "ffl-launch"), "FFL_CONFIG=" + e.userConfig(u2)},
		"sbatch", "--parsable", "--partition="+partition, "--chdir="+work, filepath.Join(e.root, "contrib", "sbatch", "firefox.sbatch"), "--port", strconv.Itoa(lo), "--json")
	if err != nil {
		t.Fatal(err)
	}
	sb := e.job(u2, strings.TrimSpace(out))
	t.Cleanup(func() {
		_, _ = e.slurm(context.Background(), "scancel", sb.ID)
		slurmtest.WaitUntil(goneLimit, func() bool { return !sb.inQueue() })
		_, _ = e.asUser(context.Background(), u2, nil, "rm", "-rf", work)
	})
	logFile := filepath.Join(work, "firefox-"+sb.ID+".log")
	if !slurmtest.WaitUntil(spawnLimit, func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), `"port":`+strconv.Itoa(lo)) || !sb.inQueue()
	}) || !sb.inQueue() {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("ffluser2's sbatch session on port %d did not start:\n%s", lo, b)
	}
	t.Logf("ffluser2's sbatch job %s holds port %d", sb.ID, lo)

	s1 := e.newSession(t, "ffluser1")
	s1.spawn(t)
	if p, err := s1.job.serverEnv("FFL_PROXY_PORT"); err != nil || p != strconv.Itoa(lo+1) {
		t.Errorf("ffluser1's FFL_PROXY_PORT = %q (%v), want %d (the one port left)", p, err, lo+1)
	}
	s1.visit(t, "ffluser1 beside a held port")

	s2 := e.newSession(t, "ffluser2")
	r, err := s2.b.Spawn(spawnLimit)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK {
		id, _ := e.hub.JobID("ffluser2")
		s2.job = e.job(u2, id)
		t.Cleanup(func() { s2.job.dumpJob(t) })
	} else if m := regexp.MustCompile(`batch job (\d+) ended`).FindStringSubmatch(r.Message); m != nil {
		s2.job = e.job(u2, m[1]) // the failed job must leave nothing either
	}
	t.Logf("ffluser2's spawn with no port left: ok=%v %s", r.OK, r.Message)
	_, st, err := s2.b.VisitFirefox("ffluser2", s2.color, visitLimit)
	if st.State == "painted" {
		t.Fatalf("ffluser2's /user/ffluser2/firefox/ shows a Firefox although no port was free")
	}
	if st.State != "page" || !errorPage.MatchString(st.Detail) {
		t.Errorf("ffluser2's /user/ffluser2/firefox/ with no port free: want a visible error page, got %q (%v)", st.State, err)
	}
	t.Logf("ffluser2 sees: %v", err)
	s1.visit(t, "ffluser1 after ffluser2's failed start")
	for _, name := range []string{"ffluser1", "ffluser2"} {
		if err := e.hub.StopServer(name); err != nil {
			t.Error(err)
		}
	}
	s1.job.assertClean(t, []int{lo + 1})
	if s2.job != nil {
		s2.job.assertClean(t, nil)
	}
}

// testutilSame fails when the processes of a session changed (the same PIDs and start times).
func testutilSame(t *testing.T, what string, before, after []proc.Identity) {
	t.Helper()
	if fmt.Sprint(describe(before)) != fmt.Sprint(describe(after)) || len(before) == 0 {
		t.Errorf("%s changed: before %v, after %v", what, describe(before), describe(after))
	}
}

// logFigures prints the suite's timings as one table.
func logFigures(t *testing.T) {
	t.Helper()
	var b strings.Builder
	for _, f := range figures {
		fmt.Fprintf(&b, "%8.2f s  %s\n", f.d.Seconds(), f.what)
	}
	t.Logf("figures (this machine, %s):\n%s", time.Now().Format(time.DateOnly), b.String())
}
