#!/bin/bash
# mntns-exec.sh CPUS CHOSEN CMD...: run CMD in a mount namespace from which Slurm's job containers work
# (image-init.sh runs it in a new mount namespace, pinned to one CPU; never run it by hand).
#
# Slurm's job_container/tmpfs and namespace/linux keep each job's mount namespace alive by
# bind-mounting /proc/CHILD/ns/mnt, from slurmstepd's own namespace, onto a file under BasePath.
# Linux refuses that bind with EINVAL (it could make a loop of namespaces) unless the child's
# namespace id is greater than the binder's, and Linux 6.18 hands namespace ids out in per-CPU
# batches. Measured on this project's machines (NS_GET_MNTNS_ID): namespaces made one after the
# other got ids 10675 on CPU 0, 14033 on CPU 1, 10676 on CPU 0; from a namespace made on CPU 1,
# the bind of every namespace made later on CPU 0 failed, and the job's extern step then failed
# with "_create_ns: ns base mount failed: Invalid argument" (the job requeued and held). A real
# node's slurmd runs in the host's first mount namespace, whose id is below every other; a
# test node's slurmd runs in a namespace made when the node starts, and so, on one CPU in two,
# had every job container made on the other CPU fail.
#
# So the node's daemons run in a namespace made on the CPU whose batch is the lowest: from here,
# this script binds a mount namespace made on each CPU in CPUS (the node's whole CPU list); if
# every bind works, no later namespace can have a smaller id (a CPU's ids only grow, and its next
# batch starts above every batch handed out), and it gives CMD the whole CPU list back and execs
# it, after creating the file CHOSEN. Otherwise it exits 75 without, and image-init.sh tries the
# next CPU.
set -euo pipefail
CPUS=$1 CHOSEN=$2
shift 2
cpu_list() { # LIST: the CPUs of a list as /proc/self/status writes it (0-3,6), one per word
  local r
  for r in ${1//,/ }; do
    case $r in *-*) seq "${r%-*}" "${r#*-}" ;; *) echo "$r" ;; esac
  done
}
PROBE=/run/ffl-mntns-probe
mkdir -p "$PROBE"
mount -t tmpfs -o size=64k,mode=0700 mntns-probe "$PROBE"
: >"$PROBE/ns"
self=$(readlink /proc/self/ns/mnt)
ok=1
for cpu in $(cpu_list "$CPUS"); do
  taskset -c "$cpu" unshare --mount sleep 30 &
  p=$!
  for _ in $(seq 200); do
    ns=$(readlink "/proc/$p/ns/mnt" 2>/dev/null || true)
    [ -n "$ns" ] && [ "$ns" != "$self" ] && break
    sleep 0.01
  done
  if mount --bind "/proc/$p/ns/mnt" "$PROBE/ns" 2>/dev/null; then
    umount "$PROBE/ns"
  else
    ok=0
  fi
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
done
umount "$PROBE"
rmdir "$PROBE"
[ "$ok" = 1 ] || exit 75
taskset -pc "$CPUS" $$ >/dev/null
: >"$CHOSEN"
exec "$@"
