package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ffl-hpc/ffl/pkg/lifecycle"
)

// fakeService records calls and fails the way a Manager does.
type fakeService struct {
	mu       sync.Mutex
	sessions map[int]lifecycle.Info
	ended    map[int]chan struct{}
}

func (f *fakeService) Start(ctx context.Context, req lifecycle.StartRequest) (lifecycle.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case req.Port == 80:
		return lifecycle.Info{}, fmt.Errorf("%w: port 80 is outside the allowed range", lifecycle.ErrBadInput)
	case req.Port == 99:
		return lifecycle.Info{}, fmt.Errorf("%w: xpra not found", lifecycle.ErrMissing)
	case req.Port == 98:
		return lifecycle.Info{}, errors.New("xpra exited")
	}
	info := lifecycle.Info{Port: req.Port, URL: fmt.Sprintf("http://127.0.0.1:%d/", req.Port)}
	f.sessions[req.Port] = info
	return info, nil
}

func (f *fakeService) Stop(ctx context.Context, port int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sessions[port]; !ok {
		return fmt.Errorf("%w: port %d", lifecycle.ErrNotFound, port)
	}
	delete(f.sessions, port)
	if ch := f.ended[port]; ch != nil {
		close(ch)
		delete(f.ended, port)
	}
	return nil
}

func (f *fakeService) Wait(ctx context.Context, port int) error {
	f.mu.Lock()
	if _, ok := f.sessions[port]; !ok {
		f.mu.Unlock()
		return fmt.Errorf("%w: port %d", lifecycle.ErrNotFound, port)
	}
	if f.ended[port] == nil {
		f.ended[port] = make(chan struct{})
	}
	ch := f.ended[port]
	f.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeService) List() []lifecycle.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []lifecycle.Info
	for _, i := range f.sessions {
		out = append(out, i)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	svc := &fakeService{sessions: map[int]lifecycle.Info{}, ended: map[int]chan struct{}{}}
	srv, err := Serve(sock, svc, logrus.NewEntry(logrus.New()))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	c := NewClient(sock)
	ctx := context.Background()
	info, err := c.Start(ctx, lifecycle.StartRequest{Port: 8001})
	if err != nil || info.Port != 8001 {
		t.Fatalf("start: %v %+v", err, info)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", err, list)
	}
	cases := []struct {
		port int
		want error
	}{{80, lifecycle.ErrBadInput}, {99, lifecycle.ErrMissing}}
	for _, tc := range cases {
		_, err := c.Start(ctx, lifecycle.StartRequest{Port: tc.port})
		if !errors.Is(err, tc.want) {
			t.Errorf("start %d: %v, want %v", tc.port, err, tc.want)
		}
	}
	if _, err := c.Start(ctx, lifecycle.StartRequest{Port: 98}); err == nil || errors.Is(err, lifecycle.ErrBadInput) || err.Error() != "xpra exited" {
		t.Errorf("internal error: %v", err)
	}
	// Wait is a long poll that answers when the session ends.
	waited := make(chan error, 1)
	go func() { waited <- c.Wait(ctx, 8001) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned while the session lives: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := c.Wait(ctx, 8003); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("wait unknown: %v", err)
	}
	if err := c.Stop(ctx, 8002); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("stop unknown: %v", err)
	}
	if err := c.Stop(ctx, 8001); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := <-waited; err != nil {
		t.Errorf("wait after stop: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := c.List(ctx); !errors.Is(err, ErrNoSupervisor) {
		t.Errorf("after close: %v, want ErrNoSupervisor", err)
	}
}

// TestPeerCheck: a request from another uid is refused before it reaches the service.
func TestPeerCheck(t *testing.T) {
	called := false
	h := peerCheck(1000, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	for _, tc := range []struct {
		peer int
		code int
	}{{1000, 200}, {1001, 403}, {0, 403}, {-1, 403}} {
		called = false
		req := httptest.NewRequest(http.MethodGet, "/v1/sessions", nil)
		req = req.WithContext(context.WithValue(req.Context(), peerKey{}, tc.peer))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || called != (tc.code == 200) {
			t.Errorf("peer %d: code %d called %v", tc.peer, rec.Code, called)
		}
	}
}
