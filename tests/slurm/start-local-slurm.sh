#!/bin/bash
# start-local-slurm.sh CONFDIR
#
# Start a real single-node Slurm cluster (munged + slurmctld + slurmd) on this
# machine, as root, without systemd, for ffl's integration tests and for
# trying ffl-prolog/ffl-epilog by hand. Known to work on Debian 12 (bookworm)
# with Debian's slurm-wlm 22.05 and munge 0.5.15.
#
# Idempotent: installs slurm-wlm + munge if missing, (re)writes the config
# into CONFDIR, reuses a running munged, reuses a running slurmctld/slurmd
# started from the same CONFDIR *with the same knobs* (a cluster whose knobs
# differ is restarted; see reconfigure.sh), waits until the node is idle and
# prints the PIDs (also in CONFDIR/run/pids.env) and how long it took.
#
# It also makes sure /tmp/.X11-unix exists as root:root 1777: on a host
# without systemd-tmpfiles nobody creates it, and the first Xvfb (run by a job
# as its user) would create it owned by that user, so every other user's
# Xvfb would then fail to create its socket.
#
# Everything Slurm writes lives under CONFDIR, whose parents must be
# world-traversable (the slurm user and job users read slurm.conf):
#   CONFDIR/slurm.conf, cgroup.conf     config
#   CONFDIR/state/ctld, CONFDIR/state/d StateSaveLocation, SlurmdSpoolDir
#   CONFDIR/log/*.log                   daemon logs
#   CONFDIR/run/*.pid, pids.env         pid files
#   CONFDIR/params.env                  the knobs below, as last applied
#
# Environment knobs (all optional). Prolog/Epilog/KillWait/ProctrackType are
# what ffl's scenarios vary; reconfigure.sh switches them on a running cluster.
#   SLURM_PROLOG=/path        slurmd Prolog (runs as root on the node)   [none]
#   SLURM_EPILOG=/path        slurmd Epilog (runs as root on the node)   [none]
#   SLURM_PROLOG_FLAGS=...    PrologFlags, e.g. Alloc or Alloc,Contain   [Alloc]
#   SLURM_KILLWAIT=N          seconds between SIGTERM and SIGKILL; slurmd
#                             waits max(KillWait, 5)                     [5]
#   SLURM_PROCTRACK=auto|cgroup|linuxproc|pgid                           [auto]
#                             auto = try proctrack/cgroup, fall back to
#                             proctrack/linuxproc if slurmd cannot start
#   SLURM_PROLOG_EPILOG_TIMEOUT=N  PrologEpilogTimeout          [Slurm default]
#   SLURM_FIRST_JOB_ID=N      FirstJobId (job ids restart from it whenever
#                             the state is wiped)                        [1]
#   SLURM_SELECT=cons_tres|linear                                        [cons_tres]
#   SLURM_TASK_PLUGIN=...     TaskPlugin, e.g. task/cgroup,task/affinity
#                             (with SLURM_CGROUP_CONF_EXTRA=ConstrainCores=yes
#                             a step's cpuset is its CPUs)               [task/none]
#   SLURM_DEBUG_LEVEL=info|debug|debug2 (slurmd + slurmctld log level)   [info]
#   SLURM_SCHED_PARAMS        SchedulerParameters; batch_sched_delay=0 cuts
#                             submit->start latency from ~2.9 s to ~0.9 s
#                             in tests                                   [batch_sched_delay=0]
#   SLURM_JOB_CONTAINER_BASEPATH=/dir  JobContainerType=job_container/tmpfs
#                             with a job_container.conf of AutoBasePath=true
#                             and this BasePath: each job gets a private /tmp
#                             and /dev/shm (needs Contain in PrologFlags) [none]
#   SLURM_NAMESPACE_BASEPATH=/dir  NamespaceType=namespace/linux (Slurm 25.11+)
#                             with a namespace.yaml of auto_base_path: true,
#                             base_path: /dir/%n (one dir per node) and the
#                             clone_ns_flags of SLURM_NAMESPACE_FLAGS (needs
#                             Contain in PrologFlags)                    [none]
#   SLURM_NAMESPACE_FLAGS=CLONE_NEWPID[,CLONE_NEWUSER]  its clone_ns_flags [none]
#   SLURM_CONF_EXTRA          extra lines appended to slurm.conf
#   SLURM_CGROUP_CONF_EXTRA   extra lines appended to cgroup.conf
# Behaviour (not part of the recorded configuration):
#   SLURM_KEEP_STATE=1        keep job/node state (and the job id counter)
#                             from a previous run                        [0 = wipe]
#   SLURM_FORCE_RESTART=1     restart the daemons even if the knobs match [0]
#   SLURM_LINK_ETC=1|0        symlink /etc/slurm/slurm.conf -> CONFDIR/slurm.conf
#                             so users need no SLURM_CONF. Never replaces
#                             a regular file.                            [1]
#   SLURM_PKGS                packages to install if missing             [slurm-wlm munge]
#   SLURM_START_TIMEOUT=N     seconds to wait for the node to become idle [60]
#   SLURM_STOP_TIMEOUT=N      per daemon, when restarting                [15]
#   SLURM_JOB_DRAIN_TIMEOUT=N wait for cancelled jobs when restarting    [60]
#   SLURM_WAIT_SCHED=1|0      also wait (max 10 s) until slurmctld's scheduler
#                             has started: it first runs ~3 s after slurmctld
#                             starts, so a job submitted earlier waits   [1]
#   SLURM_LOCK_TIMEOUT=N      wait for a concurrent start/stop/reconfigure [300]
set -euo pipefail

LS_NAME=start-local-slurm
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

[ $# -eq 1 ] || ls_die "usage: $0 CONFDIR"
[ "$(id -u)" = 0 ] || ls_die "must run as root"
T_START=$(ls_now)

# ---------------------------------------------------------------- knobs
# Defaults are written back into the knob variables so that params.env
# records effective values ("unset" and "5" are the same KillWait).
SLURM_PROLOG=${SLURM_PROLOG:-}
SLURM_EPILOG=${SLURM_EPILOG:-}
SLURM_PROLOG_FLAGS=${SLURM_PROLOG_FLAGS-Alloc}
SLURM_KILLWAIT=${SLURM_KILLWAIT:-5}
SLURM_PROCTRACK=${SLURM_PROCTRACK:-auto}
SLURM_SELECT=${SLURM_SELECT:-cons_tres}
SLURM_TASK_PLUGIN=${SLURM_TASK_PLUGIN:-task/none}
SLURM_DEBUG_LEVEL=${SLURM_DEBUG_LEVEL:-info}
SLURM_SCHED_PARAMS=${SLURM_SCHED_PARAMS-batch_sched_delay=0}
SLURM_PROLOG_EPILOG_TIMEOUT=${SLURM_PROLOG_EPILOG_TIMEOUT:-}
SLURM_FIRST_JOB_ID=${SLURM_FIRST_JOB_ID:-}
SLURM_CONF_EXTRA=${SLURM_CONF_EXTRA:-}
SLURM_JOB_CONTAINER_BASEPATH=${SLURM_JOB_CONTAINER_BASEPATH:-}
SLURM_NAMESPACE_BASEPATH=${SLURM_NAMESPACE_BASEPATH:-}
SLURM_NAMESPACE_FLAGS=${SLURM_NAMESPACE_FLAGS:-}
SLURM_CGROUP_CONF_EXTRA=${SLURM_CGROUP_CONF_EXTRA:-}
KEEP_STATE=${SLURM_KEEP_STATE:-0}
FORCE_RESTART=${SLURM_FORCE_RESTART:-0}
LINK_ETC=${SLURM_LINK_ETC:-1}
PKGS=${SLURM_PKGS:-slurm-wlm munge}
START_TIMEOUT=${SLURM_START_TIMEOUT:-60}
STOP_TIMEOUT=${SLURM_STOP_TIMEOUT:-15}
DRAIN_TIMEOUT=${SLURM_JOB_DRAIN_TIMEOUT:-60}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_uint "$SLURM_KILLWAIT" || ls_die "SLURM_KILLWAIT=$SLURM_KILLWAIT: want seconds"
[ -z "$SLURM_PROLOG_EPILOG_TIMEOUT" ] || is_uint "$SLURM_PROLOG_EPILOG_TIMEOUT" ||
  ls_die "SLURM_PROLOG_EPILOG_TIMEOUT=$SLURM_PROLOG_EPILOG_TIMEOUT: want seconds"
[ -z "$SLURM_FIRST_JOB_ID" ] || is_uint "$SLURM_FIRST_JOB_ID" ||
  ls_die "SLURM_FIRST_JOB_ID=$SLURM_FIRST_JOB_ID: want a number"
case $SLURM_PROCTRACK in auto | cgroup | linuxproc | pgid) ;;
  *) ls_die "SLURM_PROCTRACK=$SLURM_PROCTRACK: want auto, cgroup, linuxproc or pgid" ;;
esac
case $SLURM_SELECT in cons_tres | linear) ;;
  *) ls_die "SLURM_SELECT=$SLURM_SELECT: want cons_tres or linear" ;;
esac
if [ -n "$SLURM_JOB_CONTAINER_BASEPATH" ]; then
  case $SLURM_JOB_CONTAINER_BASEPATH in /*) ;; *) ls_die "SLURM_JOB_CONTAINER_BASEPATH=$SLURM_JOB_CONTAINER_BASEPATH: want an absolute path" ;; esac
  case ,$SLURM_PROLOG_FLAGS, in *,Contain,*) ;; *) ls_die "SLURM_JOB_CONTAINER_BASEPATH needs Contain in SLURM_PROLOG_FLAGS (slurmd refuses job_container/tmpfs without it)" ;; esac
fi
if [ -n "$SLURM_NAMESPACE_BASEPATH" ]; then
  case $SLURM_NAMESPACE_BASEPATH in /*) ;; *) ls_die "SLURM_NAMESPACE_BASEPATH=$SLURM_NAMESPACE_BASEPATH: want an absolute path" ;; esac
  case ,$SLURM_PROLOG_FLAGS, in *,Contain,*) ;; *) ls_die "SLURM_NAMESPACE_BASEPATH needs Contain in SLURM_PROLOG_FLAGS (slurmd refuses namespace/linux without it)" ;; esac
  [ -z "$SLURM_JOB_CONTAINER_BASEPATH" ] || ls_die "SLURM_NAMESPACE_BASEPATH and SLURM_JOB_CONTAINER_BASEPATH: choose one namespace plugin"
fi
for f in ${SLURM_NAMESPACE_FLAGS//,/ }; do
  case $f in CLONE_NEWPID | CLONE_NEWUSER) ;; *) ls_die "SLURM_NAMESPACE_FLAGS: $f: want CLONE_NEWPID or CLONE_NEWUSER" ;; esac
done
for s in "$SLURM_PROLOG" "$SLURM_EPILOG"; do
  [ -z "$s" ] && continue
  case $s in /*) ;; *) ls_die "prolog/epilog $s: slurmd needs an absolute path" ;; esac
  { [ -f "$s" ] && [ -x "$s" ]; } || ls_die "prolog/epilog $s is not an executable file"
done

mkdir -p "$1"
CONFDIR=$(cd "$1" && pwd -P)
export SLURM_CONF=$CONFDIR/slurm.conf
RUN=$CONFDIR/run LOGD=$CONFDIR/log ST=$CONFDIR/state
SPOOL=$ST/d
NODE=$(hostname -s)
[ -n "$NODE" ] || ls_die "hostname -s is empty"

ls_lock

# ---------------------------------------------------------------- packages
need_install=0
for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/slurmstepd /usr/sbin/munged /usr/bin/sbatch /usr/bin/munge; do
  [ -x "$b" ] || need_install=1
done
if [ $need_install = 1 ]; then
  ls_log "installing $PKGS ..."
  t=$(ls_now)
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q >&2
  # shellcheck disable=SC2086  # PKGS is a word list
  apt-get -o DPkg::Lock::Timeout=600 install -y -q $PKGS >&2
  ls_log "packages installed in $(ls_elapsed "$t") s"
fi
getent passwd slurm >/dev/null || ls_die "user 'slurm' missing (should come with the slurm packages)"
getent passwd munge >/dev/null || ls_die "user 'munge' missing (should come with the munge package)"

# ---------------------------------------------------------------- /tmp/.X11-unix
ensure_x11_unix() {
  local d=/tmp/.X11-unix
  if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then
    ls_log "removing non-directory $d"
    rm -f -- "$d"
  fi
  mkdir -m 1777 "$d" 2>/dev/null || true
  { [ -d "$d" ] && [ ! -L "$d" ]; } || ls_die "$d: cannot create the directory"
  if [ "$(stat -c %u "$d")" != 0 ]; then
    ls_log "$d was owned by uid $(stat -c %u "$d"); giving it back to root"
    # chown -h never follows a symlink. Once root owns the directory its
    # former owner can no longer rename or replace it (/tmp is sticky), so
    # the check and the chmod below act on this very directory.
    chown -h root:root "$d"
    { [ -d "$d" ] && [ ! -L "$d" ] && [ "$(stat -c %u "$d")" = 0 ]; } ||
      ls_die "$d was replaced while fixing it; look at it by hand"
  fi
  [ "$(stat -c %a "$d")" = 1777 ] || chmod 1777 "$d"
}
ensure_x11_unix

# ---------------------------------------------------------------- directories
mkdir -p "$RUN" "$LOGD" "$ST/ctld" "$SPOOL"
chown root:root "$CONFDIR" # reconfigure.sh sources CONFDIR/params.env as root
chmod 755 "$CONFDIR"
chown slurm:slurm "$RUN" "$LOGD" "$ST/ctld"
chmod 755 "$RUN" "$LOGD" "$ST" "$ST/ctld" "$SPOOL"
d=$CONFDIR
while [ "$d" != / ]; do
  d=$(dirname "$d")
  perm=$(stat -c %A "$d")
  case ${perm:9:1} in x | t) ;; *) ls_die "$d is not world-traversable (mode $perm)" ;; esac
done

# ---------------------------------------------------------------- munge
MUNGE_STARTED_BY_US=0
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  ls_log "munged already running and working; reusing it"
else
  if [ ! -s /etc/munge/munge.key ]; then
    ls_log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
      mungekey --create --force --keyfile=/etc/munge/munge.key
    else
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 700 /etc/munge
  chmod 600 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  chmod 711 /var/lib/munge
  chmod 700 /var/log/munge
  force=()
  # a stale pid file / socket lock from an unclean stop
  if [ -e /run/munge/munged.pid ] && ! ls_pid_is /run/munge/munged.pid munged >/dev/null; then force=(--force); fi
  # ls_daemon: a daemon inherits no lock (see ls_lock, ls_daemon)
  ls_daemon runuser -u munge -- /usr/sbin/munged "${force[@]}" </dev/null >>"$LOGD/munged.stderr" 2>&1 ||
    ls_die "munged failed to start (see $LOGD/munged.stderr, /var/log/munge/munged.log)"
  for _ in $(seq 1 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n </dev/null | unmunge >/dev/null || ls_die "munge does not work after starting munged"
  MUNGE_STARTED_BY_US=1
  echo "$CONFDIR" >"$RUN/munged.started-by-us"
fi

# ---------------------------------------------------------------- already running?
node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | sed -n 1p; }
params_text() {
  local k
  for k in "${LS_KNOBS[@]}"; do printf 'saved_%s=%q\n' "$k" "${!k}"; done
}
PARAMS=$(params_text)
CTLD_PID=$(ls_pid_is "$RUN/slurmctld.pid" slurmctld || true)
SLURMD_PID=$(ls_pid_is "$RUN/slurmd.pid" slurmd || true)
ALREADY=0
# slurmctld only notices a dead slurmd after SlurmdTimeout, so ask slurmd itself
if [ -n "$CTLD_PID" ] && [ -n "$SLURMD_PID" ] && scontrol show slurmd >/dev/null 2>&1; then
  case "$(node_state)" in
    idle | mixed | allocated | completing)
      if [ "$FORCE_RESTART" = 1 ]; then
        ls_log "SLURM_FORCE_RESTART=1: restarting the cluster from $CONFDIR"
      elif [ "$PARAMS" != "$(cat "$CONFDIR/params.env" 2>/dev/null)" ]; then
        ls_log "cluster from $CONFDIR runs with other knobs; restarting it"
      else
        ALREADY=1
        ls_log "cluster from $CONFDIR already running with these knobs; not restarting it"
      fi
      ;;
  esac
fi

if [ "$ALREADY" != 1 ]; then
  # Running jobs would outlive the daemons (their slurmstepd keep running) and
  # then meet a wiped state or another ProctrackType: end them first.
  if [ -n "$CTLD_PID" ]; then
    [ -n "$SLURMD_PID" ] || DRAIN_TIMEOUT=0 # without slurmd nothing can finish cleanly
    ls_drain_jobs "$DRAIN_TIMEOUT" || ls_log "WARNING: restarting with jobs or steps left over"
  fi
  if [ -n "$CTLD_PID$SLURMD_PID" ]; then
    t=$(ls_now)
    ls_stop_daemons "$STOP_TIMEOUT" || ls_die "could not stop the running daemons of $CONFDIR"
    ls_log "old daemons stopped in $(ls_elapsed "$t") s"
  fi
  rm -f "$CONFDIR/params.env"
  # another slurmctld/slurmd on this host's network would hold ports
  # 6817/6818; one in another network namespace (multinode.sh's) cannot
  my_net=$(readlink /proc/self/ns/net)
  for c in slurmctld slurmd; do
    for p in $(pgrep -x "$c" || true); do
      [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && continue # exited, not yet reaped
      [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$my_net" ] || continue
      ls_die "a $c (pid $p) not started from $CONFDIR is already running; stop it first"
    done
  done

  # ------------------------------------------------------------ config
  # NodeName=x CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
  HW=$(slurmd -C | sed -n 1p)
  HW=${HW#NodeName=* }
  write_conf() {
    local pt=$1
    {
      echo "# generated by ffl tests/slurm/start-local-slurm.sh $(date -Is)"
      echo "ClusterName=local"
      echo "SlurmctldHost=$NODE(127.0.0.1)"
      echo "SlurmUser=slurm"
      echo "SlurmctldPort=6817"
      echo "SlurmdPort=6818"
      echo "AuthType=auth/munge"
      echo "CredType=cred/munge"
      echo "StateSaveLocation=$ST/ctld"
      echo "SlurmdSpoolDir=$SPOOL"
      echo "SlurmctldPidFile=$RUN/slurmctld.pid"
      echo "SlurmdPidFile=$RUN/slurmd.pid"
      echo "SlurmctldLogFile=$LOGD/slurmctld.log"
      echo "SlurmdLogFile=$LOGD/slurmd.log"
      echo "SlurmctldDebug=$SLURM_DEBUG_LEVEL"
      echo "SlurmdDebug=$SLURM_DEBUG_LEVEL"
      echo "ProctrackType=proctrack/$pt"
      echo "TaskPlugin=$SLURM_TASK_PLUGIN"
      echo "SelectType=select/$SLURM_SELECT"
      [ "$SLURM_SELECT" = cons_tres ] && echo "SelectTypeParameters=CR_Core"
      echo "SchedulerType=sched/backfill"
      [ -n "$SLURM_SCHED_PARAMS" ] && echo "SchedulerParameters=$SLURM_SCHED_PARAMS"
      echo "MpiDefault=none"
      echo "MailProg=/bin/true"
      echo "ReturnToService=2"
      echo "KillWait=$SLURM_KILLWAIT"
      [ -n "$SLURM_PROLOG" ] && echo "Prolog=$SLURM_PROLOG"
      [ -n "$SLURM_EPILOG" ] && echo "Epilog=$SLURM_EPILOG"
      [ -n "$SLURM_PROLOG_FLAGS" ] && echo "PrologFlags=$SLURM_PROLOG_FLAGS"
      [ -n "$SLURM_PROLOG_EPILOG_TIMEOUT" ] && echo "PrologEpilogTimeout=$SLURM_PROLOG_EPILOG_TIMEOUT"
      [ -n "$SLURM_FIRST_JOB_ID" ] && echo "FirstJobId=$SLURM_FIRST_JOB_ID"
      echo "AccountingStorageType=accounting_storage/none"
      echo "JobAcctGatherType=jobacct_gather/none"
      echo "JobCompType=jobcomp/none"
      echo "SlurmctldTimeout=30"
      echo "SlurmdTimeout=30"
      echo "InactiveLimit=0"
      echo "MinJobAge=300"
      echo "Waittime=0"
      echo "NodeName=$NODE NodeAddr=127.0.0.1 $HW State=UNKNOWN"
      echo "PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"
      [ -n "$SLURM_JOB_CONTAINER_BASEPATH" ] && echo "JobContainerType=job_container/tmpfs"
      [ -n "$SLURM_NAMESPACE_BASEPATH" ] && echo "NamespaceType=namespace/linux"
      [ -n "$SLURM_CONF_EXTRA" ] && printf '%s\n' "$SLURM_CONF_EXTRA"
      :
    } >"$CONFDIR/slurm.conf.tmp"
    if [ -n "$SLURM_JOB_CONTAINER_BASEPATH" ]; then
      printf 'AutoBasePath=true\nBasePath=%s\n' "$SLURM_JOB_CONTAINER_BASEPATH" >"$CONFDIR/job_container.conf.tmp"
      chmod 644 "$CONFDIR/job_container.conf.tmp"
      mv "$CONFDIR/job_container.conf.tmp" "$CONFDIR/job_container.conf"
    else
      rm -f "$CONFDIR/job_container.conf"
    fi
    if [ -n "$SLURM_NAMESPACE_BASEPATH" ]; then
      {
        printf 'defaults:\n  auto_base_path: true\n  base_path: "%s/%%n"\n' "$SLURM_NAMESPACE_BASEPATH"
        if [ -n "$SLURM_NAMESPACE_FLAGS" ]; then
          echo "  clone_ns_flags:"
          for f in ${SLURM_NAMESPACE_FLAGS//,/ }; do printf '    - "%s"\n' "$f"; done
        fi
      } >"$CONFDIR/namespace.yaml.tmp"
      chmod 644 "$CONFDIR/namespace.yaml.tmp"
      mv "$CONFDIR/namespace.yaml.tmp" "$CONFDIR/namespace.yaml"
    else
      rm -f "$CONFDIR/namespace.yaml"
    fi
    mv "$CONFDIR/slurm.conf.tmp" "$CONFDIR/slurm.conf"
    {
      echo "CgroupPlugin=autodetect"
      [ -n "$SLURM_CGROUP_CONF_EXTRA" ] && printf '%s\n' "$SLURM_CGROUP_CONF_EXTRA"
      :
    } >"$CONFDIR/cgroup.conf.tmp"
    mv "$CONFDIR/cgroup.conf.tmp" "$CONFDIR/cgroup.conf"
    chmod 644 "$CONFDIR/slurm.conf" "$CONFDIR/cgroup.conf"
  }

  start_daemons() { # returns 0 ok, 1 slurmctld failed, 2 slurmd failed
    if [ "$KEEP_STATE" != 1 ]; then
      rm -rf "${ST:?}/ctld/"* "${SPOOL:?}/"*
      for f in slurmctld.log slurmd.log; do
        if [ -f "$LOGD/$f" ]; then mv -f "$LOGD/$f" "$LOGD/$f.prev"; fi
      done
    fi
    : >"$LOGD/slurmctld.stderr"
    : >"$LOGD/slurmd.stderr"
    CTLD_LOG_OFF=$(stat -c %s "$LOGD/slurmctld.log" 2>/dev/null || echo 0)
    ls_daemon slurmctld </dev/null >>"$LOGD/slurmctld.stderr" 2>&1 || { cat "$LOGD/slurmctld.stderr" >&2; return 1; }
    for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.1; done
    scontrol ping 2>/dev/null | grep -q 'is UP' || { tail -20 "$LOGD/slurmctld.log" >&2; return 1; }
    ls_daemon slurmd </dev/null >>"$LOGD/slurmd.stderr" 2>&1 || { cat "$LOGD/slurmd.stderr" >&2; return 2; }
    return 0
  }
  wait_idle() { # $1 timeout; returns 0 idle, 1 timeout, 2 slurmd died
    local end=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt $end ]; do
      [ "$(node_state)" = idle ] && return 0
      if ! ls_pid_is "$RUN/slurmd.pid" slurmd >/dev/null; then
        sleep 0.3
        ls_pid_is "$RUN/slurmd.pid" slurmd >/dev/null || return 2
      fi
      sleep 0.1
    done
    return 1
  }

  if [ "$SLURM_PROCTRACK" = auto ]; then candidates="cgroup linuxproc"; else candidates=$SLURM_PROCTRACK; fi
  ok=0
  for pt in $candidates; do
    write_conf "$pt"
    rc=0
    start_daemons || rc=$?
    if [ $rc = 1 ]; then
      ls_stop_daemons "$STOP_TIMEOUT" || true
      ls_die "slurmctld failed to start; see $LOGD/slurmctld.log"
    fi
    if [ $rc = 0 ]; then
      rc=0
      wait_idle "$START_TIMEOUT" || rc=$?
      if [ $rc = 0 ]; then ok=1; break; fi
    fi
    ls_log "node did not come up with proctrack/$pt (slurmd log tail follows)"
    tail -15 "$LOGD/slurmd.log" >&2 2>/dev/null || true
    cat "$LOGD/slurmd.stderr" >&2 2>/dev/null || true
    ls_stop_daemons "$STOP_TIMEOUT" || true
  done
  [ $ok = 1 ] || ls_die "node $NODE never became idle; see $LOGD/"
  if [ "${SLURM_WAIT_SCHED:-1}" = 1 ]; then
    # slurmctld logs "SchedulerParameters=..." (level info) when its scheduler starts
    for _ in $(seq 1 100); do
      tail -c +$((CTLD_LOG_OFF + 1)) "$LOGD/slurmctld.log" 2>/dev/null | grep -q 'SchedulerParameters=' && break
      sleep 0.1
    done
  fi
  CTLD_PID=$(ls_pid_is "$RUN/slurmctld.pid" slurmctld)
  SLURMD_PID=$(ls_pid_is "$RUN/slurmd.pid" slurmd)
  # in CONFDIR (root 0755), not in run/ (owned by the slurm user):
  # reconfigure.sh sources it as root
  printf '%s\n' "$PARAMS" >"$CONFDIR/params.env.tmp"
  mv "$CONFDIR/params.env.tmp" "$CONFDIR/params.env"
fi

# ---------------------------------------------------------------- /etc/slurm link
if [ "$LINK_ETC" = 1 ]; then
  mkdir -p /etc/slurm
  if [ -L /etc/slurm/slurm.conf ] || [ ! -e /etc/slurm/slurm.conf ]; then
    ln -sfn "$CONFDIR/slurm.conf" /etc/slurm/slurm.conf
  else
    ls_log "WARNING: /etc/slurm/slurm.conf is a regular file; not replacing it. Users need SLURM_CONF=$SLURM_CONF"
  fi
fi

MUNGED_PID=$(ls_pid_is /run/munge/munged.pid munged || true)
SCRIPTD_PID=$(pgrep -P "$CTLD_PID" -x slurmscriptd || true)
[ -f "$RUN/munged.started-by-us" ] && MUNGE_STARTED_BY_US=1
cat >"$RUN/pids.env" <<EOF
SLURM_CONF=$SLURM_CONF
MUNGED_PID=$MUNGED_PID
MUNGED_STARTED_BY_US=$MUNGE_STARTED_BY_US
SLURMCTLD_PID=$CTLD_PID
SLURMSCRIPTD_PID=$SCRIPTD_PID
SLURMD_PID=$SLURMD_PID
PROCTRACK=$(sed -n 's#^ProctrackType=proctrack/##p' "$SLURM_CONF")
KILLWAIT=$SLURM_KILLWAIT
NODE=$NODE
EOF
ls_log "node $NODE is $(node_state) after $(ls_elapsed "$T_START") s"
cat "$RUN/pids.env"
