#!/bin/bash
# bench.sh: ffl's benchmarks (launcher grace path, time-to-ready overhead and memory; Epilog
# without and with leftovers; sweep), printed as ONE markdown table with every figure, its target
# and pass/miss, and saved to bench-results.md. Figures, never timed assertions: a miss is
# reported with its explanation, not "fixed" by the measurement. A leftover is no figure: a job
# whose processes or directories outlive its SIGTERM (or the Epilog) fails the run (exit 1, listed
# under the table).
#
#   sudo make bench                      # = make build && scripts/bench.sh
#   sudo scripts/bench.sh -scale 0.3     # quicker, noisier (fewer repetitions)
#   sudo scripts/bench.sh -only sweep    # one section: launch, ready, session, node, revisit, jupyter, epilog, attack, sweep
#
# Runs as root: the Epilog and the sweep are root's, and the launcher is started as a non-root
# bench user (fflbench, created with useradd when missing; root's sessions are refused by design).
# Scratch space: $FFL_BENCH_DIR (default /var/tmp/ffl-bench) and /dev/shm/ffl-bench-sweep (the sweep's
# trees, removed at the end); the node-full figures add users fflbench1..8 (useradd). The real
# sessions (side by side with the floor and the peer configuration, then 1, 4 and 8 users at
# once, and the Jupyter visits: tests/jupyter's TestVisitBench, with the local Slurm and
# JupyterHub, under /run/ffl-slurm-suite.lock) take most of the run; perf (linux-perf) adds a profile to the notes for every missed
# target.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (sudo make bench): the Epilog and sweep run as root and the launcher as a bench user" >&2; exit 2; }
for b in bin/ffl-launch bin/ffl-epilog; do
  [ -x "$b" ] || { echo "bench.sh: $b missing: run 'make build' first (or 'sudo make bench')" >&2; exit 2; }
done
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
SCRATCH=${FFL_BENCH_DIR:-/var/tmp/ffl-bench}
BIN=$SCRATCH/bin
mkdir -p "$BIN"
chmod 0755 "$SCRATCH" "$BIN"
# The bench user must be able to execute the launcher and the fakes: copy them where it can.
CGO_ENABLED=1 go build -o "$BIN/" ./internal/fakexpra ./internal/faketree ./internal/hostile ./internal/cmd/ffl-bench
install -m 0755 bin/ffl-launch "$BIN/ffl-launch"
# Builds that keep their symbols, for the perf profiles taken after a missed target (the
# measured binaries are the stripped ones of `make build`).
CGO_ENABLED=1 go build -trimpath -o "$BIN/ffl-launch-prof" ./cmd/ffl-launch
CGO_ENABLED=1 go build -trimpath -o "$BIN/ffl-epilog-prof" ./cmd/ffl-epilog
# The Go floor of the Epilog's figure: a program that does nothing, linked like ffl-epilog (cgo for
# os/user, stripped).
mkdir -p "$SCRATCH/gofloor"
cat > "$SCRATCH/gofloor/main.go" <<'GO'
package main

import "os/user"

var lookup = user.Lookup

func main() {
	if lookup == nil {
		panic("unreachable")
	}
}
GO
(cd "$SCRATCH/gofloor" && CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o "$BIN/gofloor" main.go)
VERSION=$(git describe --always --dirty 2>/dev/null || echo dev)
"$BIN/ffl-bench" -scratch "$SCRATCH" -bin "$BIN" -epilog bin/ffl-epilog -out bench-results.md -version "$VERSION" "$@"
