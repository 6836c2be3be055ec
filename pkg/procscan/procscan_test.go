package procscan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ffl-hpc/ffl/pkg/proc"
	"github.com/ffl-hpc/ffl/pkg/reexec"
)

// childArg makes the test binary a scan child on a fixture procfs (see TestMain).
const childArg = "procscan-test-child"

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == childArg {
		_ = ServeFS(proc.FS{Root: os.Args[2]}, os.Args[3], os.Stdout)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fixture writes a procfs look-alike: pids 200-202 of uid 1000 carry the marker of job 1,
// 203 is another job, 204's environ is a FIFO (opening it blocks until a writer comes: a read
// of another process's memory that never returns), 205 is a root slurmstepd of job 77.
func fixture(t *testing.T) (root, fifo string) {
	t.Helper()
	root = t.TempDir()
	add := func(pid int, comm string, uid int, environ, cmdline string) string {
		d := filepath.Join(root, strconv.Itoa(pid))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := strconv.Itoa(pid)
		u := strconv.Itoa(uid)
		files := map[string]string{
			"stat":    p + " (" + comm + ") S 1 " + p + " " + p + " 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 " + strconv.Itoa(1000+pid) + " 1 1\n",
			"status":  "Name:\t" + comm + "\nTgid:\t" + p + "\nPid:\t" + p + "\nUid:\t" + u + "\t" + u + "\t" + u + "\t" + u + "\n",
			"cmdline": cmdline,
		}
		if environ != "" {
			files["environ"] = environ
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(d, "environ")
	}
	for pid := 200; pid <= 202; pid++ {
		add(pid, "xpra", 1000, "FFL_SESSION=1/n1/8001/\x00", "")
	}
	add(203, "xpra", 1000, "FFL_SESSION=2/n1/8001/\x00", "")
	fifo = add(204, "trap", 1000, "", "")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	add(205, "slurmstepd", 0, "", "slurmstepd: [77.batch]\x00")
	return root, fifo
}

// release opens the FIFO for writing, so every reader stuck opening it goes on (tests disarm
// what they arm), and closes it.
func release(fifo string) {
	if fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
		unix.Close(fd)
	}
}

func scanners(root string) map[string]Scanner {
	return map[string]Scanner{
		"in process": InProcess{FS: proc.FS{Root: root}},
		"child":      Child{Command: reexec.Command{Args: []string{childArg, root}}},
	}
}

func query() proc.MarkerQuery {
	return proc.MarkerQuery{UID: 1000, Name: "FFL_SESSION", Prefixes: []string{"1/n1/"},
		First: []proc.Identity{{PID: 200, StartTime: 1200, UID: 1000}, {PID: 201, StartTime: 1201, UID: 1000}}}
}

func TestMarked(t *testing.T) {
	root, fifo := fixture(t)
	if err := os.Remove(fifo); err != nil { // no trap here
		t.Fatal(err)
	}
	for name, s := range scanners(root) {
		t.Run(name, func(t *testing.T) {
			var pids []int
			st, err := s.Marked(context.Background(), query(), func(id proc.Identity, _ int) { pids = append(pids, id.PID) })
			slices.Sort(pids)
			if err != nil || !slices.Equal(pids, []int{200, 201, 202}) || st.Environs == 0 {
				t.Errorf("got %v, %+v, %v", pids, st, err)
			}
			jobs, err := s.SlurmJobs(context.Background())
			if err != nil || len(jobs) != 1 || !jobs["77"] {
				t.Errorf("slurm jobs %v, %v", jobs, err)
			}
		})
	}
}

// TestMarkedStuckRead: a read that never returns costs the caller the deadline, not more, and
// what was found before it is kept.
func TestMarkedStuckRead(t *testing.T) {
	root, fifo := fixture(t)
	defer release(fifo)
	for name, s := range scanners(root) {
		t.Run(name, func(t *testing.T) {
			q := query()
			q.First = append(q.First, proc.Identity{PID: 204, StartTime: 1204, UID: 1000}) // the trap right after
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			var pids []int
			t0 := time.Now()
			_, err := s.Marked(ctx, q, func(id proc.Identity, _ int) { pids = append(pids, id.PID) })
			took := time.Since(t0)
			t.Logf("%v after %s, found %v", err, took, pids)
			if err == nil || took > 500*time.Millisecond+reexec.KillWait+time.Second {
				t.Errorf("err %v after %s", err, took)
			}
			if !slices.Contains(pids, 200) || !slices.Contains(pids, 201) {
				t.Errorf("the matches found before the stuck read are lost: %v", pids)
			}
		})
	}
	if _, err := (Child{Command: reexec.Command{Args: []string{childArg, root}}}).Marked(context.Background(), proc.MarkerQuery{UID: 0, Name: "X"}, nil); !errors.Is(err, proc.ErrRefused) {
		t.Errorf("uid 0: %v", err)
	}
}
