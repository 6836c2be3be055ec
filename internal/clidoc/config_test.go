package clidoc

import (
	"path/filepath"
	"testing"
)

// TestConfigManPage: docs/man/ffl.toml.5 is what pkg/config's key table generates
// (FFL_UPDATE_DOCS=1, i.e. make docs, rewrites it).
func TestConfigManPage(t *testing.T) {
	md, err := ConfigManPage()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(filepath.Join("..", "..", "docs", "man", "ffl.toml.5"), Roff(md)); err != nil {
		t.Error(err)
	}
}
