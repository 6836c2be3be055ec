package reclaim

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ffl-hpc/ffl/internal/faketree/ftest"
	"github.com/ffl-hpc/ffl/internal/reclaimtest"
)

// helperArg makes the test binary act as the privilege-dropped helper (see TestMain): Helper
// re-executes /proc/self/exe, which in a test is the test binary.
const helperArg = "reclaim-test-helper"

var testHelper = Helper{Args: []string{helperArg}}

// faketreeBin is built once by TestMain (when running as root).
var faketreeBin string

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		_ = ServeHelper(os.Args[2], os.Stdout, nil)
		os.Exit(0)
	}
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "reclaim-faketree-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if faketreeBin, err = ftest.BuildIn(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// newFixture is reclaimtest's fixture with this binary's faketree (root only: skips otherwise).
func newFixture(t *testing.T) *reclaimtest.Fixture { return reclaimtest.New(t, faketreeBin) }

// testOpts are the Options the tests run reclaim with on f.
func testOpts(f *reclaimtest.Fixture) Options {
	return Options{BootID: f.BootID, Grace: 300 * time.Millisecond, XDir: f.XDir, KillWait: 5 * time.Second}
}
