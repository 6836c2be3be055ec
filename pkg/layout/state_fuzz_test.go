package layout

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/pkg/proc"
)

// The state and supervisor files are read by the root Epilog from directories the user
// controls: whatever bytes they hold, the parsers must not panic, must cap the size, and must
// only accept records whose names are safe path components and whose numbers are in range.

func seedState() []byte {
	s := State{Schema: StateSchema, Job: "123", Node: "n1", BootID: "b", UID: 1000, User: "alice", Port: 8001,
		Display: ":100", Created: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Marker: "123/n1/8001/",
		SessionDir: "/home/alice/s", RuntimeDir: "/run/ffl/job-123/session-8001",
		Supervisor: proc.Identity{PID: 10, StartTime: 20, UID: 1000},
		Processes:  []proc.Identity{{PID: 11, StartTime: 21, UID: 1000}}}
	data, _ := s.Marshal()
	return data
}

func FuzzParseState(f *testing.F) {
	f.Add(seedState())
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`{"schema":1,"job":"../x","node":"n","port":1}`))
	f.Add([]byte(`{"schema":2,"job":"1","node":"n","port":1}`))
	f.Add([]byte(strings.Repeat(" ", MaxStateSize) + "{}"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState(data)
		if err != nil {
			return
		}
		if len(data) > MaxStateSize {
			t.Fatalf("accepted %d bytes", len(data))
		}
		if s.Schema != StateSchema || ValidComponent(s.Job) != nil || ValidComponent(s.Node) != nil ||
			s.Port < 1 || s.Port > MaxPort || s.UID < 0 || len(s.Processes) > MaxProcesses {
			t.Fatalf("accepted an invalid state: %+v", s)
		}
		again, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(again) <= MaxStateSize {
			s2, err := ParseState(again)
			if err != nil {
				t.Fatalf("re-encoded state refused: %v", err)
			}
			third, _ := s2.Marshal()
			if !bytes.Equal(again, third) {
				t.Fatalf("round trip changed the state:\n%s\n%s", again, third)
			}
		}
	})
}

func FuzzParseSupervisor(f *testing.F) {
	sup := Supervisor{Schema: StateSchema, Job: "local-42", Node: "n1", BootID: "b", Process: proc.Identity{PID: 1, StartTime: 2, UID: 3},
		Socket: "/run/ffl/job-1/control.sock", Started: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	data, _ := sup.Marshal()
	f.Add(data)
	f.Add([]byte(`{"schema":1,"job":"1","node":"n"}`))
	f.Add([]byte(`{"schema":1,"job":"1","node":"n"} {}`))
	f.Add([]byte(`{"schema":1,"job":"1","node":"n","extra":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSupervisor(data)
		if err != nil {
			return
		}
		if len(data) > MaxStateSize || s.Schema != StateSchema || ValidComponent(s.Job) != nil || ValidComponent(s.Node) != nil {
			t.Fatalf("accepted an invalid supervisor record: %+v", s)
		}
		again, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(again) <= MaxStateSize {
			if _, err := ParseSupervisor(again); err != nil {
				t.Fatalf("re-encoded record refused: %v", err)
			}
		}
	})
}
