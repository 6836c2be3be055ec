// Package front is a session's TCP endpoint: ffl binds the port itself, from the moment it is
// chosen, and relays a connection to the session's xpra (which listens only on a unix socket
// in the session's 0700 directory) only when the kernel proves that the client's socket belongs
// to the session's user (PeerUID), and then only the requests of the session's own page (door:
// Host and Origin, or on the Jupyter proxy port the job's secret header). So the session needs
// no password (the owner, through jupyter-server-proxy or an `ssh -L` forward, both of which
// connect as the user, gets straight in), no other user of the node gets a single byte of
// xpra's protocol or HTML page, and no web page open in the owner's browser gets one either.
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
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
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
	// Starting: the session is being started; connections wait until it is ready, or, once
	// xpra serves its page (Serve), are relayed to it while Firefox starts: the HTML5 client
	// then loads and connects during Firefox's start, and its page shows "Starting Firefox"
	// over the still-empty desktop until the session is Ready (see starting.go).
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
	// ProxySecret, if set, makes this the Jupyter proxy port: a request is relayed only when it
	// carries ProxySecretHeader with this value (jupyter-server-proxy adds it from the entry's
	// request_headers_override); the header never reaches xpra. See door.
	ProxySecret string
	// OnDemand, if set, is called (in its own goroutine, once per idle or failed period) when
	// the owner connects while no session is behind the port, or a while after a failed start:
	// the supervisor then starts one, and the connection is held until it is ready. This is how
	// the Jupyter proxy port gets Firefox back after the user closed it (jupyter-server-proxy
	// 4.1 never runs its command again once it has exited).
	OnDemand func()
	// OneAddress binds the address alone, without the [::1] twin of 127.0.0.1. pkg/lifecycle
	// asks for it only when another process holds one loopback family on every free port of the
	// range, and then prints the bound address literally (see docs/DESIGN.md, "Ports").
	OneAddress bool
	// KeyboardLayout is the keyboard layout the HTML5 client tells xpra (an X keyboard layout
	// name, "de"); "" lets the client take it from the browser's language. It reaches the
	// client with ClientScriptPath's script tag.
	KeyboardLayout string
	// IdleTimeout is the session's idle_timeout, for the words of the disconnect page (see
	// DisconnectedPath); 0 when off.
	IdleTimeout time.Duration
	// NoClientReconnect redirects a browser that opens the HTML5 client's page to the same page
	// with reconnect=false (see noReconnect): for xpra 3.1's client, whose reconnect never
	// completes.
	NoClientReconnect bool
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
	bind string // the bound address, a name the Host of a request may carry
	lns  []net.Listener
	// Admitted connections go through q to srv, which reads each request, checks it (door)
	// and relays it to xpra through rp.
	q   *connQueue
	srv *http.Server
	rp  *httputil.ReverseProxy

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
	// forbidden counts requests answered 403 (door); doorLogged rate-limits their log lines.
	forbidden  int
	doorLogged refusal
	// onVisit is called when a client opens its WebSocket to the session (OnVisit).
	onVisit func()

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
	f := &Front{opts: opts, port: port, bind: addr, changed: make(chan struct{}), conns: map[net.Conn]struct{}{}, relayed: map[net.Conn]struct{}{}, refused: map[int]refusal{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", net.JoinHostPort(addr, strconv.Itoa(port)), err)
	}
	f.lns = append(f.lns, ln)
	if ip := net.ParseIP(addr); !opts.OneAddress && ip != nil && ip.Equal(net.IPv4(127, 0, 0, 1)) {
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
	f.q = &connQueue{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
	f.srv, f.rp = f.newServer()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = f.srv.Serve(f.q)
	}()
	for _, l := range f.lns {
		f.wg.Add(1)
		go f.accept(l)
	}
	return f, nil
}

// Port is the bound port.
func (f *Front) Port() int { return f.port }

// OnVisit sets fn to be called, in its own goroutine, each time a WebSocket upgrade that passed
// the door is relayed to xpra: the owner's HTML5 client connecting, that is, somebody opening
// Firefox. Page loads and a proxy's readiness polling (plain GETs) do not count.
func (f *Front) OnVisit(fn func()) {
	f.mu.Lock()
	f.onVisit = fn
	f.mu.Unlock()
}

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
	prevTarget := f.target
	f.state, f.target, f.reason = s, target, reason
	f.since, f.asked = time.Now(), false
	close(f.changed)
	f.changed = make(chan struct{})
	var drop []net.Conn
	// Starting -> Ready on the same xpra keeps what was relayed early (Serve); anything else
	// (another state, another xpra) drops what was relayed.
	if s != Ready || target == "" || target != prevTarget {
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

// Serve says that the starting session's xpra serves its page at target (its unix socket):
// admitted requests are relayed from now on, while the session is still Starting. Ignored in
// any other state.
func (f *Front) Serve(target string) {
	f.mu.Lock()
	ok := f.state == Starting && f.target == ""
	if ok {
		f.target = target
		close(f.changed)
		f.changed = make(chan struct{})
	}
	f.mu.Unlock()
}

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
	f.q.Close()
	for _, c := range conns {
		c.Close()
	}
	_ = f.srv.Close()
	f.wg.Wait()
	// The totals, which the rate-limited lines leave out: what the owner's job log keeps of
	// the attempts on this port.
	f.mu.Lock()
	refused, forbidden := f.refusals, f.forbidden
	f.mu.Unlock()
	if refused > 0 || forbidden > 0 {
		f.opts.Log.WithFields(logrus.Fields{"port": f.port, "refused_total": refused, "forbidden_total": forbidden}).
			Warn("port released; connections refused (reset) and requests refused (403) while it was held")
	}
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
		tc := f.wrap(c)
		if tc == nil {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if !f.admit(c) {
				// Not a byte: a refused client learns nothing, not even which software listens.
				if t, ok := c.(*net.TCPConn); ok {
					_ = t.SetLinger(0)
				}
				tc.Close()
				return
			}
			f.q.push(tc)
		}()
	}
}

// tracked is a connection of the front (a client's, or one to xpra): Close, by whoever comes
// first (the HTTP server, the reverse proxy after a WebSocket, set, Front.Close), forgets it.
type tracked struct {
	net.Conn
	f    *Front
	once sync.Once
}

func (t *tracked) Close() error {
	err := t.Conn.Close()
	t.once.Do(func() {
		t.f.mu.Lock()
		delete(t.f.conns, t)
		delete(t.f.relayed, t)
		t.f.mu.Unlock()
		t.f.wg.Done()
	})
	return err
}

// wrap tracks c until it is closed; nil once the front is closed.
func (f *Front) wrap(c net.Conn) *tracked {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == Closed {
		return nil
	}
	t := &tracked{Conn: c, f: f}
	f.conns[t] = struct{}{}
	f.wg.Add(1)
	return t
}

// admit asks the kernel who the client is: only the session's uid, proven (see PeerUID), gets
// to send a request.
func (f *Front) admit(c net.Conn) bool {
	local, _ := c.LocalAddr().(*net.TCPAddr)
	remote, _ := c.RemoteAddr().(*net.TCPAddr)
	if local == nil || remote == nil {
		return false
	}
	uid, err := f.opts.PeerUID(local, remote)
	if err != nil || uid != f.opts.UID {
		if err != nil {
			uid = -1
		}
		f.logRefusal(uid, remote, err)
		return false
	}
	return true
}

// connQueue is the HTTP server's listener: the admitted connections.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

type connKey struct{}
type targetKey struct{}

// newServer builds the HTTP server of the admitted connections and the reverse proxy to xpra.
// Why net/http rather than the byte relay ffl had: every request of a connection (keep-alive
// carries requests of any page the browser has open) and every WebSocket upgrade is checked
// (door) before xpra sees a byte of it, and bytes that are not HTTP (xpra's own protocol, a
// cross-protocol POST) get the server's 400 and are never relayed. Go's reverse proxy relays
// WebSocket upgrades (101, then both ways) and parses requests the way the rest of net/http
// does, so what the door checks is what xpra gets.
func (f *Front) newServer() (*http.Server, *httputil.ReverseProxy) {
	quiet := log.New(io.Discard, "", 0)
	tr := &http.Transport{
		Proxy: nil, // never the environment's proxy
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			target, _ := ctx.Value(targetKey{}).(string)
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			x, err := d.DialContext(dctx, "unix", target)
			if err != nil {
				return nil, err
			}
			tx := f.wrap(x)
			if tx == nil {
				x.Close()
				return nil, net.ErrClosed
			}
			f.mu.Lock()
			ok := (f.state == Ready || f.state == Starting) && f.target == target
			if ok {
				f.relayed[tx] = struct{}{}
			}
			f.mu.Unlock()
			if !ok {
				tx.Close()
				return nil, errors.New("the session went away")
			}
			return tx, nil
		},
		// One xpra connection per request: nothing is pooled from one Ready period to the next.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "xpra"
			pr.Out.Header.Del(ProxySecretHeader)
			if isClientPage(pr.Out) {
				// The page whole and fresh, so addClientScript can add ffl's script.
				for _, h := range []string{"If-None-Match", "If-Modified-Since"} {
					pr.Out.Header.Del(h)
				}
			}
			// Uncompressed from xpra, compressed here (compress.go).
			pr.Out = askUncompressed(pr.In, pr.Out)
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      quiet,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writePage(w, http.StatusServiceUnavailable, "The Firefox session does not answer", err.Error())
		},
		ModifyResponse: func(resp *http.Response) error {
			f.mu.Lock()
			starting := f.state == Starting
			f.mu.Unlock()
			if err := addClientScript(resp, f.opts.KeyboardLayout, starting); err != nil {
				return err
			}
			if err := revalidate(resp); err != nil {
				return err
			}
			return compressResponse(resp)
		},
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	srv := &http.Server{
		Handler:           http.HandlerFunc(f.handle),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       10 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          quiet,
		Protocols:         &protos,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	return srv, rp
}

// handle checks one request (door), then waits for, relays to, or explains the session.
func (f *Front) handle(w http.ResponseWriter, r *http.Request) {
	if reason := f.door(r); reason != "" {
		f.logForbidden(r, reason)
		w.Header().Set("Connection", "close")
		writePage(w, http.StatusForbidden, "This Firefox session refuses the request", reason)
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == ClientScriptPath {
		serveClientScript(w)
		return
	}
	if r.URL.Path == startingScriptPath || r.URL.Path == readyPath {
		f.serveStarting(w, r)
		return
	}
	if isDisconnected(r) {
		writeDisconnected(w, f.opts.IdleTimeout)
		return
	}
	if f.opts.NoClientReconnect && noReconnect(w, r) {
		return
	}
	c, _ := r.Context().Value(connKey{}).(net.Conn)
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
		if state == Starting && target != "" {
			state = Ready // xpra serves its page: relay while Firefox starts (Serve)
		}
		if state == Ready && c != nil {
			// A session that is no longer ready takes this connection with it (set).
			f.relayed[c] = struct{}{}
		}
		visit := f.onVisit
		f.mu.Unlock()
		if demand {
			go f.opts.OnDemand()
		}
		var wait time.Duration
		switch state {
		case Closed:
			w.Header().Set("Connection", "close")
			writePage(w, http.StatusServiceUnavailable, "No Firefox session is running on this port", "The session ended.")
			return
		case Ready:
			if visit != nil && isWebSocket(r) {
				go visit()
			}
			f.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, target)))
			return
		case Failed:
			w.Header().Set("Connection", "close")
			writePage(w, http.StatusServiceUnavailable, "The Firefox session could not start", reason)
			return
		case Idle:
			wait = time.Until(idleUntil)
			if wait <= 0 {
				w.Header().Set("Connection", "close")
				writePage(w, http.StatusServiceUnavailable, "No Firefox session is running on this port",
					"Start one again (from the Jupyter launcher, or with 'ffl-launch start').")
				return
			}
		case Starting:
			wait = time.Until(startUntil)
			if wait <= 0 {
				w.Header().Set("Connection", "close")
				writePage(w, http.StatusServiceUnavailable, "The Firefox session is still starting", "Reload this page in a moment.")
				return
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// isWebSocket reports a WebSocket upgrade request (RFC 6455: Upgrade "websocket", any case).
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
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

// writePage answers a request with a small HTML page: what the owner sees in the browser
// instead of a hang or another user's session, and what a refused request (403) is told.
func writePage(w http.ResponseWriter, status int, title, detail string) {
	body := fmt.Sprintf("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ffl: %s</title></head>"+
		"<body style=\"font-family:sans-serif;margin:2em\"><h1>%s</h1><p>%s</p></body></html>\n",
		htmlEscape(title), htmlEscape(title), htmlEscape(detail))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
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
