#!/bin/bash
# versions.sh [SUITE...]: tests/slurm's scenarios on the Slurm of newer Debian releases, each
# in a node made from a debootstrapped image (`make slurm-versions-test`; root).
#
#   trixie  Slurm 24.11, xpra 6.5.5 built from source in the image (Debian trixie has no xpra)
#   sid     Slurm 26.05, Debian's xpra 3.1.5 with its HTML5 client
#
# scripts/node-image.sh builds each image once (cached under /var/cache/ffl/node-image, keyed
# by its package list); ffl and the suite's test binary are built here on the host; then, per
# suite, holding the machine-wide suite lock /run/ffl-slurm-suite.lock like every suite that
# runs Slurm daemons, image-init.sh makes the node (its own PID, mount, network, UTS and IPC
# namespaces over the image) and runs the test binary in it: the image's munged, slurmctld and
# slurmd, started by start-local-slurm.sh as on the host, run the scenarios below. Everything
# the node ran ends with its PID namespace. The log names the Slurm version of every run, and
# the last lines are a table: suite, Slurm version, result, seconds.
#   FFL_VERSIONS_RUN   the tests (go test -run)                  [the scenarios below]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=(trixie sid)
# normal end, scancel, time limit, SIGKILL + Epilog, two users on one node (the bystanders of
# every scenario are two users' sessions; 11 runs two users' jobs on one port), a launcher
# killed at each of its steps (10), the node doctor (00), and the template's srun step CPUs;
# job_container/tmpfs (12) on both; one newer mode per suite (each about 90 s: a scancel and a
# time limit): SignalChildrenProcesses=yes (13) on trixie, PrologFlags=RunInJob (14) on sid;
# on sid also namespace/linux with PID namespaces (15, about 40 s: scancel, SIGKILL + Epilog)
# and the same with RunInJob (16) and with user namespaces (18, each about 30 s); on trixie
# RunInJob's scancel alone (17).
BASE_SCENARIOS='00_node_doctor|01_normal_end|02_scancel|03_time_limit|04_sigkill|10_failpoints|11_same_port_two_users_at_once|12_job_container_tmpfs'
declare -A MODE_SCENARIO=([trixie]="13_signal_children_processes|17_prologflags_runinjob_scancel" [sid]="14_prologflags_runinjob|15_namespace_linux_pid|16_namespace_linux_pid_runinjob|18_namespace_linux_pid_user")
run_tests() { # SUITE
  echo "${FFL_VERSIONS_RUN:-^(TestScenarios|TestTemplateStepCPUs)\$/^($BASE_SCENARIOS|${MODE_SCENARIO[$1]})\$}"
}
log() { echo "slurm-versions: $*" >&2; }
die() { echo "slurm-versions: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, namespaces, Slurm daemons)"
for b in unshare chroot ip flock go; do command -v "$b" >/dev/null || die "$b missing: run scripts/deps.sh as root"; done
for s in "${SUITES[@]}"; do case $s in trixie | sid) ;; *) die "unknown suite $s: want trixie or sid" ;; esac; done

T0=$(date +%s)
WORK=$(mktemp -d /var/tmp/ffl-slurm-versions.XXXXXX)
chmod 0755 "$WORK"
# A failed run keeps WORK: each node's files are in WORK/SUITE/upper (the overlay's upper layer:
# the daemons' logs under var/tmp/ffl-slurm/log, the jobs' output in home/ffluser*).
rc=0
cleanup() {
  if [ "$rc" = 0 ]; then rm -rf --one-file-system "$WORK"; else log "kept $WORK (each node's files in $WORK/SUITE/upper)"; fi
}
trap cleanup EXIT
trap 'rc=143; exit 143' TERM INT

# The images build side by side (a fresh build is mostly download and dpkg; each suite has its
# own lock in node-image.sh); a cached one is found at once.
declare -A IMG BUILD
for s in "${SUITES[@]}"; do
  "$ROOT/scripts/node-image.sh" "$s" >"$WORK/image-$s" &
  BUILD[$s]=$!
done
for s in "${SUITES[@]}"; do
  wait "${BUILD[$s]}" || die "image $s: scripts/node-image.sh failed (its log is above)"
  IMG[$s]=$(tail -n1 "$WORK/image-$s")
  log "image $s: ${IMG[$s]} (slurmd $(cat "${IMG[$s]}/.ffl-slurm-version")), ready after $(($(date +%s) - T0)) s"
done
t=$(date +%s)
mkdir -m 0755 "$WORK/bin"
(cd "$ROOT" && CGO_ENABLED=1 go build -trimpath -o "$WORK/bin/" ./cmd/ffl-launch ./cmd/ffl-epilog ./cmd/ffl-prolog &&
  go test -c -o "$WORK/bin/slurm.test" ./tests/slurm)
chmod -R go+rX "$WORK/bin"
log "built ffl and the suite's test binary in $(($(date +%s) - t)) s"

declare -A RESULT TOOK VER
for s in "${SUITES[@]}"; do
  # slurmd at debug2: its log then has the Epilog's own output ("prep/script: ... epilog success
  # rc:0 output:..."), which a missing Epilog line needs to tell "the Epilog did not run" from
  # "its line did not reach the log file" (a failure's message shows it). 2 MB for a whole run.
  env=(FFL_E2E=1 FFL_PREBUILT_BIN=/ffl/bin SLURM_CONFDIR=/var/tmp/ffl-slurm SLURM_DEBUG_LEVEL=debug2)
  webroot=""
  if [ "$s" = trixie ]; then
    env+=(FFL_SLURM_XPRA=/opt/xpra-6.5.5/venv/bin/xpra
      "FFL_SLURM_NO_HTML5=xpra 6.5 has no HTML5 client here (xpra-html5 is in neither Debian trixie nor PyPI; the stand-in web root, Debian's 3.1 client, does not speak xpra 6)")
    # ffl-launch refuses to start without a web root (a prerequisite). The trixie node gets the
    # host's Debian xpra 3.1 client files as a stand-in, so that the server side of every
    # scenario runs on Slurm 24.11; no browser uses them (FFL_SLURM_NO_HTML5).
    webroot=/usr/share/xpra/www
    [ -f "$webroot/index.html" ] || die "$webroot/index.html missing: run scripts/deps.sh (Debian's xpra)"
  fi
  VER[$s]=$(cat "${IMG[$s]}/.ffl-slurm-version")
  mkdir -m 0755 "$WORK/$s"
  log "$s: Slurm ${VER[$s]}: waiting for /run/ffl-slurm-suite.lock"
  t=$(date +%s)
  r=0
  # -o: the lock is flock's, not inherited by the node's processes (a daemon that outlived a run
  # would hold it); they end with the node's PID namespace anyway.
  IMAGE_WEBROOT=$webroot flock -o /run/ffl-slurm-suite.lock \
    unshare --net --mount --uts --ipc --pid --fork --propagation private -- \
    "$HERE/image-init.sh" "${IMG[$s]}" "$WORK/$s" "$WORK/bin" "$ROOT" "ffl-$s" \
    /bin/sh -c 'cd /ffl/src/tests/slurm && exec env "$@"' sh "${env[@]}" \
    /ffl/bin/slurm.test -test.v -test.count=1 -test.timeout 40m -test.run "$(run_tests "$s")" || r=$?
  TOOK[$s]=$(($(date +%s) - t))
  if [ $r = 0 ]; then RESULT[$s]=PASS; else RESULT[$s]="FAIL($r)" rc=1; fi
  log "$s: Slurm ${VER[$s]}: ${RESULT[$s]} in ${TOOK[$s]} s"
done
log "summary (total $(($(date +%s) - T0)) s):"
printf 'slurm-versions: %-8s %-22s %-8s %s\n' suite slurm result seconds >&2
for s in "${SUITES[@]}"; do
  printf 'slurm-versions: %-8s %-22s %-8s %s\n' "$s" "${VER[$s]}" "${RESULT[$s]}" "${TOOK[$s]}" >&2
done
exit $rc
