// Package gobuild is the one way ffl's tests and benchmarks build a program of this module: into
// a directory every user may enter (the programs often run under another uid: the helper, the
// attacker, faketree), with cgo (os/user asks NSS). It imports nothing of ffl, so every test
// helper can use it, pkg/proc's included.
package gobuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// In builds the main package pkg (an import path of this module) into dir, made
// world-searchable, and returns the binary's path (named after pkg's last element).
func In(dir, pkg string) (string, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(goBin, "build", "-buildvcs=false", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}
