#!/bin/bash
# demo.sh [stop]
#
# The README's "one command" (`make demo` = deps + build + this script), as root on a fresh
# Debian 12:
#   1. installs bin/ffl-launch into /usr/local/bin and bin/ffl-epilog, bin/ffl-prolog into
#      /usr/local/sbin (recording which of these files it created, for `demo.sh stop`); writes
#      the demo's own configuration, CONFDIR/ffl.toml from etc/ffl.toml with the Epilog's log
#      file set (so that its summary line can be shown: slurmd discards its output), and the
#      demo's Prolog and Epilog, CONFDIR/hooks/ffl-{prolog,epilog}, which run the installed ones
#      with --config CONFDIR/ffl.toml. Nothing goes to /etc/ffl: /etc/ffl/ffl.toml is the Debian
#      package's conffile, and a file the package does not own there would stop its install at
#      dpkg's conffile prompt (a non-interactive install would fail). The launcher in the job
#      reads /etc/ffl/ffl.toml when there is one, else the defaults, which the demo's file keeps;
#   2. creates the demo user ffluser1 (tests/slurm/users.sh);
#   3. starts a local single-node Slurm from /var/tmp/ffl-slurm with ffl-prolog and ffl-epilog
#      as its Prolog and Epilog (tests/slurm/start-local-slurm.sh);
#   4. submits contrib/sbatch/firefox.sbatch as ffluser1 from its home, waits until the session
#      is ready and prints the connection info from the job's log;
#   5. opens the session as the demo user in headless chromium (internal/cmd/ffl-screenshot),
#      waits until Firefox's page (one distinctive colour) is painted in the HTML5 client, and
#      saves the screenshot as ./demo-firefox.png; fails if the browser sees anything else.
# Run it again and it submits a new job with a log of its own, also after `make demo-stop`.
#
# `make demo-stop` (= demo.sh stop) cancels the demo job, waits for it to leave the queue,
# shows the Epilog's summary line and that nothing of the job is left (processes, directories,
# port), stops the local Slurm and removes what step 1 created: the files under /usr/local the
# demo installed where there was none (one that was there before, say from `make install`, was
# replaced and stays), the demo's configuration and hooks. The demo user and its home stay.
#
# Environment: DEMO_USER [ffluser1], SLURM_CONFDIR [/var/tmp/ffl-slurm],
#              DEMO_PNG [./demo-firefox.png], DEMO_READY_TIMEOUT seconds [180].
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
DEMO_USER=${DEMO_USER:-ffluser1}
CONFDIR=${SLURM_CONFDIR:-/var/tmp/ffl-slurm}
PNG=${DEMO_PNG:-$PWD/demo-firefox.png}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-180}
PREFIX=/usr/local
ETC=$CONFDIR/ffl.toml             # the demo's configuration (read by its Prolog and Epilog)
HOOKS=$CONFDIR/hooks              # the demo's Prolog and Epilog: the installed ones with --config $ETC
STATE=$CONFDIR/demo.env           # root-owned CONFDIR: what `demo.sh stop` needs
INSTALLED=$CONFDIR/demo.installed # the files under $PREFIX the demo created, one a line
PAGE_COLOR=3a9d23      # the demo page's colour, which the last step looks for
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export SLURM_CONF=$CONFDIR/slurm.conf

say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }
die() { echo "demo: ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (make demo in a root shell, or sudo make demo)"

# in_queue JOB: squeue still lists it (a job stays COMPLETING until its Epilog is done).
in_queue() { [ -n "$(squeue -h -j "$1" -o %T 2>/dev/null)" ]; }

# epilog_log: the Epilog's log file from the [epilog] section of the demo's ffl.toml ("" = none).
epilog_log() {
  [ -r "$ETC" ] || return 0
  awk '/^\[/{sec=$0} sec=="[epilog]" && /^[ \t]*log_file[ \t]*=/{sub(/^[^=]*=[ \t]*"/,""); sub(/".*$/,""); print; exit}' "$ETC"
}

# runtime_dir: runtime_dir from the demo's ffl.toml (a top-level key), else the default.
runtime_dir() {
  local d=""
  [ -r "$ETC" ] && d=$(awk '/^\[/{exit} /^[ \t]*runtime_dir[ \t]*=/{sub(/^[^=]*=[ \t]*"/,""); sub(/".*$/,""); print; exit}' "$ETC")
  echo "${d:-/run/ffl}"
}

# job_procs JOB UID: PIDs of uid whose environment carries the job's session marker.
job_procs() {
  local p
  for p in $(pgrep -u "$2" 2>/dev/null || true); do
    if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -q "^FFL_SESSION=$1/"; then echo "$p"; fi
  done
}

stop_demo() {
  if [ ! -s "$STATE" ]; then
    say "no demo job recorded in $STATE"
  else
    # shellcheck source=/dev/null
    . "$STATE"
    if in_queue "$DEMO_JOB"; then
      say "scancel $DEMO_JOB"
      scancel "$DEMO_JOB" || true
      for _ in $(seq 1 600); do in_queue "$DEMO_JOB" || break; sleep 0.1; done
      in_queue "$DEMO_JOB" && die "job $DEMO_JOB still in the queue after 60 s: squeue -j $DEMO_JOB"
    fi
    say "job $DEMO_JOB: $(scontrol show job -o "$DEMO_JOB" 2>/dev/null | grep -o 'JobState=[A-Z_]*' || echo 'ended')"
    log=$(epilog_log)
    if [ -n "$log" ] && [ -r "$log" ]; then
      line=$(grep -F "job=$DEMO_JOB " "$log" | grep 'msg="epilog done' | tail -n 1 || true)
      say "the Epilog's summary ($log):"
      echo "  ${line:-(none found for job $DEMO_JOB)}"
    else
      say "the Epilog logs to syslog only (set [epilog] log_file in $ETC for a file)"
    fi
    say "what is left of job $DEMO_JOB:"
    left=0
    procs=$(job_procs "$DEMO_JOB" "$DEMO_UID")
    if [ -n "$procs" ]; then
      left=1
      # shellcheck disable=SC2086
      echo "  processes: $(ps -o pid=,comm= -p $procs | tr '\n' ' ')"
    else
      echo "  processes with FFL_SESSION=$DEMO_JOB/...: none"
    fi
    for d in "$DEMO_HOME_JOB" "$DEMO_RUNTIME_JOB" "/tmp/ffl-$DEMO_UID/job-$DEMO_JOB"; do
      if [ -e "$d" ] || [ -L "$d" ]; then
        left=1
        echo "  $d: STILL THERE"
      else
        echo "  $d: gone"
      fi
    done
    if [ -n "${DEMO_PORT:-}" ]; then
      if (exec 3<>"/dev/tcp/127.0.0.1/$DEMO_PORT") 2>/dev/null; then
        left=1
        echo "  port $DEMO_PORT: STILL LISTENING"
      else
        echo "  port $DEMO_PORT: free"
      fi
    fi
    if [ "$left" = 0 ]; then say "nothing left behind"; else say "something was left behind (see above)"; fi
    rm -f "$STATE"
  fi
  "$ROOT/tests/slurm/stop-local-slurm.sh" "$CONFDIR"
  say "local Slurm stopped"
  uninstall
}

# uninstall removes what the install step created: the files it installed where there was none
# (listed in $INSTALLED), the directories under $PREFIX it leaves empty, its configuration and
# its hooks.
uninstall() {
  local f d n=0
  if [ -s "$INSTALLED" ]; then
    while IFS= read -r f; do
      case $f in "$PREFIX"/*) ;; *) continue ;; esac # only what the install step wrote
      if [ -f "$f" ] && [ ! -L "$f" ]; then rm -f "$f" && n=$((n + 1)); fi
      d=$(dirname "$f")
      rmdir "$d" 2>/dev/null || true # share/ffl when it is empty now
    done <"$INSTALLED"
  fi
  rm -f "$INSTALLED" "$ETC" "$HOOKS/ffl-prolog" "$HOOKS/ffl-epilog"
  rmdir "$HOOKS" 2>/dev/null || true
  say "removed the $n files the demo installed under $PREFIX, its configuration and hooks"
}

if [ "${1:-}" = stop ]; then
  stop_demo
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [stop]"

# ---------------------------------------------------------------- 1. install
for b in ffl-launch ffl-epilog ffl-prolog; do
  [ -x "$ROOT/bin/$b" ] || die "$ROOT/bin/$b missing: run 'make build' first (make demo does)"
done
# install_new MODE SRC DST: install like install(1), and note DST in $INSTALLED when the demo
# created it (`demo.sh stop` removes those; a file that was there before stays).
install_new() {
  if [ ! -e "$3" ] && ! grep -qxF "$3" "$INSTALLED" 2>/dev/null; then echo "$3" >>"$INSTALLED"; fi
  install -D -m"$1" "$2" "$3"
}
mkdir -p "$CONFDIR"
chmod 0755 "$CONFDIR"
install_new 0755 "$ROOT/bin/ffl-launch" "$PREFIX/bin/ffl-launch"
install_new 0755 "$ROOT/bin/ffl-epilog" "$PREFIX/sbin/ffl-epilog"
install_new 0755 "$ROOT/bin/ffl-prolog" "$PREFIX/sbin/ffl-prolog"
install_new 0644 "$ROOT/contrib/sbatch/firefox.sbatch" "$PREFIX/share/ffl/firefox.sbatch"
say "installed $PREFIX/bin/ffl-launch, $PREFIX/sbin/ffl-epilog, $PREFIX/sbin/ffl-prolog"
# The example with every key commented out (the defaults), except the Epilog's log file.
sed -e 's|^#\[epilog\]$|[epilog]|' -e 's|^#log_file = ""$|log_file = "/var/log/ffl-epilog.log"|' \
  "$ROOT/etc/ffl.toml" >"$ETC.tmp"
{ grep -qx '\[epilog\]' "$ETC.tmp" && grep -q '^log_file = ' "$ETC.tmp"; } ||
  die "etc/ffl.toml changed: cannot set [epilog] log_file"
chmod 0644 "$ETC.tmp"
mv "$ETC.tmp" "$ETC"
# slurm.conf's Prolog= and Epilog= take a path and no arguments: two root-owned scripts give the
# hooks the demo's configuration (slurmd passes them no environment of ours).
mkdir -p "$HOOKS"
for h in ffl-prolog ffl-epilog; do
  printf '#!/bin/sh\n# The demo'"'"'s %s (scripts/demo.sh): the installed one with the demo'"'"'s configuration.\nexec %s --config %s "$@"\n' \
    "$h" "$PREFIX/sbin/$h" "$ETC" >"$HOOKS/$h.tmp"
  chmod 0755 "$HOOKS/$h.tmp"
  mv "$HOOKS/$h.tmp" "$HOOKS/$h"
done
say "wrote $ETC (defaults; Epilog log: /var/log/ffl-epilog.log) and the hooks in $HOOKS that use it"

# ---------------------------------------------------------------- 2. user
read -r _ DEMO_UID _ DEMO_HOMEDIR < <("$ROOT/tests/slurm/users.sh" "$DEMO_USER" | tail -n 1)
say "demo user $DEMO_USER (uid $DEMO_UID, home $DEMO_HOMEDIR)"

# ---------------------------------------------------------------- 3. Slurm
SLURM_PROLOG=$HOOKS/ffl-prolog SLURM_EPILOG=$HOOKS/ffl-epilog SLURM_KILLWAIT=${SLURM_KILLWAIT:-10} \
  "$ROOT/tests/slurm/start-local-slurm.sh" "$CONFDIR" >/dev/null
NODE=$(hostname -s)
say "local Slurm up: node $NODE $(sinfo -h -N -o %T | head -n 1), Prolog/Epilog = ffl-prolog/ffl-epilog (with $ETC)"

# ---------------------------------------------------------------- 4. the job
if [ -s "$STATE" ]; then
  # shellcheck source=/dev/null
  . "$STATE"
  if in_queue "$DEMO_JOB"; then
    say "the demo job $DEMO_JOB is still running; showing it (make demo-stop ends it)"
  else
    rm -f "$STATE"
  fi
fi
if [ ! -s "$STATE" ]; then
  install -o "$DEMO_USER" -g "$(id -g "$DEMO_USER")" -m0644 "$ROOT/contrib/sbatch/firefox.sbatch" "$DEMO_HOMEDIR/firefox.sbatch"
  # The page Firefox opens: one distinctive colour, so the last step can check that the browser
  # really shows it (painted pixels, not a window title).
  PAGE=$DEMO_HOMEDIR/ffl-demo-page.html
  printf '<!DOCTYPE html><html><head><title>ffl demo</title></head><body style="background:#%s;margin:0;font:32px sans-serif;color:#fff"><p style="padding:1em">Firefox in a Slurm job, via ffl</p></body></html>\n' "$PAGE_COLOR" >"$PAGE"
  chown "$DEMO_USER:" "$PAGE"
  # A log name of its own: a local Slurm restarted from scratch counts job IDs from 1 again, and
  # the demo must never read an earlier run's log.
  RUN=$(date +%Y%m%d-%H%M%S)
  DEMO_JOB=$(runuser -l "$DEMO_USER" -c "cd && SLURM_CONF=$SLURM_CONF sbatch --parsable --output=firefox-%j-$RUN.log firefox.sbatch --url file://$PAGE" | cut -d';' -f1)
  [[ $DEMO_JOB =~ ^[0-9]+$ ]] || die "sbatch printed '$DEMO_JOB'"
  DEMO_LOG=$DEMO_HOMEDIR/firefox-$DEMO_JOB-$RUN.log
  say "submitted as $DEMO_USER: cd ~ && sbatch firefox.sbatch --url file://$PAGE  ->  job $DEMO_JOB"
fi
LOG=$DEMO_LOG
t0=$(date +%s)
until grep -q 'Firefox session ready' "$LOG" 2>/dev/null; do
  if ! in_queue "$DEMO_JOB"; then
    cat "$LOG" >&2 2>/dev/null || true
    die "job $DEMO_JOB ended before a session was ready (log above)"
  fi
  [ $(($(date +%s) - t0)) -lt "$READY_TIMEOUT" ] || { cat "$LOG" >&2 || true; die "no session after ${READY_TIMEOUT}s"; }
  sleep 0.2
done
URL=$(sed -n 's/^ *on the node: *//p' "$LOG" | head -n 1)
PORT=$(sed -n 's/.*Firefox session ready: node [^,]*, port \([0-9]*\),.*/\1/p' "$LOG" | head -n 1)
{ [ -n "$URL" ] && [ -n "$PORT" ]; } || die "cannot read the connection info from $LOG"
cat >"$STATE" <<STATE_EOF
DEMO_JOB=$DEMO_JOB
DEMO_UID=$DEMO_UID
DEMO_PORT=$PORT
DEMO_LOG=$LOG
DEMO_HOME_JOB=$DEMO_HOMEDIR/.firefox-launcher/sessions/$NODE/job-$DEMO_JOB
DEMO_RUNTIME_JOB=$(runtime_dir)/job-$DEMO_JOB
STATE_EOF
say "session ready (Firefox visible) after $(($(date +%s) - t0)) s; the job's log ($LOG) says:"
sed -n '/Firefox session ready/,/stop it:/p' "$LOG" | sed 's/^/    /'

# ---------------------------------------------------------------- 5. what the user sees
# The session admits only its user: chromium runs as $DEMO_USER, from a directory it can read.
go build -o "$CONFDIR/ffl-screenshot" "$ROOT/internal/cmd/ffl-screenshot"
chmod 0755 "$CONFDIR/ffl-screenshot"
SHOT=$DEMO_HOMEDIR/demo-firefox.png
rm -f "$SHOT"
say "opening the HTML5 client as $DEMO_USER in headless chromium, waiting for Firefox's page..."
if seen=$(runuser -u "$DEMO_USER" -- env -i PATH=/usr/bin:/bin HOME="$DEMO_HOMEDIR" TMPDIR="$DEMO_HOMEDIR" "$CONFDIR/ffl-screenshot" "$URL" "$SHOT" "$PAGE_COLOR"); then
  cp "$SHOT" "$PNG"
  if [ -n "${SUDO_UID:-}" ] && [ -n "${SUDO_GID:-}" ]; then chown "$SUDO_UID:$SUDO_GID" "$PNG" || true; fi
  say "$seen"
  say "screenshot: $PNG"
else
  if [ -s "$SHOT" ]; then cp "$SHOT" "$PNG"; fi
  die "the browser did not see Firefox's page (screenshot, if any: $PNG); the job's log: $LOG"
fi
cat >&2 <<EOF

  The session runs as job $DEMO_JOB of $DEMO_USER on $NODE, port $PORT.
  No password: only $DEMO_USER's own connections get in (other users get nothing).
  From another machine: ssh -N -L $PORT:127.0.0.1:$PORT <this host>, then http://localhost:$PORT/
  Stop it:   make demo-stop     (scancel, the Epilog's summary, nothing left, Slurm stopped, the demo uninstalled)
EOF
