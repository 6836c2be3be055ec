# jupyter_server_config.py: a "Firefox" entry of jupyter-server-proxy (>= 4) that opens a
# Firefox session of the notebook server's own Slurm job at /user/NAME/firefox/.
#
# Put this file and firefox.svg (next to it) into a Jupyter config directory of the users'
# environment on the compute nodes (`jupyter --paths`, "config" section). The notebook server
# must run under `ffl-launch run --` (slurmspawner.sh.j2 does that): the ffl supervisor binds
# and holds a port for this entry before it starts the server, and exports it as FFL_PROXY_PORT.
# `ffl-launch proxy` asks the supervisor for a session behind that port, stays in the
# foreground while it lives, stops it on SIGTERM and exits 0 when Firefox is closed. The port
# admits only connections of the session's own user (the notebook server, through which
# JupyterHub lets only the server's owner in): no password, and no other user of the node gets
# in. A web page open in the user's browser cannot use the port directly either: the port
# relays only requests carrying the job's secret header, which this entry adds to every request
# it proxies (HTTP and WebSocket alike), read from the 0600 file the supervisor made in the
# job's private runtime directory ($FFL_PROXY_SECRET_FILE). Outside an ffl job (no
# FFL_PROXY_PORT) the entry is not defined at all.
import os

c = get_config()  # noqa: F821 -- provided by Jupyter when it loads this file


def _ffl_proxy_headers():
    """The secret header the supervisor's proxy port requires (none without a secret file)."""
    path = os.environ.get("FFL_PROXY_SECRET_FILE")
    if not path:
        return {}
    with open(path, encoding="ascii") as f:
        secret = f.read().strip()
    # Hex only: jupyter-server-proxy formats header values like the command ({port}).
    if not secret or any(ch not in "0123456789abcdef" for ch in secret):
        raise ValueError(f"{path}: not an ffl proxy secret")
    return {"X-Ffl-Proxy-Secret": secret}


if "FFL_PROXY_PORT" in os.environ:
    c.ServerProxy.servers = {
        "firefox": {
            # FFL_LAUNCH=/path/to/ffl-launch when it is not on the nodes' PATH (as in the template).
            "command": [os.environ.get("FFL_LAUNCH", "ffl-launch"), "proxy", "--port", "{port}"],
            "port": int(os.environ["FFL_PROXY_PORT"]),
            # Seconds until Firefox's first window is painted; a busy node can be slow.
            "timeout": 120,
            # xpra serves its HTML5 client at /: strip the /firefox prefix.
            "absolute_url": False,
            # The port's proof that a request comes from this notebook server (see above).
            "request_headers_override": _ffl_proxy_headers(),
            # A tab of its own: the full window and keyboard shortcuts go to Firefox.
            "new_browser_tab": True,
            "launcher_entry": {
                "title": "Firefox",
                "icon_path": os.path.join(os.path.dirname(os.path.abspath(__file__)), "firefox.svg"),
            },
        },
    }
