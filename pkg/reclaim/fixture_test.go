package reclaim

import (
	"os"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/faketree/ftest"
	"github.com/ffl-hpc/ffl/internal/reclaimtest"
)

// faketreeBin is built once by TestMain (when running as root).
var faketreeBin string

func TestMain(m *testing.M) {
	os.Exit(ftest.RunAsRoot(m, "reclaim-faketree-", &faketreeBin))
}

// newFixture is reclaimtest's fixture with this binary's faketree (root only: skips otherwise).
func newFixture(t *testing.T) *reclaimtest.Fixture { return reclaimtest.New(t, faketreeBin) }

// testOpts are the Options the tests run reclaim with on f.
func testOpts(f *reclaimtest.Fixture) Options {
	return Options{BootID: f.BootID, Grace: 300 * time.Millisecond, XDir: f.XDir, KillWait: 5 * time.Second}
}
