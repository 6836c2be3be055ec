#!/bin/bash
# multinode.sh COMMAND CONFDIR [NODE] [CMD...]
#
# A real Slurm cluster of several nodes on this one machine, for ffl's
# multi-node tests: one slurmctld and MN_NODES (3) slurmd started with
# `slurmd -N NODE`, each node in its own network, mount, UTS and PID
# namespace (see node-init.sh for what a node sees), all sharing the host's
# /home. Root only, no systemd. Debian 12: slurm-wlm 22.05, munge, iproute2,
# util-linux.
#
#   start   CONFDIR          network, munged, slurmctld, the nodes; waits
#                            until every node is idle. Whatever an earlier
#                            run of CONFDIR left is stopped first.
#   stop    CONFDIR          cancel all jobs (their Epilogs run), stop the
#                            nodes, slurmctld and munged, remove the
#                            namespaces, links, bridge and empty cgroups
#   crash   CONFDIR NODE     power cut: every process of NODE is SIGKILLed at
#                            once; its /run, /tmp and /dev/shm are gone
#   boot    CONFDIR NODE     start a crashed (or stopped) node again: fresh
#                            /run, /tmp, /dev/shm and boot id; waits until
#                            slurmctld has it back
#   reboot  CONFDIR NODE     crash + boot
#   on      CONFDIR NODE CMD run CMD as root on NODE (in all its namespaces)
#   status  CONFDIR          nodes, addresses, init PIDs, sinfo
#
# Everything is the harness's own, so it runs beside other work and beside
# the single-node cluster of start-local-slurm.sh (ports 6817/6818 on the
# host network): the daemons listen on 6817/6818 inside their own network
# namespaces only; the host reaches them through the bridge fflmn0 at
# $MN_SUBNET.1. Names: bridge fflmn0, network namespaces fflmn-ctl and
# fflmn-NODE, host-side links fflmn-c and fflmn-vN. munged is our own
# (socket, key and pid file under CONFDIR/munge). Commands talk to the
# cluster with SLURM_CONF=CONFDIR/slurm.conf (inside the nodes that is also
# /etc/slurm/slurm.conf).
#
# CONFDIR and its parents must be world-traversable (use /var/tmp/...):
#   CONFDIR/slurm.conf cgroup.conf ffl.toml cluster.env   configuration
#   CONFDIR/state/ctld, CONFDIR/state/NODE     StateSaveLocation, SlurmdSpoolDir
#   CONFDIR/log/                               daemon logs, node-NODE.log
#   CONFDIR/run/                               pid files (node-NODE.pid: the
#                                              host PID and start time of the
#                                              node's PID 1)
#
# Knobs (environment, all optional):
#   MN_NODES=N                 number of nodes, named fflnode1..N      [3]
#   MN_SUBNET=A.B.C            the cluster's private /24: .1 the host's end
#                              of the bridge, .2 slurmctld, .11.. the nodes.
#                              start refuses a subnet the host already routes
#                                                                      [10.250.47]
#   MN_FFL_TOML=FILE           installed as /etc/ffl/ffl.toml on every node,
#                              with @NODE@ replaced by the node's name [none]
#   SLURM_PROLOG, SLURM_EPILOG absolute paths of the Prolog/Epilog     [none]
#   SLURM_PROLOG_FLAGS         PrologFlags                             [Alloc]
#   SLURM_KILLWAIT=N           KillWait                                [5]
#   SLURM_PROCTRACK=cgroup|linuxproc|pgid                              [cgroup]
#   SLURM_PROLOG_EPILOG_TIMEOUT=N  PrologEpilogTimeout          [Slurm default]
#   SLURM_FIRST_JOB_ID=N       FirstJobId                              [1]
#   SLURM_DEBUG_LEVEL          slurmctld/slurmd log level              [info]
#   SLURM_SLURMD_TIMEOUT=N     SlurmdTimeout: a crashed node is DOWN and its
#                              jobs NODE_FAIL within N..2N s            [30]
#   SLURM_CONF_EXTRA           lines appended to slurm.conf
#   SLURM_START_TIMEOUT=N      seconds to wait for the nodes           [60]
#   SLURM_STOP_TIMEOUT=N       seconds per daemon when stopping        [15]
#   SLURM_JOB_DRAIN_TIMEOUT=N  wait for cancelled jobs when stopping   [60]
#
# Nothing here kills a process by name: only PIDs from CONFDIR's pid files
# whose /proc/PID/comm (and, for a node, start time) match. start/stop/
# crash/boot serialize on /run/ffl-multinode.lock.
set -euo pipefail

LS_NAME=multinode
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

usage() { ls_die "usage: $0 start|stop|status CONFDIR | crash|boot|reboot CONFDIR NODE | on CONFDIR NODE CMD..."; }
[ $# -ge 2 ] || usage
CMD=$1
[ "$(id -u)" = 0 ] || ls_die "must run as root"
T0=$(ls_now)

BRIDGE=fflmn0
CTL_NS=fflmn-ctl
CTL_NAME=fflmn-ctl
NS_PREFIX=fflmn-
LOCKFILE=/run/ffl-multinode.lock

if [ "$CMD" = start ]; then mkdir -p "$2"; fi
[ -d "$2" ] || { [ "$CMD" = stop ] && { ls_log "$2: no such directory; nothing to stop"; exit 0; }; ls_die "$2: no such directory"; }
CONFDIR=$(cd "$2" && pwd -P)
export SLURM_CONF=$CONFDIR/slurm.conf
RUN=$CONFDIR/run LOGD=$CONFDIR/log ST=$CONFDIR/state MUNGE=$CONFDIR/munge
MUNGE_SOCKET=$MUNGE/run/munge.socket

mn_lock() {
  exec 8>>"$LOCKFILE"
  flock -w "${SLURM_LOCK_TIMEOUT:-300}" 8 || ls_die "another multinode.sh holds $LOCKFILE"
}

# cluster.env (written by start) names the subnet and the nodes; stop, crash,
# boot and on use what start recorded, not the current knobs.
load_cluster_env() {
  [ -f "$CONFDIR/cluster.env" ] || return 1
  # shellcheck source=/dev/null
  . "$CONFDIR/cluster.env"
}

node_index() { # NODE -> 1..N
  local i=0 n
  for n in $NODES; do
    i=$((i + 1))
    [ "$n" = "$1" ] && { echo $i; return 0; }
  done
  return 1
}

# node_pid NODE: the host PID of the node's PID 1 if it runs (pid file, comm
# and start time agree).
node_pid() {
  local f=$RUN/node-$1.pid p st rest
  [ -s "$f" ] || return 1
  read -r p st <"$f" || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = node-init.sh ] || return 1
  rest=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
  rest=${rest##*) }
  # shellcheck disable=SC2086
  set -- $rest
  [ "$1" != Z ] && [ "${20}" = "$st" ] || return 1
  echo "$p"
}

node_state() { sinfo -h -n "$1" -o %T 2>/dev/null | sed -n 1p; }

# ---------------------------------------------------------------- network
net_up() {
  local i n ns
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  add_host "$CTL_NS" fflmn-c "$SUBNET.2"
  i=0
  for n in $NODES; do
    i=$((i + 1))
    add_host "$NS_PREFIX$n" "fflmn-v$i" "$SUBNET.$((10 + i))"
  done
}

add_host() { # NETNS HOSTLINK ADDR
  local ns=$1 link=$2 addr=$3
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$link" type veth peer name "${link}p"
  ip link set "${link}p" netns "$ns"
  ip -n "$ns" link set "${link}p" name eth0
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip link set "$link" master "$BRIDGE"
  ip link set "$link" up
}

net_down() {
  local i n
  i=0
  for n in $NODES; do
    i=$((i + 1))
    ip link del "fflmn-v$i" 2>/dev/null || true
    ip netns del "$NS_PREFIX$n" 2>/dev/null || true
  done
  ip link del fflmn-c 2>/dev/null || true
  ip netns del "$CTL_NS" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  # `ip netns add` made /run/netns a mount point (bound onto itself); undo
  # that only if it was not one before we started and no namespace is left
  if [ "${NETNS_MOUNT_OURS:-0}" = 1 ] && mountpoint -q /run/netns && [ -z "$(ls -A /run/netns)" ]; then
    umount /run/netns && rmdir /run/netns 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- munge
munge_up() {
  mkdir -p "$MUNGE/etc" "$MUNGE/run" "$MUNGE/lib" "$MUNGE/log"
  if [ ! -s "$MUNGE/etc/munge.key" ]; then
    dd if=/dev/urandom of="$MUNGE/etc/munge.key" bs=1 count=1024 status=none
  fi
  chown -R munge:munge "$MUNGE"
  chmod 0755 "$MUNGE" "$MUNGE/run"
  chmod 0700 "$MUNGE/etc" "$MUNGE/lib" "$MUNGE/log"
  chmod 0600 "$MUNGE/etc/munge.key"
  runuser -u munge -- /usr/sbin/munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE/etc/munge.key" \
    --pid-file="$MUNGE/run/munged.pid" --log-file="$MUNGE/log/munged.log" --seed-file="$MUNGE/lib/munged.seed" \
    </dev/null >>"$LOGD/munged.stderr" 2>&1 8>&- 9>&- || ls_die "munged failed (see $LOGD/munged.stderr, $MUNGE/log/munged.log)"
  for _ in $(seq 1 50); do munge -S "$MUNGE_SOCKET" -n </dev/null 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 && return 0; sleep 0.1; done
  ls_die "our munged does not answer on $MUNGE_SOCKET"
}

# ---------------------------------------------------------------- config
write_conf() {
  local hw i n
  # NodeName=x CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
  hw=$(slurmd -C | sed -n 1p)
  hw=${hw#NodeName=* }
  {
    echo "# generated by ffl tests/slurm/multinode.sh $(date -Is)"
    echo "ClusterName=fflmn"
    echo "SlurmctldHost=$CTL_NAME($SUBNET.2)"
    echo "SlurmUser=slurm"
    echo "SlurmctldPort=6817"
    echo "SlurmdPort=6818"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$MUNGE_SOCKET"
    echo "StateSaveLocation=$ST/ctld"
    echo "SlurmdSpoolDir=$ST/%n"
    echo "SlurmctldPidFile=$RUN/slurmctld.pid"
    echo "SlurmdPidFile=$RUN/slurmd-%n.pid"
    echo "SlurmctldLogFile=$LOGD/slurmctld.log"
    echo "SlurmdLogFile=$LOGD/slurmd-%n.log"
    echo "SlurmctldDebug=$SLURM_DEBUG_LEVEL"
    echo "SlurmdDebug=$SLURM_DEBUG_LEVEL"
    echo "ProctrackType=proctrack/$SLURM_PROCTRACK"
    echo "TaskPlugin=task/none"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_Core"
    echo "SchedulerType=sched/backfill"
    echo "SchedulerParameters=batch_sched_delay=0"
    echo "MpiDefault=none"
    echo "MailProg=/bin/true"
    echo "ReturnToService=2"
    # a job whose node "reboots" must end, not start again under the same id
    echo "JobRequeue=0"
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
    echo "SlurmdTimeout=$SLURM_SLURMD_TIMEOUT"
    echo "InactiveLimit=0"
    echo "MinJobAge=300"
    echo "Waittime=0"
    i=0
    for n in $NODES; do
      i=$((i + 1))
      echo "NodeName=$n NodeAddr=$SUBNET.$((10 + i)) NodeHostname=$n $hw State=UNKNOWN"
    done
    # The cores may be shared: the test machine may have 2 CPUs, and jobs ask for 2 each.
    echo "PartitionName=ffltest Nodes=ALL Default=YES OverSubscribe=FORCE:16 MaxTime=INFINITE State=UP"
    [ -n "$SLURM_CONF_EXTRA" ] && printf '%s\n' "$SLURM_CONF_EXTRA"
    :
  } >"$CONFDIR/slurm.conf.tmp"
  mv "$CONFDIR/slurm.conf.tmp" "$CONFDIR/slurm.conf"
  echo "CgroupPlugin=autodetect" >"$CONFDIR/cgroup.conf"
  chmod 0644 "$CONFDIR/slurm.conf" "$CONFDIR/cgroup.conf"
  if [ -n "$MN_FFL_TOML" ]; then
    install -m 0644 "$MN_FFL_TOML" "$CONFDIR/ffl.toml"
  else
    rm -f "$CONFDIR/ffl.toml"
  fi
}

# ---------------------------------------------------------------- daemons
ctld_up() {
  : >"$LOGD/slurmctld.stderr"
  # slurmctld checks that it runs on SlurmctldHost: its own UTS namespace
  # is called that.
  nsenter --net="/run/netns/$CTL_NS" -- unshare --uts -- /bin/sh -c 'hostname "$1" && exec slurmctld' sh "$CTL_NAME" \
    </dev/null >>"$LOGD/slurmctld.stderr" 2>&1 8>&- 9>&- || { cat "$LOGD/slurmctld.stderr" >&2; ls_die "slurmctld failed"; }
  for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && return 0; sleep 0.1; done
  tail -20 "$LOGD/slurmctld.log" >&2 || true
  ls_die "slurmctld does not answer"
}

# node_boot NODE: start the node's PID 1 (node-init.sh), wait for its pid file.
node_boot() {
  local n=$1 i p st
  node_pid "$n" >/dev/null && { ls_log "$n already up"; return 0; }
  rm -f "$RUN/node-$n.pid" "$RUN/node-$n.hostpid"
  # A time namespace whose boot time is now: the node's uptime starts at 0,
  # so slurmd reports a new boot and slurmctld handles it as a rebooted node.
  local up
  up=$(cut -d. -f1 /proc/uptime)
  setsid nsenter --net="/run/netns/$NS_PREFIX$n" -- \
    unshare --mount --uts --pid --time --boottime="-$up" --fork --propagation private -- \
    "$HERE/node-init.sh" "$CONFDIR" "$n" </dev/null >>"$LOGD/node-$n.log" 2>&1 8>&- 9>&- &
  for ((i = 0; i < 100; i++)); do
    if [ -s "$RUN/node-$n.hostpid" ]; then
      p=$(tr -dc 0-9 <"$RUN/node-$n.hostpid")
      rm -f "$RUN/node-$n.hostpid"
      st=$(cat "/proc/$p/stat" 2>/dev/null) || break
      st=${st##*) }
      # shellcheck disable=SC2086
      set -- $st
      echo "$p ${20}" >"$RUN/node-$n.pid"
      node_pid "$n" >/dev/null && return 0
      break
    fi
    sleep 0.1
  done
  tail -5 "$LOGD/node-$n.log" >&2 || true
  ls_die "node $n did not come up (see $LOGD/node-$n.log)"
}

# wait_nodes STATE... : until every node in $WAIT_NODES is in one of the states.
wait_nodes() {
  local end=$(($(date +%s) + START_TIMEOUT)) n st ok
  while [ "$(date +%s)" -lt $end ]; do
    ok=1
    for n in $WAIT_NODES; do
      st=$(node_state "$n")
      case " $* " in *" $st "*) ;; *) ok=0 ;; esac
      node_pid "$n" >/dev/null || ls_die "node $n died (see $LOGD/node-$n.log, slurmd-$n.log)"
    done
    [ $ok = 1 ] && return 0
    sleep 0.2
  done
  sinfo -N >&2 || true
  return 1
}

# node_crash NODE: SIGKILL the node's PID 1; the kernel then kills every
# process of its PID namespace. Waits until all of them are gone.
node_crash() {
  local n=$1 p ns i
  p=$(node_pid "$n") || { ls_log "$n is not running"; return 0; }
  ns=$(readlink "/proc/$p/ns/pid")
  kill -KILL "$p"
  for ((i = 0; i < 200; i++)); do
    in_ns "$ns" || { ls_log "$n crashed (pid $p and all its processes gone)"; return 0; }
    sleep 0.05
  done
  ls_die "processes of $n's PID namespace still alive 10 s after its PID 1 was killed"
}

# in_ns NSLINK: true if some process lives in that PID namespace.
in_ns() {
  local d
  for d in /proc/[0-9]*; do
    [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$1" ] && return 0
  done
  return 1
}

# node_stop NODE: SIGTERM to its PID 1 (which stops slurmd), SIGKILL after
# STOP_TIMEOUT.
node_stop() {
  local n=$1 p ns i
  p=$(node_pid "$n") || return 0
  ns=$(readlink "/proc/$p/ns/pid")
  kill -TERM "$p"
  for ((i = 0; i < STOP_TIMEOUT * 20; i++)); do
    in_ns "$ns" || { ls_log "$n stopped"; return 0; }
    sleep 0.05
  done
  ls_log "$n did not stop in ${STOP_TIMEOUT}s; SIGKILL"
  node_crash "$n"
}

drain_jobs() {
  local jobs end left
  jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  [ -n "${jobs// /}" ] || return 0
  ls_log "cancelling jobs: $jobs"
  # shellcheck disable=SC2086
  scancel $jobs 2>/dev/null || true
  end=$(($(date +%s) + DRAIN_TIMEOUT))
  while [ "$(date +%s)" -lt "$end" ] && [ -n "$(squeue -h -o %A 2>/dev/null)" ]; do sleep 0.2; done
  left=$(squeue -h -o '%A %T %N' 2>/dev/null)
  [ -z "$left" ] || { ls_log "WARNING: jobs still in queue after ${DRAIN_TIMEOUT}s: $left"; return 1; }
}

# remove_cgroups: the empty cgroups slurmd made for our nodes (slurm_NODE
# in every v1 hierarchy, or under the unified one). rmdir removes only empty
# directories; a cgroup that still has a process stays (and is reported).
remove_cgroups() {
  local n d
  for n in $NODES; do
    for d in /sys/fs/cgroup/*/slurm_"$n" /sys/fs/cgroup/slurm_"$n"; do
      [ -d "$d" ] || continue
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ ! -d "$d" ] || ls_log "WARNING: $d not empty (a process left in it?)"
    done
  done
}

stop_all() {
  local rc=0 n p
  load_cluster_env || { ls_log "no cluster.env in $CONFDIR: nothing to stop"; return 0; }
  if scontrol ping 2>/dev/null | grep -q 'is UP'; then drain_jobs || rc=1; fi
  for n in $NODES; do node_stop "$n" & done
  wait
  p=$(ls_pid_is "$RUN/slurmctld.pid" slurmctld || true)
  [ -z "$p" ] || ls_stop_pid slurmctld "$p" "$STOP_TIMEOUT" || rc=1
  p=$(ls_pid_is "$MUNGE/run/munged.pid" munged || true)
  [ -z "$p" ] || ls_stop_pid munged "$p" "$STOP_TIMEOUT" || rc=1
  net_down
  remove_cgroups
  rm -f "$RUN"/node-*.pid
  return $rc
}

# ---------------------------------------------------------------- commands
MN_NODES=${MN_NODES:-3}
START_TIMEOUT=${SLURM_START_TIMEOUT:-60}
STOP_TIMEOUT=${SLURM_STOP_TIMEOUT:-15}
DRAIN_TIMEOUT=${SLURM_JOB_DRAIN_TIMEOUT:-60}

case $CMD in
  start)
    [ $# -eq 2 ] || usage
    SUBNET=${MN_SUBNET:-10.250.47}
    MN_FFL_TOML=${MN_FFL_TOML:-}
    SLURM_PROLOG=${SLURM_PROLOG:-}
    SLURM_EPILOG=${SLURM_EPILOG:-}
    SLURM_PROLOG_FLAGS=${SLURM_PROLOG_FLAGS-Alloc}
    SLURM_KILLWAIT=${SLURM_KILLWAIT:-5}
    SLURM_PROCTRACK=${SLURM_PROCTRACK:-cgroup}
    SLURM_PROLOG_EPILOG_TIMEOUT=${SLURM_PROLOG_EPILOG_TIMEOUT:-}
    SLURM_FIRST_JOB_ID=${SLURM_FIRST_JOB_ID:-}
    SLURM_DEBUG_LEVEL=${SLURM_DEBUG_LEVEL:-info}
    SLURM_CONF_EXTRA=${SLURM_CONF_EXTRA:-}
    SLURM_SLURMD_TIMEOUT=${SLURM_SLURMD_TIMEOUT:-30}
    [[ $SLURM_SLURMD_TIMEOUT =~ ^[1-9][0-9]*$ ]] || ls_die "SLURM_SLURMD_TIMEOUT=$SLURM_SLURMD_TIMEOUT: want seconds"
    [[ $MN_NODES =~ ^[1-9]$ ]] || ls_die "MN_NODES=$MN_NODES: want 1..9"
    [[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || ls_die "MN_SUBNET=$SUBNET: want the first three octets of a /24, e.g. 10.250.47"
    case $SLURM_PROCTRACK in cgroup | linuxproc | pgid) ;; *) ls_die "SLURM_PROCTRACK=$SLURM_PROCTRACK: want cgroup, linuxproc or pgid" ;; esac
    for s in "$SLURM_PROLOG" "$SLURM_EPILOG"; do
      [ -z "$s" ] && continue
      case $s in /*) ;; *) ls_die "prolog/epilog $s: slurmd needs an absolute path" ;; esac
      { [ -f "$s" ] && [ -x "$s" ]; } || ls_die "prolog/epilog $s is not an executable file"
    done
    [ -z "$MN_FFL_TOML" ] || [ -f "$MN_FFL_TOML" ] || ls_die "MN_FFL_TOML=$MN_FFL_TOML: no such file"
    for b in ip nsenter unshare slurmctld slurmd slurmstepd munged sbatch; do
      command -v "$b" >/dev/null || ls_die "$b not found (make deps: slurm-wlm munge iproute2 util-linux)"
    done
    mn_lock
    if load_cluster_env 2>/dev/null; then
      ls_log "stopping what an earlier run of $CONFDIR left"
      stop_all || true
    fi
    # the names and the subnet must be free (another cluster, or the host's own network)
    SUBNET=${MN_SUBNET:-10.250.47}
    NODES=$(seq -f 'fflnode%g' 1 "$MN_NODES" | tr '\n' ' ')
    NODES=${NODES% }
    ip link show "$BRIDGE" >/dev/null 2>&1 && ls_die "bridge $BRIDGE exists (a multi-node cluster of another CONFDIR?); stop it first"
    for ns in "$CTL_NS" $(for n in $NODES; do echo "$NS_PREFIX$n"; done); do
      [ ! -e "/run/netns/$ns" ] || ls_die "network namespace $ns exists; 'ip netns del $ns' if nothing uses it"
    done
    [ -z "$(ip -4 route show to match "$SUBNET.1" | grep -v '^default')" ] ||
      ls_die "the host already routes $SUBNET.0/24 ($(ip -4 route show to match "$SUBNET.1" | grep -v '^default' | head -1)); pick another MN_SUBNET"
    getent passwd slurm >/dev/null || ls_die "user 'slurm' missing (install slurm-wlm)"
    getent passwd munge >/dev/null || ls_die "user 'munge' missing (install munge)"
    d=$CONFDIR
    while [ "$d" != / ]; do
      d=$(dirname "$d")
      perm=$(stat -c %A "$d")
      case ${perm:9:1} in x | t) ;; *) ls_die "$d is not world-traversable (mode $perm)" ;; esac
    done

    mkdir -p "$RUN" "$LOGD" "$ST/ctld"
    chown root:root "$CONFDIR"
    chmod 0755 "$CONFDIR" "$ST"
    chown slurm:slurm "$RUN" "$LOGD" "$ST/ctld"
    chmod 0755 "$RUN" "$LOGD" "$ST/ctld"
    rm -rf "${ST:?}/ctld/"* # a fresh start: job ids from FirstJobId again
    for n in $NODES; do
      rm -rf "${ST:?}/$n"
      mkdir -m 0755 "$ST/$n"
      for f in "$LOGD/slurmd-$n.log" "$LOGD/node-$n.log"; do [ ! -f "$f" ] || mv -f "$f" "$f.prev"; done
    done
    [ ! -f "$LOGD/slurmctld.log" ] || mv -f "$LOGD/slurmctld.log" "$LOGD/slurmctld.log.prev"
    NETNS_MOUNT_OURS=1
    if mountpoint -q /run/netns 2>/dev/null; then NETNS_MOUNT_OURS=0; fi
    {
      printf 'SUBNET=%q\nNODES=%q\nCTL_NAME=%q\nCTL_ADDR=%q\nNETNS_MOUNT_OURS=%q\n' "$SUBNET" "$NODES" "$CTL_NAME" "$SUBNET.2" "$NETNS_MOUNT_OURS"
    } >"$CONFDIR/cluster.env"
    chmod 0644 "$CONFDIR/cluster.env"
    write_conf
    ok=0
    trap '[ $ok = 1 ] || { ls_log "start failed; undoing"; stop_all || true; }' EXIT
    t=$(ls_now)
    net_up
    ls_log "network up in $(ls_elapsed "$t") s: bridge $BRIDGE $SUBNET.1, $CTL_NAME $SUBNET.2, nodes $NODES"
    munge_up
    ctld_up
    for n in $NODES; do node_boot "$n"; done
    WAIT_NODES=$NODES
    wait_nodes idle || ls_die "nodes not idle after ${START_TIMEOUT}s (see $LOGD/)"
    # slurmctld's first scheduler pass comes ~3 s after its start; a job
    # submitted before it waits for it anyway
    for _ in $(seq 1 100); do
      grep -q 'SchedulerParameters=' "$LOGD/slurmctld.log" 2>/dev/null && break
      sleep 0.1
    done
    ok=1
    ls_log "cluster up in $(ls_elapsed "$T0") s: $(sinfo -h -N -o '%N=%T' | tr '\n' ' ')"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    mn_lock
    rc=0
    stop_all || rc=1
    ls_log "stopped in $(ls_elapsed "$T0") s"
    exit $rc
    ;;
  crash | boot | reboot)
    [ $# -eq 3 ] || usage
    load_cluster_env || ls_die "$CONFDIR: no cluster (cluster.env missing)"
    node_index "$3" >/dev/null || ls_die "$3: not a node of this cluster ($NODES)"
    mn_lock
    if [ "$CMD" != boot ]; then node_crash "$3"; fi
    if [ "$CMD" != crash ]; then
      t_boot=$(date +%s)
      node_boot "$3"
      # slurmctld takes the node back when its new slurmd registers
      end=$((t_boot + START_TIMEOUT))
      while :; do
        s=$(scontrol show node -o "$3" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
        s=$(date -d "$s" +%s 2>/dev/null || echo 0)
        [ "$s" -lt "$t_boot" ] || break
        [ "$(date +%s)" -lt $end ] || ls_die "$3: slurmd did not register with slurmctld in ${START_TIMEOUT}s"
        sleep 0.1
      done
      WAIT_NODES=$3
      wait_nodes idle mixed allocated completing || ls_die "$3 not back after ${START_TIMEOUT}s"
      ls_log "$3 booted in $(ls_elapsed "$T0") s ($(node_state "$3"))"
    fi
    ;;
  on)
    [ $# -ge 4 ] || usage
    load_cluster_env || ls_die "$CONFDIR: no cluster (cluster.env missing)"
    p=$(node_pid "$3") || ls_die "node $3 is not running"
    shift 3
    # --time too: ffl compares recorded start times with /proc, which the
    # node's time namespace shifts
    exec nsenter --target "$p" --mount --uts --net --pid --time --wd=/ -- "$@"
    ;;
  status)
    load_cluster_env || { echo "no cluster in $CONFDIR"; exit 1; }
    echo "controller $CTL_NAME $SUBNET.2 pid $(ls_pid_is "$RUN/slurmctld.pid" slurmctld || echo -)"
    i=0
    for n in $NODES; do
      i=$((i + 1))
      echo "node $n $SUBNET.$((10 + i)) init pid $(node_pid "$n" || echo -)"
    done
    sinfo -N 2>&1 || true
    ;;
  *) usage ;;
esac
