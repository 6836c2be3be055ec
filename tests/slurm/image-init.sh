#!/bin/bash
# image-init.sh IMAGE RUNDIR BINDIR SRC NODE CMD...
#
# PID 1 of a node made from a Debian image of scripts/node-image.sh (image-run.sh starts it with
# `unshare --net --mount --uts --ipc --pid --fork --propagation private`, as multinode.sh starts
# node-init.sh; never run it by hand). It builds the node's root and runs CMD in it (pivot_root),
# so that CMD's slurmctld, slurmd, munged, xpra and Firefox are the image's, not the host's:
#
#   /                   an overlay: the cached IMAGE read-only below, RUNDIR/upper above, so
#                       a run never changes the image and the next run starts from it as built
#   /proc               this PID namespace: the node sees (and its Prolog and Epilog signal)
#                       its own processes only
#   /sys, /dev          the host's (the cgroup hierarchies slurmd uses: it names its cgroups
#                       slurm_NODE, apart from the host's clusters)
#   /run /tmp /dev/shm  fresh tmpfs; /tmp/.X11-unix root's 1777, as at boot
#   network             its own: loopback and a veth pair inside it (see below), so its
#                       slurmctld and slurmd listen on 6817/6818 beside the host's clusters
#   /ffl/src            SRC (the module: tests/slurm's scripts, contrib/sbatch)
#   /ffl/bin            BINDIR read-only (ffl built on the host, the suite's test binary)
#   hostname            NODE (UTS namespace); /etc/hosts names it
#
# CMD's exit status is this script's; when it ends, so does the PID namespace and, with it,
# every process still running in the node.
set -euo pipefail
IMG=$1 RUN=$2 BIN=$3 SRC=$4 NODE=$5
shift 5
log() { echo "image-init[$NODE]: $*" >&2; }
[ "$$" = 1 ] || { log "not PID 1 of a new PID namespace (pid $$)"; exit 2; }

ROOT=$RUN/root
mkdir -p "$RUN/upper" "$RUN/work" "$ROOT"
mount -t overlay overlay -o "lowerdir=$IMG,upperdir=$RUN/upper,workdir=$RUN/work" "$ROOT"
mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=512m tmpfs "$ROOT/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/tmp"
mkdir -m 1777 "$ROOT/tmp/.X11-unix"
mkdir -p "$ROOT/ffl/src" "$ROOT/ffl/bin"
mount --bind "$SRC" "$ROOT/ffl/src"
mount --bind "$BIN" "$ROOT/ffl/bin"
mount -o remount,bind,ro "$ROOT/ffl/bin"
# IMAGE_WEBROOT=DIR: the host's DIR read-only at the same path in the node (versions.sh: the
# trixie node's stand-in HTML5 web root, see docs/SLURM-VERSIONS.md).
if [ -n "${IMAGE_WEBROOT:-}" ]; then
  mkdir -p "$ROOT$IMAGE_WEBROOT"
  mount --bind "$IMAGE_WEBROOT" "$ROOT$IMAGE_WEBROOT"
  mount -o remount,bind,ro "$ROOT$IMAGE_WEBROOT"
fi
hostname "$NODE"
printf '127.0.0.1 localhost %s\n::1 localhost\n' "$NODE" >"$ROOT/etc/hosts"
echo "$NODE" >"$ROOT/etc/hostname"
ip link set lo up
# An address besides the loopback's: slurmctld 24.11 and later resolve their listening address
# with AI_ADDRCONFIG, which finds nothing on a loopback-only host ("getaddrinfo((null):6817)
# failed"). A veth pair whose both ends stay in the node's namespace gives it one, reaching
# nothing outside.
ip link add ffl0 type veth peer name ffl1
ip addr add 10.254.77.1/24 dev ffl0
ip link set ffl0 up
ip link set ffl1 up
log "root $ROOT (image $IMG), slurmd $(cat "$IMG/.ffl-slurm-version")"

# pivot_root, not chroot: a chroot is undone by setns(CLONE_NEWNS), which sets the caller's root
# to the namespace's, and slurmstepd joins each job's private mount namespace that way under
# job_container/tmpfs and namespace/linux: in a chroot the job would see the host's /, not the
# node's. "pivot_root . ." stacks the old root on the new one; the lazy umount drops it, so the
# node has no path to the host's tree at all.
cd "$ROOT"
pivot_root . .
umount -l .
cd /
# CMD runs in a mount namespace of its own, made on the CPU from which Slurm's job containers
# can bind every later job's namespace (mntns-exec.sh says why: Linux hands namespace ids out
# per CPU). PID 1 reaps every orphan of the node (bash reaps any child while it waits) until
# CMD ends.
CPUS=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
rc=75
for cpu in $(seq 0 $(($(nproc --all) - 1))); do
  taskset -c "$cpu" true 2>/dev/null || continue
  rm -f /run/ffl-mntns-chosen
  taskset -c "$cpu" unshare --mount -- /ffl/src/tests/slurm/mntns-exec.sh "$CPUS" /run/ffl-mntns-chosen \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb "$@" &
  cmd=$!
  rc=0
  wait "$cmd" || rc=$?
  [ -e /run/ffl-mntns-chosen ] && break
  log "a mount namespace made on CPU $cpu cannot hold later jobs' namespaces (Linux's per-CPU namespace ids); next CPU"
done
if [ ! -e /run/ffl-mntns-chosen ]; then
  log "no CPU gives a mount namespace that can hold later jobs' namespaces: job_container/tmpfs cannot work in this node"
  rc=2
fi
log "done (exit $rc)"
exit "$rc"
