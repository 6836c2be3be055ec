// Package control is the supervisor's API: HTTP over a unix socket in the job's 0700 runtime dir,
// so that `ffl-launch start/stop/list` and a Jupyter extension can start and stop sessions of a
// running job. Only the job's user can reach it: the directory is 0700 and every connection's
// peer uid is checked with SO_PEERCRED.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// EnvSocket is the variable through which the supervisor advertises its socket to the command it
// wraps (e.g. jupyterhub-singleuser and its server extensions).
const EnvSocket = lifecycle.EnvControlSocket

// Service is what the API exposes; *lifecycle.Manager implements it.
type Service interface {
	Start(ctx context.Context, req lifecycle.StartRequest) (lifecycle.Info, error)
	Stop(ctx context.Context, port int) error
	// Wait returns when the session on port has ended.
	Wait(ctx context.Context, port int) error
	List() []lifecycle.Info
}

// apiError is the wire form of an error; Kind lets the client map it back to the lifecycle
// sentinel, so `ffl-launch start` exits with the same code as the supervisor would.
type apiError struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

var kinds = []struct {
	kind string
	err  error
	code int
}{
	{"bad_input", lifecycle.ErrBadInput, http.StatusBadRequest},
	{"not_found", lifecycle.ErrNotFound, http.StatusNotFound},
	{"stopping", lifecycle.ErrStopping, http.StatusServiceUnavailable},
	{"missing", lifecycle.ErrMissing, http.StatusFailedDependency},
}

// Server serves Service on a unix socket.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

type peerKey struct{}

// Serve listens on path (removing a stale socket of ours first) and serves svc until Close. The
// socket is 0600; connections from any other uid than ours are refused.
func Serve(path string, svc Service, log *logrus.Entry) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	h := &handler{svc: svc, log: log}
	mux.HandleFunc("GET /v1/sessions", h.list)
	mux.HandleFunc("POST /v1/sessions", h.start)
	mux.HandleFunc("DELETE /v1/sessions/{port}", h.stop)
	mux.HandleFunc("GET /v1/sessions/{port}/wait", h.wait)
	me := os.Getuid()
	s := &Server{path: path, ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           peerCheck(me, mux),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uid := -1
			if uc, ok := c.(*net.UnixConn); ok {
				uid = peerUID(uc)
			}
			return context.WithValue(ctx, peerKey{}, uid)
		},
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	_ = os.Remove(s.path)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func peerUID(c *net.UnixConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	uid := -1
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			uid = int(cred.Uid)
		}
	})
	return uid
}

func peerCheck(uid int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer, _ := r.Context().Value(peerKey{}).(int); peer != uid {
			writeErr(w, http.StatusForbidden, "forbidden", fmt.Errorf("uid %d may not control uid %d's sessions", peer, uid))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type handler struct {
	svc Service
	log *logrus.Entry
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.svc.List())
}

func (h *handler) start(w http.ResponseWriter, r *http.Request) {
	var req lifecycle.StartRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, http.StatusBadRequest, "bad_input", fmt.Errorf("request body: %w", err))
		return
	}
	info, err := h.svc.Start(r.Context(), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, info)
}

func portOf(w http.ResponseWriter, r *http.Request) (int, bool) {
	port, err := strconv.Atoi(r.PathValue("port"))
	if err != nil || port < 1 || port > 65535 {
		writeErr(w, http.StatusBadRequest, "bad_input", fmt.Errorf("port %q: not a port number", r.PathValue("port")))
		return 0, false
	}
	return port, true
}

// wait answers when the session has ended (a long poll: `ffl-launch proxy` stays in the
// foreground exactly as long as its session lives).
func (h *handler) wait(w http.ResponseWriter, r *http.Request) {
	port, ok := portOf(w, r)
	if !ok {
		return
	}
	if err := h.svc.Wait(r.Context(), port); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"ended": port})
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request) {
	port, ok := portOf(w, r)
	if !ok {
		return
	}
	if err := h.svc.Stop(r.Context(), port); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"stopped": port})
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			writeErr(w, k.code, k.kind, err)
			return
		}
	}
	writeErr(w, http.StatusInternalServerError, "internal", err)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, kind string, err error) {
	writeJSON(w, code, apiError{Error: err.Error(), Kind: kind})
}

// RemoteError is an error the supervisor reported; it unwraps to the lifecycle sentinel of its
// kind, so callers pick exit codes with errors.Is as for local errors.
type RemoteError struct {
	Msg  string
	Kind error
}

func (e *RemoteError) Error() string { return e.Msg }

// Unwrap returns the lifecycle sentinel of the error's kind (nil for an internal error).
func (e *RemoteError) Unwrap() error { return e.Kind }

// Client talks to a supervisor's socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path that talks only to a supervisor of its own
// uid (see Dial).
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return Dial(ctx, path, os.Geteuid())
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Dial connects to the control socket at path and proves, before a byte is sent, that its
// server runs as uid: the kernel's SO_PEERCRED answer for this connection names the process
// that created the listening socket. Another user who squatted the directory the socket is
// looked up in (or set $FFL_CONTROL_SOCKET for the victim) would otherwise receive the start
// URL and answer with its own port, "stopped" or escape sequences for the terminal.
func Dial(ctx context.Context, path string, uid int) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	peer := -1
	if ok {
		peer = peerUID(uc)
	}
	if peer != uid {
		c.Close()
		if peer < 0 {
			return nil, fmt.Errorf("%w: %s: the kernel names no server for it: refused", ErrForeignServer, path)
		}
		return nil, fmt.Errorf("%w: %s is served by uid %d, not by you (uid %d): refused, nothing was sent to it (unset FFL_CONTROL_SOCKET, or start your own with 'ffl-launch run')", ErrForeignServer, path, peer, uid)
	}
	return c, nil
}

// ErrNoSupervisor is returned when nothing listens on the socket.
var ErrNoSupervisor = errors.New("no supervisor")

// ErrForeignServer is returned when the socket's server is not of the caller's uid. It wraps
// ErrNoSupervisor: there is no supervisor of the caller's there.
var ErrForeignServer = fmt.Errorf("%w of yours", ErrNoSupervisor)

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://ffl"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && errors.Is(ue.Err, ErrForeignServer) {
			return ue.Err // its own line says what to do
		}
		return fmt.Errorf("%w at %s: %v: is 'ffl-launch run' running in this job?", ErrNoSupervisor, c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		if json.Unmarshal(data, &ae) != nil || ae.Error == "" {
			return fmt.Errorf("supervisor: HTTP %d", resp.StatusCode)
		}
		for _, k := range kinds {
			if k.kind == ae.Kind {
				return &RemoteError{Msg: ae.Error, Kind: k.err}
			}
		}
		return &RemoteError{Msg: ae.Error}
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Start asks the supervisor for a new session and returns when it is ready.
func (c *Client) Start(ctx context.Context, req lifecycle.StartRequest) (lifecycle.Info, error) {
	var info lifecycle.Info
	err := c.do(ctx, http.MethodPost, "/v1/sessions", req, &info)
	return info, err
}

// Stop asks the supervisor to stop one session.
func (c *Client) Stop(ctx context.Context, port int) error {
	return c.do(ctx, http.MethodDelete, "/v1/sessions/"+strconv.Itoa(port), nil, nil)
}

// Wait returns when the session on port has ended, or ctx is done.
func (c *Client) Wait(ctx context.Context, port int) error {
	return c.do(ctx, http.MethodGet, "/v1/sessions/"+strconv.Itoa(port)+"/wait", nil, nil)
}

// List returns the supervisor's sessions.
func (c *Client) List(ctx context.Context) ([]lifecycle.Info, error) {
	var out []lifecycle.Info
	err := c.do(ctx, http.MethodGet, "/v1/sessions", nil, &out)
	return out, err
}
