package safefs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzMkdirAll: whatever rel is, MkdirAll either fails or returns a directory inside root, and
// never creates anything outside root.
func FuzzMkdirAll(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a/../b", "/abs", "a//b/./c", "x\x00y", "a\nb/c", "...", "a/..",
		"./", "", strings.Repeat("d/", 40), "link/x", "link"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		base := t.TempDir()
		root := filepath.Join(base, "root")
		outside := filepath.Join(base, "outside")
		build(t, base, "root/", "outside/", "root/link->"+outside)
		if err := os.Chmod(root, 0o700); err != nil {
			t.Fatal(err)
		}
		d, err := MkdirAll(root, rel, 0o700, -1)
		if err == nil {
			defer d.Close()
			if d.Name() != root && !strings.HasPrefix(d.Name(), root+"/") {
				t.Fatalf("MkdirAll(%q) = %q, outside %s", rel, d.Name(), root)
			}
			if fi, err := os.Stat(d.Name()); err != nil || !fi.IsDir() {
				t.Fatalf("MkdirAll(%q) returned %q which is not a directory: %v", rel, d.Name(), err)
			}
			for _, c := range strings.Split(rel, "/") {
				if c == ".." {
					t.Fatalf("MkdirAll(%q) accepted \"..\"", rel)
				}
			}
		}
		if names := listNames(t, outside); len(names) != 0 {
			t.Fatalf("MkdirAll(%q) created %q outside root", rel, names)
		}
		if names := listNames(t, base); strings.Join(names, ",") != "outside,root" {
			t.Fatalf("MkdirAll(%q) created %q next to root", rel, names)
		}
	})
}

// FuzzWriteReadFile: WriteFileAtomic then ReadFileCapped round-trips any data under any valid
// name, refuses invalid names, and never leaves a temp file or writes outside dir.
func FuzzWriteReadFile(f *testing.F) {
	f.Add("state.json", []byte(`{"schema":1}`))
	f.Add("a/b", []byte("x"))
	f.Add("..", []byte(""))
	f.Add("new\nline", []byte("\x00\xff"))
	f.Add(strings.Repeat("n", 250), []byte("long name"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		base := t.TempDir()
		dirPath := filepath.Join(base, "dir")
		if err := os.Mkdir(dirPath, 0o700); err != nil {
			t.Fatal(err)
		}
		d := mustOpenDir(t, dirPath)
		err := WriteFileAtomic(d, name, data, 0o600)
		valid := checkName(name) == nil
		if !valid && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("WriteFileAtomic(%q) = %v, want ErrInvalidName", name, err)
		}
		names := listNames(t, dirPath)
		if err != nil {
			if len(names) != 0 {
				t.Fatalf("failed WriteFileAtomic(%q) (%v) left %q", name, err, names)
			}
			return
		}
		if len(names) != 1 || names[0] != name {
			t.Fatalf("WriteFileAtomic(%q) left %q", name, names)
		}
		got, err := ReadFileCapped(d, name, int64(len(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadFileCapped(%q) = %q, %v; want %q", name, got, err, data)
		}
		if len(data) > 0 {
			if _, err := ReadFileCapped(d, name, int64(len(data)-1)); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadFileCapped(%q, len-1) = %v, want ErrTooLarge", name, err)
			}
		}
		if names := listNames(t, base); len(names) != 1 {
			t.Fatalf("written outside dir: %q", names)
		}
	})
}
