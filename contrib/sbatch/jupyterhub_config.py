# jupyterhub_config.py: JupyterHub + batchspawner's SlurmSpawner with every single-user server
# running under the ffl supervisor (ffl-launch run), so that the Firefox sessions a user opens
# from the notebook server end with it: on stop, on culling, on scancel, at the time limit.
#
# Start from this file: copy it and slurmspawner.sh.j2 (next to it) into /etc/jupyterhub/, and
# put jupyter_server_config.py (also next to it) into a Jupyter config directory of the users'
# environment on the compute nodes (`jupyter --paths`, "config" section). Needs JupyterHub >= 3,
# batchspawner 1.3 and, on the nodes, jupyter-server-proxy >= 4 and ffl-launch.
import asyncio
import os
import shlex

from batchspawner import SlurmSpawner
from batchspawner.batchspawner import JobStatus, format_template
from tornado import web
from traitlets import Float

try:  # JupyterHub >= 6.0
    from jupyterhub.spawner import SpawnException
except ImportError:
    SpawnException = None

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file


class SpawnFailed(web.HTTPError):
    """A failed start whose reason JupyterHub < 6 shows as it is: on its error page when the
    start fails within a second of the request, after "Spawn failed:" on the spawn page
    otherwise. (For any other exception of the first second the hub shows only "Failed to start
    your server on the last attempt".)"""

    def __init__(self, message):
        # One printable ASCII line: it is also the HTTP status line's reason phrase.
        self.message = " ".join(message.encode("ascii", "replace").decode().split())
        super().__init__(500, "%s", self.message)

    # JupyterHub sets reason = "error" on a failed start and then shows its generic sentence
    # instead of the message: keep ours.
    @property
    def reason(self):
        return self.message

    @reason.setter
    def reason(self, value):
        pass

    def __str__(self):
        return self.message


def spawn_failed(message):
    """The exception that fails a start with message, shown to the user as it is.

    JupyterHub >= 6 turns a failed start's reason into a label of its spawn metrics: there it
    is a SpawnException with the short reason "job_ended" (a failure of the spawn, not an error
    of the hub: it does not count towards consecutive_failure_limit), and the message reaches
    the error page and the spawn page through jupyterhub_message. Older hubs have no
    SpawnException and replace a generic reason by a generic sentence: SpawnFailed keeps its
    message as the reason."""
    if SpawnException is None:
        return SpawnFailed(message)
    message = " ".join(message.split())
    exc = SpawnException(message, reason="job_ended", status_code=500)
    exc.jupyterhub_message = message
    return exc


class FFLSlurmSpawner(SlurmSpawner):
    """batchspawner's SlurmSpawner that gives up as soon as its job has ended, and says why.

    Once the job runs, batchspawner 1.3.0 waits only for the single-user server to report its
    port. A job that ends before that (ffl-launch refused a setting, no port was free, a
    command is missing) left the user looking at "Cluster job running... waiting to connect"
    until start_timeout, unable to start another server meanwhile (jupyterhub/batchspawner#253,
    fixed after 1.3.0). A job that ends at once gave only "The Jupyter batch job has disappeared
    while pending in the queue or died immediately after starting". This spawner polls the job
    while it waits and, either way, fails the start with the last lines of the job's log, which
    name the reason, within seconds.
    """

    job_check_interval = Float(
        2.0, help="Seconds between checks, while waiting for the server's port, that the job still runs."
    ).tag(config=True)

    _submitted_job_id = ""

    async def submit_batch_script(self):
        # batchspawner clears job_id before it reports a job that died at once: keep it.
        self._submitted_job_id = await super().submit_batch_script()
        return self._submitted_job_id

    async def start(self):
        self._submitted_job_id = ""
        start = asyncio.ensure_future(super().start())
        try:
            while True:
                done, _ = await asyncio.wait({start}, timeout=self.job_check_interval)
                if done:
                    try:
                        return start.result()
                    except RuntimeError:
                        if self._submitted_job_id:  # it ran, and ended at once
                            raise await self._ended(self._submitted_job_id) from None
                        raise
                if not self.job_id or self.port:
                    continue  # not submitted yet, or the server has reported its port
                job_id = self.job_id
                if await self.query_job_status() == JobStatus.NOTFOUND:
                    raise await self._ended(job_id)
        finally:
            if not start.done():
                start.cancel()

    async def _ended(self, job_id):
        log = os.path.join(self.req_homedir, f"jupyterhub_slurmspawner_{job_id}.log")
        msg = f"The batch job {job_id} ended before the notebook server started (its log: {log})"
        # The user's home is usually readable from the hub host too (and the hub is root or
        # has sudo rights for the user, as batchspawner needs): show the reason right away.
        cmd = " ".join(
            (format_template(self.exec_prefix, **self.get_req_subvars()), "tail -n 3 " + shlex.quote(log))
        )
        try:
            tail = await asyncio.wait_for(self.run_command(cmd), timeout=10)
        except Exception:  # no log there: the message still names where it is
            tail = ""
        return spawn_failed(f"{msg}: {tail}" if tail else msg)


c.JupyterHub.spawner_class = FFLSlurmSpawner

# The batch script: batchspawner's default with `srun ffl-launch run -- ...` (next to this file).
with open(os.path.join(os.path.dirname(__file__), "slurmspawner.sh.j2"), encoding="utf-8") as f:
    c.SlurmSpawner.batch_script = f.read()

# Keep the default (srun): the single-user server then runs as an srun task, which is what
# receives Slurm's SIGTERM on scancel (the template falls back to `exec` if this is "").
c.SlurmSpawner.req_srun = "srun"

# The job's PATH must reach the srun task: the template's srun looks ffl-launch and
# batchspawner-singleuser up on it. sbatch --export=LIST makes srun export only that LIST, and
# JupyterHub >= 5 no longer puts PATH into it (Spawner.env_keep); 4.x and older already do.
c.SlurmSpawner.req_keepvars_extra = "PATH"

# Resources. One Firefox session is 11-18 processes and about 600 MiB on top of the server.
c.SlurmSpawner.req_partition = "interactive"
c.SlurmSpawner.req_runtime = "8:00:00"
c.SlurmSpawner.req_memory = "8G"
c.SlurmSpawner.req_nprocs = "2"

# A SIGTERM to the job steps (here: the srun task, ffl-launch) 60-120 s before the time limit:
# the sessions and the server end cleanly while there is time, instead of racing KillWait at
# the limit itself. Rendered as "#SBATCH --signal=TERM@60" by the template's options line.
c.SlurmSpawner.req_options = "--signal=TERM@60"

# Variables for the job. Spawner.environment is part of the spawner's environment, so
# batchspawner's default keepvars (--export=...) passes them on.
# FIREFOX_LAUNCHER_CLEANUP_TIMEOUT bounds the launcher's cleanup on SIGTERM; keep it a few
# seconds below the cluster's KillWait (`scontrol show config | grep KillWait`, default 30 s).
# FFL_LAUNCH selects the launcher binary when it is not on the nodes' PATH.
c.Spawner.environment = {
    "FIREFOX_LAUNCHER_CLEANUP_TIMEOUT": "20",
    # "FFL_LAUNCH": "/opt/ffl/bin/ffl-launch",
}

# Batch queues can be slow to start a job; a job that ends early fails the start at once
# (FFLSlurmSpawner above), so a long start_timeout costs nobody a wait.
c.SlurmSpawner.start_timeout = 300
c.SlurmSpawner.http_timeout = 120

# A hub restart (an upgrade, a config change) leaves the users' jobs running: batchspawner
# keeps each server's job id in the hub's database and finds the job again with squeue.
c.JupyterHub.cleanup_servers = False

# Stopping and culling: JupyterHub stops a server with batchspawner's batch_cancel_cmd,
# `scancel {job_id}`, and jupyterhub-idle-culler stops idle servers the same way. Nothing
# ffl-specific to set: the srun task (ffl-launch) gets the SIGTERM, stops the Firefox sessions
# and ends the server; the node's Epilog (ffl-epilog) ends whatever the SIGKILL finds.
# An open Firefox tab counts as activity only while its user types or clicks: after
# idle_timeout in ffl.toml (default 30 minutes) without input, ffl has xpra drop the tab's
# connection, the tab says why, and the culler's --timeout runs from there.
