package ffprofile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWaitStartupCache(t *testing.T) {
	uid := os.Getuid()
	for _, tt := range []struct {
		name    string
		write   func(t *testing.T, cache string, stop <-chan struct{}) // runs beside the wait
		limit   time.Duration
		wantErr string // "" for a written cache
	}{
		{"written and left alone", func(t *testing.T, cache string, _ <-chan struct{}) {
			time.Sleep(200 * time.Millisecond)
			if err := os.WriteFile(cache, []byte("startupcache0002"), 0o644); err != nil {
				t.Error(err)
			}
		}, 10 * time.Second, ""},
		{"never written", func(*testing.T, string, <-chan struct{}) {}, 1500 * time.Millisecond, "no such file"},
		{"empty", func(t *testing.T, cache string, _ <-chan struct{}) {
			if err := os.WriteFile(cache, nil, 0o644); err != nil {
				t.Error(err)
			}
		}, 1500 * time.Millisecond, "an empty one"},
		{"still being written", func(t *testing.T, cache string, stop <-chan struct{}) {
			f, err := os.Create(cache)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for {
				select {
				case <-stop:
					return
				case <-time.After(300 * time.Millisecond):
					f.Write([]byte("more"))
				}
			}
		}, 2 * time.Second, "still changing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			profile := t.TempDir()
			if err := os.Mkdir(filepath.Join(profile, StartupCacheDir), 0o700); err != nil {
				t.Fatal(err)
			}
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				tt.write(t, filepath.Join(profile, StartupCacheDir, StartupCacheName), stop)
			}()
			fi, took, err := WaitStartupCache(profile, uid, tt.limit)
			close(stop)
			<-done
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr == "" && (fi.Size != 16 || took < settled):
				t.Errorf("size %d after %v, want 16 bytes after a second at least", fi.Size, took)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestStartupCacheRefusesOthersDir: a cache dir of another uid is not looked into.
func TestStartupCacheRefusesOthersDir(t *testing.T) {
	profile := t.TempDir()
	if err := os.Mkdir(filepath.Join(profile, StartupCacheDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := StartupCache(profile, os.Getuid()+1); err == nil {
		t.Error("a dir of another uid was accepted")
	}
}
