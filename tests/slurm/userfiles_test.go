package slurm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/slurmtest"
)

// downloadSite serves a page of pageColor that starts the download of /file/<name> once it has
// painted (Content-Disposition: attachment), the way a data portal's "Download" does.
type downloadSite struct {
	url   string
	files map[string][]byte
}

func newDownloadSite(t *testing.T, names ...string) *downloadSite {
	t.Helper()
	s := &downloadSite{files: map[string][]byte{}}
	for i, n := range names {
		data := make([]byte, 1<<20+i*4099)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		s.files[n] = data
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/page/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><html><head><title>ffl download</title></head><body style="background:#%06x;margin:0">`+
			`<script>setTimeout(() => { location.href = %q }, 300)</script></body></html>`, pageColor, "/file/"+strings.TrimPrefix(r.URL.Path, "/page/"))
	})
	mux.HandleFunc("/file/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/file/")
		data, ok := s.files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		_, _ = w.Write(data)
	})
	srv := httptest.NewServer(mux) // on 127.0.0.1, where the session's Firefox reaches it
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// TestDownloadsSurviveSlurmEnds: a download made in a session of a real Slurm job lands in the
// user's ~/Downloads; the job then ends the Slurm ways, scancel (the grace path) and the time
// limit (TIMEOUT, no --signal), each followed by the Epilog, and every download is intact
// afterwards: same checksum, the user's, the mode the submitter's umask gives. The time-limit
// job also shows the end warning at once (its limit is within end_warning): squeue answered
// from inside the job.
func TestDownloadsSurviveSlurmEnds(t *testing.T) {
	c := cluster(t)
	umask := syscall.Umask(0o022)
	syscall.Umask(umask)
	names := []string{fmt.Sprintf("scancel-%d.bin", time.Now().UnixNano()), fmt.Sprintf("timelimit-%d.bin", time.Now().UnixNano())}
	s := newDownloadSite(t, names...)
	noSignal := noSignalScript(t, c)
	// One user each: two sessions of one user at once would share the persistent profile, and
	// the second would open on ffl's "temporary profile" notice instead of the page.
	variants := []struct {
		name string
		user User
		opts submitOpts
		end  func(*testing.T, *Job)
	}{
		{"scancel", c.users["ffluser2"], submitOpts{}, func(t *testing.T, j *Job) { j.cancel(t) }},
		{"time_limit", c.users["ffluser1"], submitOpts{script: noSignal, flags: []string{"--time=1"}}, func(t *testing.T, j *Job) { j.waitGone(t, 4*time.Minute) }},
	}
	for i, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			name := names[i]
			u := v.user
			dl := filepath.Join(u.Home, "Downloads")
			t.Cleanup(func() { _ = os.Remove(filepath.Join(dl, name)) })
			o := v.opts
			o.user = u
			o.args = []string{"--json", "--url", s.url + "/page/" + name}
			j := c.submit(t, o)
			info := j.waitReady(t)
			c.seeFirefox(t, u, info)
			p := filepath.Join(dl, name)
			want := sha256.Sum256(s.files[name])
			if !slurmtest.WaitUntil(90*time.Second, func() bool {
				b, err := os.ReadFile(p)
				return err == nil && sha256.Sum256(b) == want
			}) {
				t.Fatalf("job %s: the download did not arrive complete at %s", j.ID, p)
			}
			v.end(t, j)
			c.assertClean(t, j, []int{info.Port}, cleanOpts{})
			st, _ := j.state()
			t.Logf("job %s ended: %s", j.ID, st)
			if want := map[string]string{"scancel": "CANCELLED", "time_limit": "TIMEOUT"}[v.name]; st != want {
				t.Errorf("job %s: state %s, want %s", j.ID, st, want)
			}
			b, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(b, s.files[name]) {
				t.Errorf("job %s: after %s the download %s is not intact (%d bytes, %v)", j.ID, v.name, p, len(b), err)
			}
			var fi syscall.Stat_t
			if err := syscall.Lstat(p, &fi); err != nil {
				t.Fatal(err)
			}
			if int(fi.Uid) != u.UID || fi.Mode&0o777 != uint32(0o666&^umask) {
				t.Errorf("job %s: download owned by %d mode %03o, want %d mode %03o", j.ID, fi.Uid, fi.Mode&0o777, u.UID, 0o666&^umask)
			}
			if v.name == "time_limit" {
				if _, ok := findLog(j.launcherLog(), "end warning shown"); !ok {
					t.Errorf("job %s: no end warning before the time limit", j.ID)
				}
			}
		})
	}
}
