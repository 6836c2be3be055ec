# shellcheck shell=bash
# lib.sh: helpers shared by start-local-slurm.sh, stop-local-slurm.sh and
# reconfigure.sh. Sourced, never executed. Callers set LS_NAME (log prefix)
# and, before calling the daemon helpers, RUN (CONFDIR/run).
#
# Rules these helpers keep, because the machine is shared with other people's
# processes: a PID is signalled only after its pid file AND /proc/PID/comm
# agree, nothing is ever killed by name, and every wait has a deadline.

ls_log() { echo "${LS_NAME:-local-slurm}: $*" >&2; }
ls_die() { echo "${LS_NAME:-local-slurm}: ERROR: $*" >&2; exit 1; }

# ls_now: a timestamp for ls_elapsed.
ls_now() { date +%s.%N; }
# ls_elapsed T0: seconds since T0, two decimals.
ls_elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}'; }

# ls_pid_is PIDFILE COMM: print the pid if PIDFILE names a live, non-zombie
# process whose comm is COMM. A daemon killed with SIGKILL stays a zombie until
# PID 1 reaps it, so a zombie counts as gone.
ls_pid_is() {
  local f=$1 comm=$2 p
  [ -s "$f" ] || return 1
  p=$(tr -dc 0-9 < "$f")
  [ -n "$p" ] || return 1
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$comm" ] || return 1
  [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
  echo "$p"
}

# ls_exited PID: true if PID is gone or a zombie.
ls_exited() {
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# ls_stop_pid NAME PID TIMEOUT: SIGTERM, wait up to TIMEOUT s, then SIGKILL and
# wait 5 s more. Returns 1 if the process is still alive after that.
ls_stop_pid() {
  local name=$1 p=$2 timeout=$3 i
  kill -TERM "$p" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 20; i++)); do
    ls_exited "$p" && { ls_log "$name (pid $p) stopped"; return 0; }
    sleep 0.05
  done
  ls_log "$name (pid $p) did not stop after ${timeout}s; sending SIGKILL"
  kill -KILL "$p" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do ls_exited "$p" && return 0; sleep 0.1; done
  ls_log "ERROR: $name (pid $p) still alive"
  return 1
}

# ls_stop_daemons TIMEOUT: stop this CONFDIR's slurmd and slurmctld (pid files
# in $RUN) in parallel. Returns 1 if one of them survived SIGKILL.
ls_stop_daemons() {
  local timeout=$1 slurmd ctld rc=0 pids=()
  slurmd=$(ls_pid_is "$RUN/slurmd.pid" slurmd || true)
  ctld=$(ls_pid_is "$RUN/slurmctld.pid" slurmctld || true)
  if [ -n "$slurmd" ]; then ls_stop_pid slurmd "$slurmd" "$timeout" & pids+=("$!"); fi
  if [ -n "$ctld" ]; then ls_stop_pid slurmctld "$ctld" "$timeout" & pids+=("$!"); fi
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

# ls_drain_jobs TIMEOUT: cancel every job of this cluster and wait up to
# TIMEOUT s until the queue is empty, then until the steps' sockets in the
# spool dir are gone (a slurmstepd still running would outlive a restart).
# Needs SLURM_CONF and $SPOOL. Returns 1 if jobs or steps are left.
ls_drain_jobs() {
  local timeout=$1 jobs end left socks rc=0
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    ls_log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086  # one word per job id
    scancel $jobs 2>/dev/null || true
    end=$(($(date +%s) + timeout))
    while [ "$(date +%s)" -lt "$end" ] && [ -n "$(squeue -h -o %A 2>/dev/null)" ]; do sleep 0.2; done
    left=$(squeue -h -o '%A %T' 2>/dev/null)
    [ -z "$left" ] || { ls_log "WARNING: jobs still in queue after ${timeout}s: $left"; rc=1; }
  fi
  if [ -d "${SPOOL:-}" ]; then
    end=$(($(date +%s) + 10))
    while [ "$(date +%s)" -lt "$end" ] && [ -n "$(find "$SPOOL" -maxdepth 1 -type s 2>/dev/null)" ]; do sleep 0.1; done
    socks=$(find "$SPOOL" -maxdepth 1 -type s 2>/dev/null)
    [ -z "$socks" ] || { ls_log "WARNING: slurmstepd sockets still present (steps still running?): $socks"; rc=1; }
  fi
  return $rc
}

# ls_lock: serialize start/stop/reconfigure on this host. Slurm's ports
# 6817/6818 are per host, so two harness runs (two CONFDIRs) must not
# interleave. The lock lives in /run (root 0755), not in a world-writable
# directory where another user could plant a symlink. A nested call (e.g.
# reconfigure.sh running start-local-slurm.sh) inherits the lock. The lock
# is fd 9: every daemon is started with 9>&-, or it would hold the lock for
# its whole life (flock locks belong to the open file, which fork shares).
# ls_daemon CMD...: run CMD (a daemon that forks into the background) with every
# descriptor above 2 closed, not only fd 9: a caller's lock (`flock
# /run/ffl-slurm-suite.lock make slurm-test`, without -o, passes its fd 3
# down) would otherwise be held by munged or slurmctld for as long as they
# live, and every other suite on the machine would wait for it.
ls_daemon() {
  (
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
  )
}

ls_lock() {
  [ "${FFL_LOCAL_SLURM_LOCKED:-0}" = 1 ] && return 0
  local lockfile=/run/ffl-local-slurm.lock wait=${SLURM_LOCK_TIMEOUT:-300}
  exec 9>>"$lockfile"
  if ! flock -w "$wait" 9; then
    ls_die "another start/stop/reconfigure holds $lockfile for more than ${wait}s"
  fi
  export FFL_LOCAL_SLURM_LOCKED=1
}

# LS_KNOBS: the environment knobs that describe a cluster configuration. The
# start script records their values in CONFDIR/params.env; a running
# cluster whose recorded knobs differ from the requested ones is restarted,
# and reconfigure.sh uses the recorded values as defaults.
# shellcheck disable=SC2034  # used by the scripts that source this file
LS_KNOBS=(SLURM_PROLOG SLURM_EPILOG SLURM_PROLOG_FLAGS SLURM_KILLWAIT SLURM_PROCTRACK
  SLURM_SELECT SLURM_DEBUG_LEVEL SLURM_SCHED_PARAMS SLURM_PROLOG_EPILOG_TIMEOUT
  SLURM_FIRST_JOB_ID SLURM_CONF_EXTRA SLURM_CGROUP_CONF_EXTRA SLURM_TASK_PLUGIN
  SLURM_JOB_CONTAINER_BASEPATH SLURM_NAMESPACE_BASEPATH SLURM_NAMESPACE_FLAGS)
