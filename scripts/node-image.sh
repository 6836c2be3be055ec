#!/bin/bash
# node-image.sh SUITE: build (once) a Debian root filesystem with a newer Slurm for
# `make slurm-versions-test`, and print its path on the last line (root).
#
#   trixie  Slurm 24.11, firefox-esr, chromium; Debian trixie has no xpra, so xpra 6.5.5 is
#           built inside the image from PyPI's source release, pinned by sha256, with
#           scripts/xpra6.sh (into /opt/xpra-6.5.5; the sdist cached on the host is reused)
#   sid     Slurm 26.05, xpra 3.1.5 (Debian's, with its HTML5 client), firefox-esr, chromium
#
# The image is debootstrap's minbase plus PKGS below, in /var/cache/ffl/node-image/SUITE-HASH,
# HASH being the sha256 of the suite, the mirror, the package list and this script's recipe
# version: CI caches /var/cache/ffl and builds each image once; a changed list builds a new one
# (older ones of the same suite are removed). A half-built image never gets the final name (it
# is built under .tmp-* and renamed). Nothing in the image runs at build time but dpkg's
# maintainer scripts (a policy-rc.d forbids starting services). tests/slurm/image-run.sh runs
# the image's slurmctld, slurmd and munged in namespaces of their own.
#   NODE_IMAGE_DIR    where images live              [/var/cache/ffl/node-image]
#   NODE_IMAGE_MIRROR the Debian mirror              [http://deb.debian.org/debian]
set -euo pipefail
SUITE=${1:-}
RECIPE=1 # bump when the build steps below change in a way the package list does not show
MIRROR=${NODE_IMAGE_MIRROR:-http://deb.debian.org/debian}
TOP=${NODE_IMAGE_DIR:-/var/cache/ffl/node-image}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
die() { echo "node-image.sh: $*" >&2; exit 2; }
log() { echo "node-image.sh[$SUITE]: $*" >&2; }

# What a node needs: the session (firefox-esr, Xvfb, xauth, xmessage, what xpra draws with),
# Slurm and munge, the test's tools (curl, ps, ip, runuser, chromium for the HTML5 client).
COMMON=(slurm-wlm munge firefox-esr xvfb xauth x11-utils python3 python3-pil python3-lz4 curl procps
  ca-certificates iproute2 util-linux passwd chromium)
case $SUITE in
  sid) PKGS=("${COMMON[@]}" xpra) ;;
  # xpra 6's runtime (what Debian's xpra package depends on that a server-only build uses) and
  # scripts/xpra6.sh's build dependencies, installed here so that the hash covers them
  # (python3-setuptools: trixie's venv no longer brings it, and xpra6.sh builds without
  # isolation, against the system's packages).
  trixie) PKGS=("${COMMON[@]}" python3-gi python3-gi-cairo gir1.2-gtk-3.0 python3-cairo x11-xserver-utils
    gcc pkgconf python3-dev python3-venv python3-setuptools libx11-dev libxcomposite-dev libxdamage-dev libxtst-dev libxkbfile-dev
    libxres-dev libxrandr-dev libxfixes-dev libxxhash-dev libgtk-3-dev python-gi-dev python3-cairo-dev liblz4-dev) ;;
  *) die "usage: $0 trixie|sid (the Debian suite of the image)" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/deps.sh as root"

XPRA6_SUM=$(sed -n 's/^SHA256=//p' "$HERE/xpra6.sh")
HASH=$( {
  echo "$SUITE $MIRROR recipe=$RECIPE"
  printf '%s\n' "${PKGS[@]}" | sort
  if [ "$SUITE" = trixie ]; then echo "xpra6 $XPRA6_SUM" && cat "$HERE/xpra6.sh"; fi
} | sha256sum | cut -c1-16)
IMG=$TOP/$SUITE-$HASH
if [ -f "$IMG/.ffl-image-complete" ]; then
  echo "$IMG"
  exit 0
fi
mkdir -p "$TOP"
exec 8>"$TOP/.lock-$SUITE"
flock 8 # two builds of the same image wait for each other
if [ -f "$IMG/.ffl-image-complete" ]; then
  echo "$IMG"
  exit 0
fi
T0=$(date +%s)
TMP=$TOP/.tmp-$SUITE-$HASH
# A build interrupted earlier: its mounts first, then the directory.
for m in proc dev/pts dev; do mountpoint -q "$TMP/$m" 2>/dev/null && umount -l "$TMP/$m"; done
rm -rf --one-file-system "$TMP"
mkdir -p "$TMP"
cleanup() {
  for m in proc dev/pts dev; do mountpoint -q "$TMP/$m" 2>/dev/null && umount -l "$TMP/$m"; done
  return 0
}
trap cleanup EXIT

log "debootstrap $SUITE from $MIRROR into $TMP"
nice -n 10 debootstrap --variant=minbase "$SUITE" "$TMP" "$MIRROR" >"$TOP/.build-$SUITE.log" 2>&1 ||
  { tail -20 "$TOP/.build-$SUITE.log" >&2; die "debootstrap $SUITE failed (log above)"; }
log "debootstrap done after $(($(date +%s) - T0)) s"

mount -t proc proc "$TMP/proc"
mount --bind /dev "$TMP/dev"
mount --bind /dev/pts "$TMP/dev/pts"
printf '#!/bin/sh\nexit 101\n' >"$TMP/usr/sbin/policy-rc.d"
chmod 0755 "$TMP/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$TMP/etc/resolv.conf"
in_image() { chroot "$TMP" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
# The archive these machines reach may be a snapshot whose sid Release file has expired.
echo 'Acquire::Check-Valid-Until "false";' >"$TMP/etc/apt/apt.conf.d/99ffl-node-image"
in_image apt-get update -q >>"$TOP/.build-$SUITE.log" 2>&1
log "installing ${#PKGS[@]} packages"
nice -n 10 chroot "$TMP" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
  apt-get install -y -q --no-install-recommends "${PKGS[@]}" >>"$TOP/.build-$SUITE.log" 2>&1 ||
  { tail -30 "$TOP/.build-$SUITE.log" >&2; die "apt-get install in the $SUITE image failed (log above)"; }
if [ "$SUITE" = trixie ]; then
  log "building xpra 6.5.5 in the image (scripts/xpra6.sh)"
  mkdir -p "$TMP/opt/xpra-6.5.5"
  cp "$HERE/xpra6.sh" "$TMP/opt/xpra6.sh"
  # The sdist pinned by xpra6.sh's sha256: the host's copy when it has one (xpra6.sh checks
  # the hash before using it), else xpra6.sh downloads it from PyPI.
  if [ -f /var/cache/ffl/xpra-6.5.5/xpra-6.5.5.tar.gz ]; then
    cp /var/cache/ffl/xpra-6.5.5/xpra-6.5.5.tar.gz "$TMP/opt/xpra-6.5.5/"
  fi
  # pip (Cython from PyPI) trusts what the host trusts: a site's TLS proxy has its own CA.
  cp /etc/ssl/certs/ca-certificates.crt "$TMP/opt/host-ca.crt"
  in_image env XPRA6_DIR=/opt/xpra-6.5.5 PIP_CERT=/opt/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 bash /opt/xpra6.sh >>"$TOP/.build-$SUITE.log" 2>&1 ||
    { tail -30 "$TOP/.build-$SUITE.log" >&2; die "xpra 6.5.5 build in the trixie image failed (log above)"; }
  rm -rf "$TMP/opt/xpra-6.5.5/xpra-6.5.5" "$TMP/root/.cache" "$TMP/opt/host-ca.crt"
fi
in_image apt-get clean
rm -f "$TMP/usr/sbin/policy-rc.d"
cleanup
# The Slurm the image runs, for the log of every suite run on it.
chroot "$TMP" dpkg-query -W -f='${Version}\n' slurmd >"$TMP/.ffl-slurm-version"
touch "$TMP/.ffl-image-complete"
for old in "$TOP/$SUITE"-*; do
  [ "$old" = "$IMG" ] || [ ! -d "$old" ] || rm -rf --one-file-system "$old"
done
mv "$TMP" "$IMG"
log "image $IMG (slurmd $(cat "$IMG/.ffl-slurm-version")) built in $(($(date +%s) - T0)) s"
echo "$IMG"
