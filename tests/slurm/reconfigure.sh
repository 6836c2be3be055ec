#!/bin/bash
# reconfigure.sh CONFDIR
#
# Switch the cluster started by start-local-slurm.sh CONFDIR to another test
# scenario: another Prolog/Epilog, KillWait, ProctrackType, PrologFlags or
# PrologEpilogTimeout. Example:
#
#   SLURM_EPILOG= SLURM_KILLWAIT=30 SLURM_PROCTRACK=linuxproc \
#     tests/slurm/reconfigure.sh /var/tmp/ffl-slurm
#
# Knobs are the SLURM_* variables of start-local-slurm.sh. A knob that is not
# set in the environment keeps the value the cluster runs with (recorded in
# CONFDIR/params.env); a knob set to the empty string goes back to its
# default (SLURM_EPILOG= removes the Epilog).
#
# How: running jobs are cancelled (with a warning), slurmd and slurmctld are
# stopped and started again from the same CONFDIR; munged keeps running.
# ProctrackType needs a daemon restart anyway, and a restart leaves no doubt
# about which config slurmd runs the next job with (`scontrol reconfigure` is
# asynchronous). The job/node state is kept (SLURM_KEEP_STATE defaults to 1
# here), so job ids keep counting up across scenarios and a directory named
# after a job id of one scenario never meets a new job with the same id.
# If every knob already matches, nothing is restarted (SLURM_FORCE_RESTART=1
# restarts anyway). Prints how long the switch took.
set -euo pipefail

LS_NAME=reconfigure
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

[ $# -eq 1 ] || ls_die "usage: $0 CONFDIR"
[ "$(id -u)" = 0 ] || ls_die "must run as root"
[ -d "$1" ] || ls_die "$1: no such directory; start the cluster with start-local-slurm.sh first"
CONFDIR=$(cd "$1" && pwd -P)
PARAMS=$CONFDIR/params.env
T0=$(ls_now)

ls_lock
[ -s "$PARAMS" ] || ls_die "$PARAMS missing: no cluster runs from $CONFDIR; use start-local-slurm.sh"
# params.env is sourced as root: accept it only if root wrote it and nobody
# else can have changed it.
{ [ "$(stat -c %u "$PARAMS")" = 0 ] && [ "$(stat -c %u "$CONFDIR")" = 0 ]; } ||
  ls_die "$PARAMS or its directory has an unexpected owner; refusing to source it"
for f in "$PARAMS" "$CONFDIR"; do
  case $(stat -c %A "$f") in ?????-??-?) ;; *) ls_die "$f is group/world writable; refusing to source $PARAMS" ;; esac
done

# shellcheck source=/dev/null
. "$PARAMS"
changed=()
for k in "${LS_KNOBS[@]}"; do
  saved=saved_$k
  if [ -n "${!k+set}" ]; then
    [ "${!k}" = "${!saved-}" ] || changed+=("$k")
  else
    export "$k=${!saved-}"
  fi
done
export SLURM_KEEP_STATE=${SLURM_KEEP_STATE:-1}

if [ ${#changed[@]} -eq 0 ] && [ "${SLURM_FORCE_RESTART:-0}" != 1 ]; then
  ls_log "no knob changed; the cluster keeps running as it is"
else
  ls_log "changing: ${changed[*]:-nothing (forced restart)}"
fi
"$HERE/start-local-slurm.sh" "$CONFDIR"
ls_log "reconfigured in $(ls_elapsed "$T0") s"
