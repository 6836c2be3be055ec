#!/bin/bash
# smoke-test.sh CONFDIR
#
# Check that the local Slurm harness does what ffl's integration tests rely
# on, against a real cluster (starts it from CONFDIR, stops it at the end
# unless SMOKE_KEEP=1):
#   1. a job submitted by a non-root user (ffluser1) runs and completes;
#   2. the Prolog and the Epilog run as root for it, with the job's SLURM_*
#      environment (recorded by a tiny hook script);
#   3. scancel delivers SIGTERM to a program the batch script `exec`s (how
#      contrib/sbatch/firefox.sbatch runs ffl-launch), and reports whether a
#      plain child of the batch shell got one too (under proctrack/cgroup it
#      does not; that is why the launcher must be exec'd or srun'd);
#   4. reconfigure.sh switches Epilog, KillWait and ProctrackType, and job
#      ids keep counting up across the switch.
# Prints the measured start, reconfigure and stop times. Exit 0 = all passed.
# Waits use generous deadlines; nothing asserts on how fast Slurm is.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
die() { echo "smoke-test: FAIL: $*" >&2; exit 1; }
log() { echo "smoke-test: $*" >&2; }
ok() { echo "smoke-test: ok: $*" >&2; }

[ $# -eq 1 ] || die "usage: $0 CONFDIR"
[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$1"
CONFDIR=$(cd "$1" && pwd -P)
export SLURM_CONF=$CONFDIR/slurm.conf
USER1=ffluser1

"$HERE/users.sh" "$USER1" ffluser2 >/dev/null
HOME1=$(getent passwd "$USER1" | cut -d: -f6)
as_user() { runuser -u "$USER1" -- "$@"; }
WORK=$HOME1/ffl-smoke
as_user rm -rf "$WORK"
as_user mkdir -p "$WORK"

# ------------------------------------------------------------ hooks
HOOKS=$CONFDIR/hooks
OUT=$HOOKS/out
rm -rf "$HOOKS"
mkdir -p "$OUT"
chmod 755 "$HOOKS" "$OUT"
# The Prolog/Epilog environment has no PATH: absolute paths only.
cat >"$HOOKS/record-env.sh" <<EOF
#!/bin/sh
/usr/bin/env >"$OUT/\${SLURM_SCRIPT_CONTEXT:-unknown}-\${SLURM_JOB_ID:-none}.env"
exit 0
EOF
chmod 755 "$HOOKS/record-env.sh"

# ------------------------------------------------------------ helpers
# wait_for SECONDS CMD...: poll CMD until it succeeds or the deadline passes.
wait_for() {
  local end=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || return 1
    sleep 0.2
  done
}
job_state() { scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
job_done() { case "$(job_state "$1")" in COMPLETED | CANCELLED | FAILED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; esac; return 1; }
submit() { as_user sbatch --parsable --chdir="$WORK" "$@" | cut -d';' -f1; }
has_line() { grep -qx -- "$2" "$1" 2>/dev/null; }

CLUSTER_UP=0
cleanup() {
  local rc=$?
  if [ $rc != 0 ] && [ -d "$CONFDIR/log" ]; then
    log "slurmd log tail:"
    tail -20 "$CONFDIR/log/slurmd.log" >&2 || true
  fi
  if [ "$CLUSTER_UP" = 1 ] && [ "${SMOKE_KEEP:-0}" != 1 ]; then
    "$HERE/stop-local-slurm.sh" "$CONFDIR" || rc=1
  fi
  as_user rm -rf "$WORK" || true
  exit $rc
}
trap cleanup EXIT

# ------------------------------------------------------------ start
t=$(ls_now)
SLURM_PROLOG=$HOOKS/record-env.sh SLURM_EPILOG=$HOOKS/record-env.sh SLURM_KILLWAIT=5 \
  SLURM_FORCE_RESTART=1 "$HERE/start-local-slurm.sh" "$CONFDIR" >/dev/null
CLUSTER_UP=1
T_START=$(ls_elapsed "$t")
PROCTRACK=$(scontrol show config | awk '$1 == "ProctrackType" {print $3}')
[ "$(stat -c "%F %u %a" /tmp/.X11-unix 2>/dev/null)" = "directory 0 1777" ] ||
  die "/tmp/.X11-unix is not root 1777"
ok "cluster up in $T_START s ($PROCTRACK); /tmp/.X11-unix is root 1777"

# ------------------------------------------------------------ 1+2: trivial job, prolog, epilog
t=$(ls_now)
J1=$(submit -o "$WORK/hostname-%j.out" --wrap hostname)
wait_for 120 job_done "$J1" || die "job $J1 did not finish (state $(job_state "$J1"))"
T_JOB=$(ls_elapsed "$t")
[ "$(job_state "$J1")" = COMPLETED ] || die "job $J1 ended $(job_state "$J1")"
has_line "$WORK/hostname-$J1.out" "$(hostname)" || die "job $J1 output lacks the hostname"
ok "job $J1 (sbatch --wrap hostname as $USER1) COMPLETED; submit to done: $T_JOB s"
for ctx in prolog_slurmd epilog_slurmd; do
  f=$OUT/$ctx-$J1.env
  wait_for 60 test -s "$f" || die "$ctx did not run for job $J1"
  for want in "SLURM_JOB_ID=$J1" "SLURM_JOB_USER=$USER1" "SLURM_JOB_UID=$(id -u "$USER1")" "SLURM_SCRIPT_CONTEXT=$ctx"; do
    has_line "$f" "$want" || die "$ctx env of job $J1 lacks $want"
  done
  ! grep -q '^PATH=' "$f" || log "note: $ctx got a PATH"
done
ok "Prolog and Epilog ran as root for job $J1 with its SLURM_* environment"

# ------------------------------------------------------------ 3: SIGTERM on scancel
# The recorder writes "<name>-ready" when it runs and "<name>-term" (with the
# time) when SIGTERM arrives, then keeps running until SIGKILL would come,
# so a late TERM is not missed. bash runs the trap after the current
# foreground `sleep` returns, hence the short sleeps.
cat >"$WORK/recorder.sh" <<'EOF'
#!/bin/bash
name=$1
trap 'date +%s.%N >"$name-term"; exit 143' TERM
echo "$$" >"$name-ready"
while :; do sleep 0.1; done
EOF
cat >"$WORK/exec.sbatch" <<'EOF'
#!/bin/bash
#SBATCH --job-name=smoke-exec
exec /bin/bash ./recorder.sh exec-"$SLURM_JOB_ID"
EOF
cat >"$WORK/child.sbatch" <<'EOF'
#!/bin/bash
#SBATCH --job-name=smoke-child
/bin/bash ./recorder.sh child-"$SLURM_JOB_ID"
EOF
chown "$USER1:" "$WORK"/*.sh "$WORK"/*.sbatch
declare -A TERMED
for kind in exec child; do
  J=$(submit -o "$WORK/$kind-%j.out" "$WORK/$kind.sbatch")
  wait_for 120 test -s "$WORK/$kind-$J-ready" || die "$kind job $J never started its task"
  t0=$(ls_now)
  as_user scancel "$J"
  wait_for 120 job_done "$J" || die "$kind job $J did not end after scancel"
  if [ -s "$WORK/$kind-$J-term" ]; then
    TERMED[$kind]=$(awk -v a="$t0" -v b="$(cat "$WORK/$kind-$J-term")" 'BEGIN{printf "yes, %.0f ms after scancel", (b-a)*1000}')
  else
    TERMED[$kind]=no
  fi
  wait_for 60 test -s "$OUT/epilog_slurmd-$J.env" || die "Epilog did not run for cancelled job $J"
  log "$kind job $J: state $(job_state "$J"), task got SIGTERM: ${TERMED[$kind]}"
done
[ "${TERMED[exec]}" != no ] || die "the exec'd task got no SIGTERM on scancel"
ok "exec'd task got SIGTERM (${TERMED[exec]}); plain child of the batch shell: ${TERMED[child]}"
if [ "$PROCTRACK" = proctrack/cgroup ] && [ "${TERMED[child]}" != no ]; then
  log "note: under proctrack/cgroup the plain child got SIGTERM too (expected only SIGKILL)"
fi

# ------------------------------------------------------------ 4: reconfigure
t=$(ls_now)
SLURM_EPILOG='' SLURM_KILLWAIT=12 SLURM_PROCTRACK=linuxproc "$HERE/reconfigure.sh" "$CONFDIR" >/dev/null
T_RECONF=$(ls_elapsed "$t")
conf=$(scontrol show config)
grep -Eq '^ProctrackType += proctrack/linuxproc$' <<<"$conf" || die "ProctrackType not switched"
grep -Eq '^KillWait += 12 sec$' <<<"$conf" || die "KillWait not switched"
grep -Eq '^Epilog += \(null\)$' <<<"$conf" || die "Epilog not removed"
grep -Eq "^Prolog += $HOOKS/record-env.sh\$" <<<"$conf" || die "Prolog not kept"
J2=$(submit -o "$WORK/hostname-%j.out" --wrap hostname)
[ "$J2" -gt "$J1" ] || die "job id went back from $J1 to $J2 across reconfigure"
wait_for 120 job_done "$J2" || die "job $J2 did not finish after reconfigure"
[ "$(job_state "$J2")" = COMPLETED ] || die "job $J2 ended $(job_state "$J2")"
wait_for 60 test -s "$OUT/prolog_slurmd-$J2.env" || die "Prolog did not run for job $J2"
sleep 2 # the Epilog would have run before the job became COMPLETED; be generous
[ ! -e "$OUT/epilog_slurmd-$J2.env" ] || die "Epilog still ran for job $J2 after it was removed"
ok "reconfigure in $T_RECONF s: linuxproc, KillWait 12, no Epilog; job $J2 > $J1 completed"

# ------------------------------------------------------------ stop
t=$(ls_now)
"$HERE/stop-local-slurm.sh" "$CONFDIR"
CLUSTER_UP=0
T_STOP=$(ls_elapsed "$t")
for c in slurmctld slurmd; do
  ! ls_pid_is "$CONFDIR/run/$c.pid" "$c" >/dev/null || die "$c still running after stop"
done
ok "stopped in $T_STOP s"
echo "smoke-test: PASS (start $T_START s, trivial job $T_JOB s, reconfigure $T_RECONF s, stop $T_STOP s, $PROCTRACK; SIGTERM exec: ${TERMED[exec]}; child: ${TERMED[child]})"
