#!/bin/bash
# deb-test.sh FFL_DEB: the Debian package on this machine, as root (make deb-test; CI):
#   1. installs it with dpkg -i (apt-get install ./FFL_DEB when dependencies are missing);
#   2. checks what it installed: the binaries answer, the man pages and the completion are
#      found, /etc/ffl/ffl.toml is a conffile, ffl-sweep.timer is enabled by the maintainer
#      scripts;
#   3. runs real Slurm scenarios of tests/slurm against the installed binaries, Prolog and
#      Epilog (FFL_INSTALLED=1): the node doctor, scancel, SIGKILL (the Epilog cleans up);
#   4. purges it and shows that nothing is left: none of its files, no /etc/ffl, no unit
#      symlinks or deb-systemd-helper state, no file named *ffl* made since step 1 under /etc,
#      /usr, /lib, /var/lib, /opt.
# Hold /run/ffl-slurm-suite.lock while it runs (make deb-test does). It purges the package
# whatever happens. Prints what each step took.
# Environment: DEB_TEST_SCENARIOS (a go test -run pattern of TestScenarios' subtests)
#              [^(00_node_doctor|02_scancel|04_sigkill)$], SLURM_CONFDIR [/var/tmp/ffl-slurm].
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
export PATH="/usr/local/go/bin:$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive
SCENARIOS=${DEB_TEST_SCENARIOS:-'^(00_node_doctor|02_scancel|04_sigkill)$'}
say() { echo "deb-test: $*" >&2; }
die() { echo "deb-test: FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f s", b-a}'; }

[ $# -eq 1 ] && [ -f "$1" ] || die "usage: $0 ffl_VERSION_amd64.deb"
[ "$(id -u)" = 0 ] || die "must run as root"
DEB=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
VERSION=$(dpkg-deb -f "$DEB" Version)
if dpkg-query -W -f='${db:Status-Status}' ffl 2>/dev/null | grep -qv '^not-installed$'; then
  die "package ffl is already on this machine ($(dpkg-query -W -f='${Version} ${db:Status-Abbrev}' ffl)): purge it first (dpkg --purge ffl)"
fi

# One Slurm cluster at a time (and its tests own /etc/ffl/ffl.toml while it runs): wait for a
# cluster someone else runs to stop rather than colliding with it.
slurm_pids() { pgrep -x slurmctld; pgrep -x slurmd; }
for _ in $(seq 1 600); do
  [ -n "$(slurm_pids)" ] || break
  sleep 1
done
[ -z "$(slurm_pids)" ] || die "a Slurm cluster still runs (pids $(slurm_pids | tr '\n' ' ')) after 10 min"

# Paths that must be gone after the purge (as they were before the install).
mapfile -t FILES < <(dpkg-deb -c "$DEB" | awk '{print substr($6, 2)}' | grep -v '/$')
EXTRA=(/etc/ffl /etc/systemd/system/timers.target.wants/ffl-sweep.timer
  /var/lib/systemd/deb-systemd-helper-enabled/ffl-sweep.timer.dsh-also
  /var/lib/systemd/deb-systemd-helper-enabled/timers.target.wants/ffl-sweep.timer
  /var/lib/systemd/deb-systemd-helper-masked/ffl-sweep.timer
  /var/lib/prometheus/node-exporter/ffl.prom /var/lib/ffl/seen /run/ffl)
declare -A BEFORE
for p in "${FILES[@]}" "${EXTRA[@]}"; do
  if [ -e "$p" ] || [ -L "$p" ]; then BEFORE[$p]=1; fi
done
WORK=$(mktemp -d /var/tmp/ffl-deb-test.XXXXXX)
STAMP=$WORK/stamp
touch "$STAMP"
# An /etc/ffl/ffl.toml that is no package's (the demo's, a test's) waits outside /etc for the
# duration: the package brings its own conffile, and the purge must be shown to remove it.
conf_saved=0
restore_conf() {
  if [ "$conf_saved" = 1 ]; then
    mkdir -p /etc/ffl
    mv "$WORK/ffl.toml" /etc/ffl/ffl.toml
    conf_saved=0
  fi
}
if [ -e /etc/ffl/ffl.toml ]; then
  mv /etc/ffl/ffl.toml "$WORK/ffl.toml"
  conf_saved=1
  say "kept the existing /etc/ffl/ffl.toml aside (put back at the end)"
fi
for p in "${FILES[@]}"; do
  [ -z "${BEFORE[$p]:-}" ] || [ "$p" = /etc/ffl/ffl.toml ] ||
    die "$p exists before the install (a source install? make install writes /usr/local only)"
done
unset 'BEFORE[/etc/ffl/ffl.toml]'

purged=0
purge() {
  [ "$purged" = 0 ] || return 0
  purged=1
  local t
  t=$(now)
  dpkg --purge ffl >/dev/null
  say "dpkg --purge ffl: $(took "$t")"
}
trap 'rc=$?; purge || rc=1; restore_conf || rc=1; rm -rf "$WORK"; exit $rc' EXIT


# ------------------------------------------------------------ 1. install
t=$(now)
# Stdin closed: a prompt (dpkg's conffile question) fails the install instead of waiting.
if ! dpkg -i "$DEB" </dev/null >/tmp/ffl-deb-test-dpkg.log 2>&1; then
  say "dpkg -i: dependencies missing; apt-get install ./$(basename "$DEB")"
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$DEB" </dev/null >&2
fi
dpkg-query -W -f='${db:Status-Abbrev}' ffl | grep -q '^ii' || die "ffl is not installed after dpkg -i / apt-get install"
say "installed $(basename "$DEB"): $(took "$t")"

# ------------------------------------------------------------ 2. what it installed
for b in /usr/bin/ffl-launch /usr/sbin/ffl-epilog /usr/sbin/ffl-prolog; do
  v=$("$b" --version) || die "$b --version failed"
  [[ $v == *"$VERSION"* ]] || die "$b --version says '$v', want $VERSION"
done
for page in ffl-launch.1 ffl.toml.5 ffl-epilog.8 ffl-prolog.8; do
  f=$(man -w "${page##*.}" "${page%.*}" 2>/dev/null) ||
    die "man ${page##*.} ${page%.*}: not found"
  [[ $f == /usr/share/man/* ]] || die "man ${page%.*} is $f, not the package's"
  out=$(MANWIDTH=80 man --warnings "${page##*.}" "${page%.*}" 2>&1 >/dev/null) || die "man ${page%.*}: $out"
  [ -z "$out" ] || die "man ${page%.*} warns: $out"
done
comp=$(bash -c 'source /usr/share/bash-completion/bash_completion; COMP_LINE="ffl-launch st"; COMP_POINT=13
  COMP_WORDS=(ffl-launch st); COMP_CWORD=1; _completion_loader ffl-launch; complete -p ffl-launch >/dev/null &&
  _ffl_launch; echo "${COMPREPLY[*]}"' 2>/dev/null)
[ "$comp" = "start stop" ] || die "bash completion of 'ffl-launch st' = '$comp', want 'start stop'"
grep -qx /etc/ffl/ffl.toml /var/lib/dpkg/info/ffl.conffiles || die "/etc/ffl/ffl.toml is not a conffile"
[ -L /etc/systemd/system/timers.target.wants/ffl-sweep.timer ] || die "ffl-sweep.timer is not enabled"
[ ! -e /etc/systemd/system/multi-user.target.wants/ffl-sweep.service ] || die "ffl-sweep.service itself was enabled"
grep -q '^ExecStart=/usr/sbin/ffl-epilog sweep$' /lib/systemd/system/ffl-sweep.service || die "the unit does not run /usr/sbin/ffl-epilog"
/usr/sbin/ffl-epilog sweep --dry-run --timeout 30s >/dev/null || die "ffl-epilog sweep --dry-run failed"
say "binaries ($VERSION), man pages, completion, conffile, enabled timer: ok"

# ------------------------------------------------------------ 3. real Slurm, installed binaries
t=$(now)
(cd "$ROOT" && FFL_E2E=1 FFL_INSTALLED=1 SLURM_CONFDIR=${SLURM_CONFDIR:-/var/tmp/ffl-slurm} \
  go test -count=1 -v -timeout 20m -run "TestScenarios/$SCENARIOS" ./tests/slurm/) >/tmp/ffl-deb-test-slurm.log 2>&1 ||
  { tail -60 /tmp/ffl-deb-test-slurm.log >&2; die "Slurm scenarios against the installed package (log: /tmp/ffl-deb-test-slurm.log)"; }
grep -E '^ *(---|ok|PASS)|scenario  |^ +[0-9]{2}_' /tmp/ffl-deb-test-slurm.log | grep -v '^=== ' | sed 's/^/  /' >&2 || true
grep -q -- '--- PASS: TestScenarios/' /tmp/ffl-deb-test-slurm.log || die "no scenario ran (pattern $SCENARIOS)"
say "Slurm scenarios $SCENARIOS against /usr/bin, /usr/sbin, /usr/share/ffl: passed in $(took "$t")"

# ------------------------------------------------------------ 4. purge: nothing left
purge
status=$(dpkg-query -W -f='${db:Status-Status}' ffl 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || die "ffl is '$status' after the purge"
[ ! -e /var/lib/dpkg/info/ffl.list ] || die "dpkg still lists files of ffl"
left=()
for p in "${FILES[@]}" "${EXTRA[@]}"; do
  if { [ -e "$p" ] || [ -L "$p" ]; } && [ -z "${BEFORE[$p]:-}" ]; then left+=("$p"); fi
done
while IFS= read -r p; do
  [ -n "${BEFORE[$p]:-}" ] || left+=("$p")
done < <(find /etc /usr /lib /var/lib /opt -xdev -newer "$STAMP" -iname '*ffl*' 2>/dev/null)
[ ${#left[@]} = 0 ] || die "left after the purge: ${left[*]}"
say "purged: none of the package's ${#FILES[@]} files, no /etc/ffl, no unit symlinks or state, nothing named *ffl* new under /etc /usr /lib /var/lib /opt"
say "PASS ($(basename "$DEB"))"
