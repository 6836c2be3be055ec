#!/bin/bash
# deps.sh: install what ffl's build, demo and tests need on Debian 12 (as root). Idempotent:
# packages already present are not fetched again.
#   xpra firefox-esr xvfb   the session itself (xpra ships the HTML5 client)
#   x11-utils               xmessage: the end warning a session shows over Firefox (end_warning, SIGUSR1)
#   python3-pil python3-lz4 what xpra 3.1 needs to DRAW: Debian only recommends them, and
#                           --no-install-recommends skips recommends. Without python3-pil a
#                           session starts, then its HTML5 client is disconnected as soon as
#                           Firefox's window exists (ffl-launch refuses to start, exit 3);
#                           lz4 makes the HTML5 client faster
#   xauth                   xpra writes the Xvfb cookie with it
#   chromium                the real browser the tests drive on the HTML5 client
#   slurm-wlm munge         the local single-node cluster of the demo and the scenarios
#   iproute2 util-linux     ip netns, nsenter, unshare: the multi-node test cluster; ss
#   python3-venv            tests/jupyter makes a venv from Debian's python3 and installs its
#                           Python stack (JupyterHub, JupyterLab, batchspawner,
#                           jupyter-server-proxy, ...) into it from PyPI, pinned with hashes
#   node-configurable-http-proxy nodejs
#                           tests/jupyter: the hub's proxy (4.5.3, works with JupyterHub 4.1-6.1)
#   sudo                    batchspawner's exec_prefix, `sudo -E -u {username}`
#   debootstrap             make slurm-versions-test builds its Debian trixie and sid node
#                           images (Slurm 24.11, 26.05) with it (scripts/node-image.sh)
#   bash-completion         runs the generated completion scripts in their test
#   debhelper lintian       make deb builds the Debian package with them and checks it
set -euo pipefail
PKGS=(xpra python3-pil python3-lz4 firefox-esr xvfb xauth x11-utils chromium slurm-wlm munge curl procps ca-certificates python3 iproute2 util-linux
  python3-venv node-configurable-http-proxy nodejs sudo bash-completion debhelper lintian debootstrap)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "deps.sh: missing ${missing[*]}; run as root (sudo make deps)" >&2; exit 3; }
  echo "deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
fi
command -v go >/dev/null || { echo "deps.sh: Go 1.26 is needed (https://go.dev/dl) and not in PATH" >&2; exit 3; }
# Xvfb run by a user creates /tmp/.X11-unix as that user when it is missing.
if [ "$(id -u)" = 0 ] && [ ! -e /tmp/.X11-unix ]; then mkdir -m 1777 /tmp/.X11-unix; fi
echo "deps.sh: all present" >&2
