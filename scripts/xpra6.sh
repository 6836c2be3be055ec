#!/bin/bash
# xpra6.sh: build xpra 6.5 from PyPI's source release into a venv, for `make e2e-xpra6` (root,
# Debian 12). xpra.org's 6.x packages are not in Debian; sites on EL8-10 run them. Prints the
# path of the built xpra on its last line. Idempotent: an existing build of the same version is
# reused.
#   XPRA6_DIR   where the build goes (default /var/cache/ffl/xpra-6.5.5)
# Build dependencies (Debian packages, installed here, not by deps.sh: only this target needs
# them): gcc pkgconf python3-dev python3-venv, the X11 headers the server's Cython modules link
# (libx11 libxcomposite libxdamage libxtst libxkbfile libxres libxrandr libxfixes), libxxhash-dev,
# libgtk-3-dev python-gi-dev python3-cairo-dev (the seamless server uses GTK 3), liblz4-dev.
# Only the server side is built: no client, codecs beyond pillow and argb, audio, OpenGL,
# NVIDIA, proxy or shadow server (see the flags below). The venv sees the system's Python
# packages (PyGObject, cairo, PIL from Debian). Cython comes from PyPI (Debian's 0.29 is too old
# for 6.5).
set -euo pipefail
VERSION=6.5.5
SHA256=58cf04107d5682f202987fe5c0f7d8af1c6e183304a8bd0887a34f3b55fa1c81
CYTHON=3.3.1
DIR=${XPRA6_DIR:-/var/cache/ffl/xpra-$VERSION}
XPRA=$DIR/venv/bin/xpra

if [ -x "$XPRA" ] && "$XPRA" --version 2>/dev/null | grep -q "^xpra v$VERSION"; then
  echo "$XPRA"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "xpra6.sh: run as root (apt-get)" >&2; exit 2; }
PKGS=(gcc pkgconf python3-dev python3-venv libx11-dev libxcomposite-dev libxdamage-dev libxtst-dev libxkbfile-dev
  libxres-dev libxrandr-dev libxfixes-dev libxxhash-dev libgtk-3-dev python-gi-dev python3-cairo-dev liblz4-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "xpra6.sh: installing ${missing[*]}" >&2
  nice -n 19 apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >&2
fi
mkdir -p "$DIR"
cd "$DIR"
rm -rf "xpra-$VERSION" venv
/usr/bin/python3 -m venv --system-site-packages venv
if ! echo "$SHA256  xpra-$VERSION.tar.gz" | sha256sum -c --quiet >/dev/null 2>&1; then
  # The source release by name from PyPI, pinned by its hash (pip checks it).
  echo "xpra==$VERSION --hash=sha256:$SHA256" >req.txt
  nice -n 19 venv/bin/pip download -q --no-deps --no-binary :all: -r req.txt -d . >&2
  echo "$SHA256  xpra-$VERSION.tar.gz" | sha256sum -c --quiet
fi
tar xzf "xpra-$VERSION.tar.gz"
nice -n 19 venv/bin/pip install -q "cython==$CYTHON" >&2
W=""
for f in amf amf_encoder avif avif_decoder avif_encoder csc_libyuv enc_x264 gstreamer gstreamer_audio gstreamer_video \
  mf_decoder openh264 openh264_decoder openh264_encoder qrencode vpx vpx_encoder vpx_decoder webp webp_encoder webp_decoder \
  jpeg_encoder jpeg_decoder pam peercred cityhash brotli nvidia nvenc nvdec nvfbc nvjpeg_encoder nvjpeg_decoder cuda_kernels \
  cuda_rebuild client shadow netdev vsock sd_listen proc service evdi drm v4l2 uinput webcam proxy quic ssh rfb audio opengl \
  mdns printing csc_cython pytorch docs pandoc_lua example wireshark ism_ext notifications wayland_client remote_encoder; do
  W="$W --without-$f"
done
# --with-cython first: it is an alias that turns on every Cython module; the --without list
# then turns off what a server-only build cannot (or need not) build here.
export XPRA_EXTRA_BUILD_ARGS="--minimal --with-cython --with-cython_shared --with-server --with-x11 --with-gtk_x11 --with-gtk3 --with-cairo --with-rencodeplus --with-http --with-websockets --with-scripts --with-modules --with-data --with-keyboard --with-clipboard --with-xinput --with-lz4 --with-argb --with-argb_encoder --with-pillow --with-pillow_encoder --with-pillow_decoder$W"
PATH="$DIR/venv/bin:/usr/bin:/bin:/usr/sbin:/sbin" nice -n 19 venv/bin/pip install --no-build-isolation --no-deps "./xpra-$VERSION" >&2
chmod -R go+rX "$DIR"
"$XPRA" --version >&2
echo "$XPRA"
