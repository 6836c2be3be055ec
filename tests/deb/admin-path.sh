#!/bin/bash
# admin-path.sh FFL_DEB: an admin's path, in a private copy of this machine (root):
#   make demo; then the package installed over it with apt-get, non-interactively (stdin
#   closed: dpkg's conffile prompt would fail it); /etc/ffl/ffl.toml is the package's conffile
#   as shipped; make demo-stop; apt-get purge ffl; then nothing is left in /etc/ffl, under
#   /usr/local (but what was there before), or of the demo's configuration and hooks. The
#   README's commands as written, in a root shell: a sudo that fails and leaves a trace stands
#   in for the missing one.
# The copy: / is an overlay of this machine's root with a tmpfs above it (nothing written reaches
# the host), in new mount, PID, network (loopback plus one veth address, which slurmctld's
# AI_ADDRCONFIG look-up needs), UTS and IPC namespaces; fresh /run, /tmp, /dev/shm. Its Slurm,
# munged and ports are its own, so it needs no suite lock and disturbs no cluster of the host.
# Needs: everything `make demo` needs, installed (the copy has no network).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
die() { echo "admin-path: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

if [ "${1:-}" = --inner ]; then
  # In the copy, as root, from the source tree.
  DEB=$2
  cd "$ROOT"
  local_ffl() { find /usr/local -name 'ffl*' -not -path '/usr/local/go/*' 2>/dev/null | sort; }
  before=$(local_ffl)
  [ ! -e /etc/ffl ] || die "/etc/ffl exists before the demo (here: $(ls -A /etc/ffl | tr '\n' ' '))"
  make demo
  [ ! -e /etc/ffl ] || die "the demo wrote into /etc/ffl: $(ls -A /etc/ffl | tr '\n' ' ')"
  echo "admin-path: make demo wrote nothing to /etc/ffl" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$DEB" </dev/null
  dpkg-query -W -f='${db:Status-Abbrev}' ffl | grep -q '^ii' || die "ffl is not installed"
  grep -qx /etc/ffl/ffl.toml /var/lib/dpkg/info/ffl.conffiles || die "/etc/ffl/ffl.toml is not a conffile"
  cmp -s /etc/ffl/ffl.toml etc/ffl.toml || die "/etc/ffl/ffl.toml is not the package's as shipped"
  echo "admin-path: apt-get install over the demo, stdin closed: installed, /etc/ffl/ffl.toml the package's conffile" >&2
  make demo-stop
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ffl </dev/null
  [ ! -e /etc/ffl ] || die "/etc/ffl left after demo-stop and purge: $(ls -A /etc/ffl | tr '\n' ' ')"
  [ "$(local_ffl)" = "$before" ] || die "under /usr/local: $(local_ffl | tr '\n' ' '), before: $(echo "$before" | tr '\n' ' ')"
  for p in /var/tmp/ffl-slurm/ffl.toml /var/tmp/ffl-slurm/hooks /var/tmp/ffl-slurm/demo.installed; do
    [ ! -e "$p" ] || die "$p left after demo-stop"
  done
  [ ! -e /var/log/admin-path-sudo ] || die "something called sudo: $(cat /var/log/admin-path-sudo)"
  echo "admin-path: PASS: demo, package over it, demo-stop, purge: nothing left in /etc/ffl or /usr/local, sudo never called" >&2
  exit 0
fi

if [ "${1:-}" = --init ]; then
  # PID 1 of the new namespaces: build the copy and run --inner in it.
  DEB=$2 B=$3
  mount -t tmpfs -o size=8g tmpfs "$B"
  mkdir -p "$B/upper" "$B/work" "$B/root"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$B/upper,workdir=$B/work" "$B/root"
  R=$B/root
  mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
  mount --rbind /sys "$R/sys"
  mount --rbind /dev "$R/dev"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
  mount -t tmpfs -o mode=0755,nosuid,nodev,size=512m tmpfs "$R/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
  mkdir -m 1777 "$R/tmp/.X11-unix"
  hostname ffl-admin-path
  printf '127.0.0.1 localhost ffl-admin-path\n::1 localhost\n' >"$R/etc/hosts"
  echo ffl-admin-path >"$R/etc/hostname"
  ip link set lo up
  ip link add fflap0 type veth peer name fflap1
  ip addr add 10.254.77.1/24 dev fflap0
  ip link set fflap0 up
  ip link set fflap1 up
  printf '#!/bin/sh\necho "sudo $*" >>/var/log/admin-path-sudo\nexit 1\n' >"$R/usr/bin/sudo"
  chmod 0755 "$R/usr/bin/sudo"
  rm -f "$R/var/log/admin-path-sudo"
  chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb /bin/bash "$ROOT/tests/deb/admin-path.sh" --inner "$DEB" &
  cmd=$!
  rc=0
  wait "$cmd" || rc=$?
  exit "$rc"
fi

[ $# -eq 1 ] && [ -f "$1" ] || die "usage: $0 ffl_VERSION_amd64.deb"
DEB=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
B=$(mktemp -d /var/tmp/ffl-admin-path.XXXXXX) # the copy's mount point (empty on the host)
rc=0
unshare --net --mount --uts --ipc --pid --fork --propagation private -- \
  "$ROOT/tests/deb/admin-path.sh" --init "$DEB" "$B" || rc=$?
rmdir "$B"
exit "$rc"
