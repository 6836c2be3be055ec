// Package front is a session's TCP endpoint: ffl binds the port itself, from the moment it is
// chosen, and relays a connection to the session's xpra (which listens only on a unix socket
// in the session's 0700 directory) only when the kernel says the client's socket belongs to
// the session's user. So the session needs no password (the owner, through jupyter-server-proxy
// or an `ssh -L` forward, both of which connect as the user, gets straight in), and no other
// user of the node gets a single byte of xpra's protocol or HTML page.
//
// Why not a password (what ffl did first): the xpra HTML5 client asks for it on every visit,
// and the owner cannot read a 0600 file from the browser. Why not xpra on TCP: xpra binds with
// SO_REUSEADDR and listens later, so two sessions started at once on one port both "succeed"
// and one user reaches the other's; a port that ffl holds from the moment it picks it cannot be
// taken. Why not jupyter-server-proxy's unix_socket mode: it needs tornado >= 6.3 for
// websockets; Debian 12 has 6.2, and ssh -L users would still need TCP.
package front

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// State is what a front does with an admitted connection.
type State int

// States of a front, in the order a session goes through them.
const (
	// Idle: no session behind the port. Connections are held for IdleHold (a start usually
	// follows at once: jupyter-server-proxy polls the port right after it runs its command),
	// then answered with a "no session" page.
	Idle State = iota
	// Starting: the session is being started; connections wait until it is ready.
	Starting
	// Ready: connections are relayed to the session's xpra socket.
	Ready
	// Failed: the start failed; connections get an error page with the reason.
	Failed
	// Closed: the port is released; nothing is accepted.
	Closed
)

func (s State) String() string {
	return [...]string{"idle", "starting", "ready", "failed", "closed"}[s]
}

// Defaults for Options' zero fields.
const (
	DefaultIdleHold  = 10 * time.Second
	DefaultStartHold = 2 * time.Minute
	// refusalLogEvery bounds the log lines about one refused uid: a user who connects in a
	// loop must not flood the owner's job log.
	refusalLogEvery = 30 * time.Second
)

// Options tunes a Front.
type Options struct {
	// UID is the only uid whose connections are admitted (the session's user).
	UID int
	// IdleHold bounds how long an idle front holds an admitted connection waiting for a start.
	IdleHold time.Duration
	// StartHold bounds how long a connection waits for a starting session.
	StartHold time.Duration
	// Log receives one line per refused uid (rate-limited) and per state change.
	Log *logrus.Entry
	// PeerUID finds the uid of a connection's client; nil means PeerUID (sock_diag). Tests
	// replace it to drive the states without a second user.
	PeerUID func(local, remote *net.TCPAddr) (int, error)
	// OnDemand, if set, is called (in its own goroutine, once per idle or failed period) when
	// the owner connects while no session is behind the port, or a while after a failed start:
	// the supervisor then starts one, and the connection is held until it is ready. This is how
	// the Jupyter proxy port gets Firefox back after the user closed it (jupyter-server-proxy
	// 4.1 never runs its command again once it has exited).
	OnDemand func()
}

// retryAfterFailure is how long a failed start's page is shown before a new visit asks for a
// new start (OnDemand): a reload then tries again, a proxy's readiness polling does not loop.
const retryAfterFailure = 5 * time.Second

// Front is one bound port: a listener on the configured address and, for a loopback IPv4
// address, on [::1] as well (else another user could listen there and catch a client that
// resolves "localhost" to ::1 first).
type Front struct {
	opts Options
	port int
	lns  []net.Listener

	mu      sync.Mutex
	state   State
	target  string // xpra's unix socket, in Ready
	reason  string // the failure, in Failed
	since   time.Time
	asked   bool // OnDemand was called in this state
	changed chan struct{}
	conns   map[net.Conn]struct{} // every open connection, for Close
	relayed map[net.Conn]struct{} // connections of the current Ready period
	refused map[int]refusal
	// refusals counts every connection refused for its client's user.
	refusals int

	wg sync.WaitGroup
}

// Listen binds addr:port (port 0: refused, ffl picks ports itself) and starts accepting. An
// error wrapping syscall.EADDRINUSE means somebody else holds the port.
func Listen(addr string, port int, opts Options) (*Front, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("front: port %d: want 1-65535", port)
	}
	if opts.UID < 0 {
		return nil, fmt.Errorf("front: uid %d", opts.UID)
	}
	if opts.IdleHold <= 0 {
		opts.IdleHold = DefaultIdleHold
	}
	if opts.StartHold <= 0 {
		opts.StartHold = DefaultStartHold
	}
	if opts.PeerUID == nil {
		opts.PeerUID = PeerUID
	}
	if opts.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		opts.Log = logrus.NewEntry(l)
	}
	f := &Front{opts: opts, port: port, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}, relayed: map[net.Conn]struct{}{}, refused: map[int]refusal{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", net.JoinHostPort(addr, strconv.Itoa(port)), err)
	}
	f.lns = append(f.lns, ln)
	if ip := net.ParseIP(addr); ip != nil && ip.Equal(net.IPv4(127, 0, 0, 1)) {
		ln6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		switch {
		case err == nil:
			f.lns = append(f.lns, ln6)
		case errors.Is(err, syscall.EADDRINUSE):
			ln.Close()
			return nil, fmt.Errorf("bind [::1]:%d: %w", port, err)
		default:
			// No IPv6 loopback on this node: nobody can listen there either.
		}
	}
	for _, l := range f.lns {
		f.wg.Add(1)
		go f.accept(l)
	}
	return f, nil
}

// Port is the bound port.
func (f *Front) Port() int { return f.port }

// State returns the current state.
func (f *Front) State() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// set moves to a new state and wakes every waiting connection.
func (f *Front) set(s State, target, reason string) {
	f.mu.Lock()
	if f.state == Closed {
		f.mu.Unlock()
		return
	}
	f.state, f.target, f.reason = s, target, reason
	f.since, f.asked = time.Now(), false
	close(f.changed)
	f.changed = make(chan struct{})
	var drop []net.Conn
	if s != Ready {
		for c := range f.relayed {
			drop = append(drop, c)
		}
		clear(f.relayed)
	}
	f.mu.Unlock()
	// A session that is no longer ready takes its relayed connections with it.
	for _, c := range drop {
		c.Close()
	}
	f.opts.Log.WithFields(logrus.Fields{"port": f.port, "state": s.String()}).Debug("front")
}

// Starting says a session is being started behind the port.
func (f *Front) Starting() { f.set(Starting, "", "") }

// Ready says the session is ready: connections go to xpra's unix socket at target.
func (f *Front) Ready(target string) { f.set(Ready, target, "") }

// Failed says the start failed; admitted clients get reason on an error page.
func (f *Front) Failed(reason string) { f.set(Failed, "", reason) }

// Idle says no session is behind the port any more (the port stays held).
func (f *Front) Idle() { f.set(Idle, "", "") }

// Close releases the port and ends every connection; it returns when all have ended.
func (f *Front) Close() error {
	f.mu.Lock()
	if f.state == Closed {
		f.mu.Unlock()
		f.wg.Wait()
		return nil
	}
	f.state = Closed
	close(f.changed)
	f.changed = make(chan struct{})
	conns := make([]net.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	var err error
	for _, l := range f.lns {
		if e := l.Close(); e != nil && err == nil {
			err = e
		}
	}
	for _, c := range conns {
		c.Close()
	}
	f.wg.Wait()
	return err
}

func (f *Front) accept(l net.Listener) {
	defer f.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(c)
			f.serve(c)
		}()
	}
}

func (f *Front) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == Closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Front) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	delete(f.relayed, c)
	f.mu.Unlock()
	c.Close()
}

// serve admits or refuses one connection and then waits for, relays to, or explains the
// session.
func (f *Front) serve(c net.Conn) {
	local, _ := c.LocalAddr().(*net.TCPAddr)
	remote, _ := c.RemoteAddr().(*net.TCPAddr)
	if local == nil || remote == nil {
		return
	}
	uid, err := f.opts.PeerUID(local, remote)
	if err != nil || uid != f.opts.UID {
		if err != nil {
			uid = -1
		}
		f.logRefusal(uid, remote, err)
		// Not a byte: a refused client learns nothing, not even which software listens.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	}
	idleUntil := time.Now().Add(f.opts.IdleHold)
	startUntil := time.Now().Add(f.opts.StartHold)
	var askedAt time.Time // when this client's arrival asked for a start
	for {
		f.mu.Lock()
		state, target, reason, changed, since := f.state, f.target, f.reason, f.changed, f.since
		demand := f.opts.OnDemand != nil && !f.asked &&
			(state == Idle || (state == Failed && time.Since(since) >= retryAfterFailure))
		if demand {
			f.asked = true
			askedAt = time.Now()
		}
		if state == Failed && !askedAt.IsZero() && since.Before(askedAt) {
			state = Idle // the failure is older than the start this client asked for: wait for it
		}
		f.mu.Unlock()
		if demand {
			go f.opts.OnDemand()
		}
		var wait time.Duration
		switch state {
		case Closed:
			return
		case Ready:
			f.relay(c, target)
			return
		case Failed:
			writePage(c, http503, "The Firefox session could not start", reason)
			return
		case Idle:
			wait = time.Until(idleUntil)
			if wait <= 0 {
				writePage(c, http503, "No Firefox session is running on this port",
					"Start one again (from the Jupyter launcher, or with 'ffl-launch start').")
				return
			}
		case Starting:
			wait = time.Until(startUntil)
			if wait <= 0 {
				writePage(c, http503, "The Firefox session is still starting", "Reload this page in a moment.")
				return
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// logRefusal counts a refused connection and logs it, at most once per refusalLogEvery for one
// uid (a user who connects in a loop must not flood the owner's job log); the line says how
// many refusals it stands for. A connection without proof of its client (uid -1: the kernel
// found no socket, or answered with another one than the client's, as issue 16's attack makes
// it do) is logged under its own line and counter.
func (f *Front) logRefusal(uid int, remote *net.TCPAddr, err error) {
	f.mu.Lock()
	f.refusals++
	r := f.refused[uid]
	r.count++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		f.refused[uid] = r
		f.mu.Unlock()
		return
	}
	count := r.count
	f.refused[uid] = refusal{last: now}
	f.mu.Unlock()
	e := f.opts.Log.WithFields(logrus.Fields{"port": f.port, "peer_uid": uid, "remote": remote.String(), "refused": count})
	if err != nil {
		e.WithError(err).Warn("connection refused (reset): no proof of the client's user")
		return
	}
	e.Warn("connection refused (reset): not the session's user")
}

// Refusals is the number of connections refused so far for their client's user (another uid,
// or no proof of one).
func (f *Front) Refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refusals
}

// refusal is what the rate limit of one uid's log lines remembers.
type refusal struct {
	last  time.Time
	count int // refusals since the last line
}

// relay copies bytes both ways between the client and xpra until either side is done.
func (f *Front) relay(c net.Conn, target string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var d net.Dialer
	x, err := d.DialContext(ctx, "unix", target)
	cancel()
	if err != nil {
		writePage(c, http503, "The Firefox session does not answer", err.Error())
		return
	}
	if !f.track(x) {
		x.Close()
		return
	}
	defer f.untrack(x)
	f.mu.Lock()
	if f.state != Ready || f.target != target {
		// The session went away while we dialled.
		f.mu.Unlock()
		return
	}
	f.relayed[c], f.relayed[x] = struct{}{}, struct{}{}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(x, c)
		if u, ok := x.(*net.UnixConn); ok {
			_ = u.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(c, x)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	<-done
}

const http503 = "503 Service Unavailable"

// writePage answers an admitted client with a small HTML page: what the owner sees in the
// browser instead of a hang or another user's session.
func writePage(c net.Conn, status, title, detail string) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	body := fmt.Sprintf("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ffl: %s</title></head>"+
		"<body style=\"font-family:sans-serif;margin:2em\"><h1>%s</h1><p>%s</p></body></html>\n",
		htmlEscape(title), htmlEscape(title), htmlEscape(detail))
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
		status, len(body), body)
}

func htmlEscape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
