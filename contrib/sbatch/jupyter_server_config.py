# jupyter_server_config.py excerpt: a "Firefox" entry in JupyterLab's
# launcher (jupyter-server-proxy) that opens a Firefox session in the same
# Slurm job as the notebook server, through the ffl supervisor.
#
# Put this into a Jupyter config directory of the users' environment on the
# compute nodes (`jupyter --paths`, "config" section), next to an installed
# jupyter-server-proxy. The notebook server must run under `ffl-launch run --`
# (slurmspawner.sh.j2 next to this file does that).
#
# How it fits together
# --------------------
# `ffl-launch run -- jupyterhub-singleuser ...` is the job's srun task. It
# supervises the notebook server and serves a control API on a unix socket
# whose path it hands to its child in FFL_CONTROL_SOCKET. Everything the
# notebook server starts inherits that variable, including the command below,
# which jupyter-server-proxy runs the first time someone opens /firefox/:
#
#   ffl-launch start --port PORT --json
#       asks the supervisor for a session on 127.0.0.1:PORT (the port that
#       jupyter-server-proxy picked) and prints, once xpra answers,
#       {"port":PORT,"url":"http://127.0.0.1:PORT/","password_file":...,"node":...}
#
# The session belongs to the supervisor, not to this command: it ends when
# the job ends (scancel, culling, time limit) even if nothing else runs. The
# command stays alive while the session lives, so that
#   - stopping it (jupyter-server-proxy sends SIGTERM when the notebook
#     server shuts down) stops the session at once (`ffl-launch stop PORT`);
#   - when you quit Firefox (xpra then exits), it notices within 5 s through
#     `ffl-launch list --json` and exits 0. jupyter-server-proxy restarts a
#     command only after a non-zero exit, so no new 500 MiB browser appears
#     that nobody asked for. jupyter-server-proxy starts the command only
#     once per notebook server, so to get Firefox back at /firefox/, restart
#     your server (Hub Control Panel); or run `ffl-launch start` in a
#     JupyterLab terminal and open .../proxy/PORT/ (same password rule).
#
# Who can reach the session
# -------------------------
# - Through the proxy: jupyter-server-proxy serves .../user/NAME/firefox/
#   only to requests JupyterHub authenticated for this notebook server (its
#   owner, and whoever the hub grants access to the server).
# - Directly on the node: xpra listens on 127.0.0.1:PORT, which every local
#   user of a shared node can connect to, so the session requires the
#   password from its password file (mode 0600 under the owner's 0700 state
#   directory). The xpra HTML5 client asks for it when you open the page; get
#   it in a JupyterLab terminal with `cat PASSWORD_FILE` (`ffl-launch list`
#   shows the path; this command also prints it to the notebook server's
#   log). It is never put into a URL: URLs end up in browser history and in
#   proxy logs.
# - Starting and stopping sessions: only processes that can connect to the
#   control socket, which lives in a 0700 directory owned by the user, i.e.
#   the user's own processes in this job (and root).
import os
import random
import socket

c = get_config()  # noqa: F821 -- provided by Jupyter when it loads this file


def _ffl_port_range():
    """port_min/port_max from ffl's config ($FFL_CONFIG or /etc/ffl/ffl.toml; defaults 8001-8999).

    ffl-launch accepts only ports of that range (the site's choice, e.g. for firewalls), while
    jupyter-server-proxy would pick any free port; so the port is chosen here, from the range.
    """
    lo, hi = 8001, 8999
    path = os.environ.get("FFL_CONFIG", "/etc/ffl/ffl.toml")
    try:
        import tomllib  # Python 3.11+

        with open(path, "rb") as f:
            cfg = tomllib.load(f)
        lo, hi = int(cfg.get("port_min", lo)), int(cfg.get("port_max", hi))
    except (ImportError, OSError, ValueError):
        pass
    return lo, hi


def _pick_port():
    """A port of ffl's range that is free now (xpra's own bind decides in the end)."""
    lo, hi = _ffl_port_range()
    ports = list(range(lo, hi + 1))
    random.shuffle(ports)
    for port in ports[:200]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    return 0  # let jupyter-server-proxy choose; ffl-launch start then explains the range

# FFL_LAUNCH=/path/to/ffl-launch selects the binary when it is not on PATH.
_FFL_LAUNCH = os.environ.get("FFL_LAUNCH", "ffl-launch")

# Run by bash as: _SESSION_SCRIPT NAME FFL_LAUNCH PORT.
# jupyter-server-proxy passes every element of "command" through
# str.format() to fill in {port}, so this script must not contain a single
# brace: plain $var expansions, no ${...}, no functions, no brace groups.
# Exit codes of ffl-launch: 2 bad input, 3 prerequisite missing, 4 no
# supervisor -- retrying cannot help, so exit 0 (jupyter-server-proxy then
# reports the timeout); anything else is retried after a pause by exiting 1.
_SESSION_SCRIPT = r"""
set -u
ffl=$1
port=$2
info=$("$ffl" start --port "$port" --json)
rc=$?
case $rc in
0) ;;
2 | 3 | 4) echo "firefox: ffl-launch start failed with exit code $rc; not retrying" >&2; exit 0 ;;
*) echo "firefox: ffl-launch start failed with exit code $rc; retrying" >&2; sleep 2; exit 1 ;;
esac
echo "firefox: session ready: $info" >&2
sleeper=
trap 'test -n "$sleeper" && kill "$sleeper" 2>/dev/null; timeout 60 "$ffl" stop "$port" >/dev/null; exit 0' TERM INT HUP
while :; do
  sleep 5 &
  sleeper=$!
  wait "$sleeper"
  sessions=$("$ffl" list --json) || exit 0
  printf '%s\n' "$sessions" | grep -Eq "\"port\": ?$port([^0-9]|$)" || exit 0
done
"""

if "{" in _SESSION_SCRIPT or "}" in _SESSION_SCRIPT:
    raise ValueError("_SESSION_SCRIPT must not contain braces (jupyter-server-proxy formats it)")

c.ServerProxy.servers = {
    "firefox": {
        "command": ["/bin/bash", "-c", _SESSION_SCRIPT, "ffl-firefox", _FFL_LAUNCH, "{port}"],
        # Chosen from ffl's port range when this config is loaded (see _pick_port).
        "port": _pick_port(),
        # xpra answers 1.5-3 s after start; allow for a busy node.
        "timeout": 90,
        # xpra serves its HTML5 client at /, so strip the /firefox prefix.
        "absolute_url": False,
        # A tab of its own: full window size and keyboard shortcuts go to
        # Firefox, not to JupyterLab.
        "new_browser_tab": True,
        "launcher_entry": {
            # Without the supervisor there is nobody to ask for a session.
            "enabled": "FFL_CONTROL_SOCKET" in os.environ,
            "title": "Firefox",
        },
    },
}
