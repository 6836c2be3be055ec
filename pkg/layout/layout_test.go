package layout

import "testing"

func TestPrivateTempName(t *testing.T) {
	name := PrivateTempName(1000, "0123456789abcdef")
	if name != "ffl-1000.0123456789abcdef" {
		t.Errorf("PrivateTempName = %q", name)
	}
	if uid, err := ParsePrivateTempName(name); err != nil || uid != 1000 {
		t.Errorf("parse %q = %d, %v", name, uid, err)
	}
	for _, bad := range []string{"ffl-1000", "ffl-1000.", "ffl-1000.0123456789ABCDEF", "ffl-1000.0123456789abcde",
		"ffl-01000.0123456789abcdef", "ffl-x.0123456789abcdef", "ffl-1000.0123456789abcdef0", "job-1.0123456789abcdef"} {
		if _, err := ParsePrivateTempName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParsePrivateTempName(f *testing.F) {
	f.Add("ffl-1000.0123456789abcdef")
	f.Add("ffl-0.ffffffffffffffff")
	f.Fuzz(func(t *testing.T, name string) {
		uid, err := ParsePrivateTempName(name)
		if err != nil {
			return
		}
		if PrivateTempName(uid, name[len(name)-16:]) != name {
			t.Fatalf("%q parsed as uid %d", name, uid)
		}
	})
}
