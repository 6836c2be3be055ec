#!/bin/bash
# stop-local-slurm.sh CONFDIR
#
# Stop the cluster started by start-local-slurm.sh CONFDIR:
#   1. cancel all jobs and wait until the queue is empty and no step socket
#      is left in the spool dir (so no slurmstepd or job process outlives it),
#   2. SIGTERM slurmd and slurmctld in parallel (PIDs from CONFDIR/run/*.pid,
#      after checking /proc/PID/comm), SIGKILL after SLURM_STOP_TIMEOUT s,
#   3. stop munged only if start-local-slurm.sh started it,
#   4. remove /etc/slurm/slurm.conf if it is our symlink.
# Never kills anything by name. Safe to run when nothing is running. Prints
# how long it took. Exit status 1 if a job or daemon was left behind.
#
# Environment: SLURM_STOP_TIMEOUT=N      per daemon               [15]
#              SLURM_JOB_DRAIN_TIMEOUT=N wait for jobs to end     [60]
#              SLURM_KEEP_MUNGE=1        leave munged running     [0]
#              SLURM_LOCK_TIMEOUT=N      see start-local-slurm.sh [300]
set -uo pipefail

LS_NAME=stop-local-slurm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

[ $# -eq 1 ] || ls_die "usage: $0 CONFDIR"
[ "$(id -u)" = 0 ] || ls_die "must run as root"
[ -d "$1" ] || { ls_log "$1: no such directory; nothing to stop"; exit 0; }
CONFDIR=$(cd "$1" && pwd -P)
RUN=$CONFDIR/run
SPOOL=$CONFDIR/state/d
export SLURM_CONF=$CONFDIR/slurm.conf
STOP_TIMEOUT=${SLURM_STOP_TIMEOUT:-15}
DRAIN_TIMEOUT=${SLURM_JOB_DRAIN_TIMEOUT:-60}
T0=$(ls_now)
rc=0

ls_lock

CTLD=$(ls_pid_is "$RUN/slurmctld.pid" slurmctld || true)
SLURMD=$(ls_pid_is "$RUN/slurmd.pid" slurmd || true)

# 1. jobs; without a live slurmd they cannot finish cleanly, so do not wait
if [ -n "$CTLD" ]; then
  [ -n "$SLURMD" ] || DRAIN_TIMEOUT=0
  ls_drain_jobs "$DRAIN_TIMEOUT" || rc=1
fi

# 2. daemons
ls_stop_daemons "$STOP_TIMEOUT" || rc=1

# 3. munged
if [ -f "$RUN/munged.started-by-us" ] && [ "${SLURM_KEEP_MUNGE:-0}" != 1 ]; then
  M=$(ls_pid_is /run/munge/munged.pid munged || true)
  if [ -n "$M" ]; then ls_stop_pid munged "$M" "$STOP_TIMEOUT" || rc=1; fi
  rm -f "$RUN/munged.started-by-us"
fi

# 4. /etc/slurm symlink
if [ -L /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" = "$CONFDIR/slurm.conf" ]; then
  rm -f /etc/slurm/slurm.conf
fi
rm -f "$RUN/pids.env" "$CONFDIR/params.env"

# report anything slurm/munge-like still alive (report only, never kill by name)
left=$(ps -eo pid=,stat=,comm= | awk '$2 !~ /^Z/ && $3 ~ /^(slurmctld|slurmd|slurmstepd|slurmscriptd|munged)$/ {printf "%s %s; ", $1, $3}')
[ -z "$left" ] || ls_log "note: still running on this host: $left"
ls_log "stopped in $(ls_elapsed "$T0") s"
exit $rc
