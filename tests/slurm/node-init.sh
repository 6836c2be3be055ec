#!/bin/bash
# node-init.sh CONFDIR NODE
#
# PID 1 of one node of the multi-node test cluster (multinode.sh starts it
# with `nsenter --net=/run/netns/fflmn-NODE unshare --mount --uts --pid
# --fork --propagation private`; never run it by hand). It makes the node's
# own world, starts the node's slurmd and then only reaps orphans:
#
#   /proc               the node's PID namespace: the node sees its own
#                       processes only, as a real node does
#   /run /tmp /dev/shm  fresh tmpfs: empty at every boot
#   /tmp/.X11-unix      root's 1777, as systemd-tmpfiles makes it at boot
#   /etc                an overlay over the host's /etc: slurm/slurm.conf and
#                       slurm/cgroup.conf link to CONFDIR's, ffl/ffl.toml
#                       is CONFDIR/ffl.toml with @NODE@ replaced, hosts names
#                       the cluster; the host's /etc stays untouched
#   boot id             /proc/sys/kernel/random/boot_id is a new random id at
#                       every boot (a bind mount): records from before a
#                       "reboot" come from another boot, as on real hardware
#   hostname            NODE (its own UTS namespace)
# /home, /var/tmp and the rest are the host's: shared, like an NFS home and
# the node's disk.
#
# SIGTERM: stop slurmd (up to 10 s), then exit; the kernel kills whatever
# else still runs in the node. SIGKILL (multinode.sh crash) is a power cut.
# Its host PID goes to CONFDIR/run/node-NODE.hostpid once the node is set up
# (multinode.sh turns it into node-NODE.pid, with the start time).
set -euo pipefail

CONFDIR=$1 NODE=$2
log() { echo "node-init[$NODE]: $*" >&2; }
die() { echo "node-init[$NODE]: ERROR: $*" >&2; exit 1; }

# The host's /proc is still mounted here: /proc/self is this shell in the
# host's PID namespace (read by the builtin, so no child process answers).
# (Its start time is read by the host: this node's time namespace shifts
# the start times it sees.)
read -r STAT </proc/self/stat
HOST_PID=${STAT%% *}

# shellcheck source=/dev/null
. "$CONFDIR/cluster.env" # SUBNET NODES CTL_NAME CTL_ADDR
[ "$$" = 1 ] || die "not PID 1 of a new PID namespace (pid $$)"

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t tmpfs -o mode=0755,nosuid,nodev,size=256m tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mkdir -m 1777 /tmp/.X11-unix

# /etc: an overlay whose upper layer lives in the node's /run (gone at reboot).
up=/run/.fflmn/etc-upper
mkdir -p "$up/slurm" "$up/ffl" /run/.fflmn/etc-work
ln -s "$CONFDIR/slurm.conf" "$up/slurm/slurm.conf"
ln -s "$CONFDIR/cgroup.conf" "$up/slurm/cgroup.conf"
if [ -f "$CONFDIR/ffl.toml" ]; then
  sed "s/@NODE@/$NODE/g" "$CONFDIR/ffl.toml" >"$up/ffl/ffl.toml"
  chmod 0644 "$up/ffl/ffl.toml"
fi
echo "$NODE" >"$up/hostname"
{
  cat /etc/hosts
  echo "# multi-node test cluster ($CONFDIR)"
  echo "$CTL_ADDR $CTL_NAME"
  i=0
  for n in $NODES; do
    i=$((i + 1))
    echo "$SUBNET.$((10 + i)) $n"
  done
} >"$up/hosts"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$up,workdir=/run/.fflmn/etc-work" /etc

cat /proc/sys/kernel/random/uuid >/run/.fflmn/boot_id
mount --bind /run/.fflmn/boot_id /proc/sys/kernel/random/boot_id
hostname "$NODE"

echo "$HOST_PID" >"$CONFDIR/run/node-$NODE.hostpid.tmp"
mv "$CONFDIR/run/node-$NODE.hostpid.tmp" "$CONFDIR/run/node-$NODE.hostpid"
log "up: host pid $HOST_PID, boot id $(cat /proc/sys/kernel/random/boot_id)"

# slurmd daemonizes; its pid file holds its PID in this namespace.
SLURMD_PID_FILE=$CONFDIR/run/slurmd-$NODE.pid
rm -f "$SLURMD_PID_FILE"
cd /
slurmd -N "$NODE" </dev/null >>"$CONFDIR/log/slurmd-$NODE.stderr" 2>&1 ||
  die "slurmd -N $NODE failed (see $CONFDIR/log/slurmd-$NODE.stderr, slurmd-$NODE.log)"

stopping=0
stop() {
  stopping=1
  local p i
  p=$(tr -dc 0-9 <"$SLURMD_PID_FILE" 2>/dev/null || true)
  if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmd ]; then
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do [ -e "/proc/$p" ] || break; sleep 0.1; done
  fi
  log "stopped"
  exit 0
}
trap stop TERM INT

# PID 1 reaps every orphan of the node (bash reaps any child while it waits).
while [ $stopping = 0 ]; do
  sleep 1 &
  wait $! || true
done
