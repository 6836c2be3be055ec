#!/bin/bash
# deb.sh build: build ffl_<version>_amd64.deb in the top of the source tree with debhelper
# (Debian's dpkg-buildpackage + dh, debian/), from a copy of the source tree under build/deb
# (so that dpkg-buildpackage's outputs next to the tree stay inside build/), then check it
# with lintian: an error fails the build, warnings and infos are printed.
#
# The version: a tag vX.Y.Z gives X.Y.Z; otherwise 0.0~gitYYYYMMDD.HASH from the last
# commit, with +dirty for uncommitted changes (~ sorts below any release). DEB_VERSION
# overrides it. Needs debhelper and lintian (make deps) and Go 1.26 in PATH.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
export PATH="/usr/local/go/bin:$PATH"
die() { echo "deb.sh: $*" >&2; exit 1; }
[ "${1:-}" = build ] || die "usage: $0 build"
for t in dpkg-buildpackage dh lintian go; do
  command -v "$t" >/dev/null || die "$t not found: run 'sudo make deps' (debhelper, lintian) and put Go 1.26 in PATH"
done

version() {
  local tag date hash dirty=""
  if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
    echo "${tag#v}"
    return
  fi
  date=$(git log -1 --format=%cd --date=format:%Y%m%d)
  hash=$(git log -1 --format=%h)
  git diff --quiet HEAD -- 2>/dev/null || dirty=+dirty
  echo "0.0~git$date.$hash$dirty"
}
DEB_VERSION=${DEB_VERSION:-$(version)}
[[ $DEB_VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "version '$DEB_VERSION' is not a Debian native version"

t0=$(date +%s.%N)
STAGE=build/deb/ffl-$DEB_VERSION
rm -rf build/deb
mkdir -p "$STAGE"
# The tracked and the new (not ignored) files, as they are in the work tree.
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || [ -L "$f" ] || continue # deleted in the work tree
  printf '%s\0' "$f"
done | tar --null --no-recursion -T - -cf - | tar -xf - -C "$STAGE"

# The changelog names the version dpkg builds (a native package: no Debian revision).
cat >"$STAGE/debian/changelog" <<CHANGELOG
ffl ($DEB_VERSION) unstable; urgency=medium

  * Built from commit $(git log -1 --format=%h)$([ -z "${DEB_VERSION##*+dirty}" ] && echo ' with uncommitted changes').

 -- $(sed -n 's/^Maintainer: //p' debian/control)  $(git log -1 --format=%cd --date=rfc2822)
CHANGELOG

(cd "$STAGE" && FFL_VERSION=$DEB_VERSION dpkg-buildpackage -b -us -uc --no-pre-clean) >build/deb/build.log 2>&1 ||
  { tail -40 build/deb/build.log >&2; die "dpkg-buildpackage failed (build/deb/build.log)"; }
DEB=ffl_${DEB_VERSION}_amd64.deb
rm -f ffl_*_amd64.deb
mv "build/deb/$DEB" .
t1=$(date +%s.%N)

# lintian exits non-zero on errors (its default --fail-on error).
lintian --info --display-info --fail-on error "$DEB" >build/deb/lintian.log 2>&1 && lint=0 || lint=$?
t2=$(date +%s.%N)
grep -E '^[EWIPXO]: ' build/deb/lintian.log | sed 's/^/lintian: /' >&2 || true
[ "$lint" = 0 ] || die "lintian reports errors for $DEB (above)"
awk -v deb="$DEB" -v size="$(stat -c %s "$DEB")" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
  -v e="$(grep -c '^E:' build/deb/lintian.log || true)" -v w="$(grep -c '^W:' build/deb/lintian.log || true)" \
  'BEGIN{printf "deb.sh: %s, %d bytes; built in %.1f s, lintian %.1f s: %d errors, %d warnings\n", deb, size, t1-t0, t2-t1, e, w}' >&2
