# jupyterhub_config.py excerpt: JupyterHub + batchspawner's SlurmSpawner with
# every single-user server running under the ffl supervisor (ffl-launch run),
# so that Firefox sessions started from JupyterLab end with the server, on
# stop, on culling and on scancel.
#
# Merge these lines into your hub's jupyterhub_config.py. Install
# slurmspawner.sh.j2 (next to this file) where the hub can read it, and put
# jupyter_server_config.py (also next to this file) into a Jupyter config
# directory of the users' environment on the compute nodes (`jupyter --paths`).
c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"

# The batch script: batchspawner's default with `srun ffl-launch run -- ...`.
with open("/etc/jupyterhub/slurmspawner.sh.j2", encoding="utf-8") as f:
    c.SlurmSpawner.batch_script = f.read()

# Keep the default (srun): the single-user server then runs as an srun task,
# which is what receives Slurm's SIGTERM on scancel (the template falls back
# to `exec` if this is set to "").
c.SlurmSpawner.req_srun = "srun"

# Resources. One Firefox session is 11-18 processes and about 500 MiB on top
# of the notebook server.
c.SlurmSpawner.req_partition = "interactive"
c.SlurmSpawner.req_runtime = "8:00:00"
c.SlurmSpawner.req_memory = "8G"
c.SlurmSpawner.req_nprocs = "2"

# A SIGTERM to the job steps (here: the srun task, ffl-launch) 60-120 s
# before the time limit: the sessions and the server end cleanly while there
# is time, instead of racing KillWait at the limit itself. Rendered as an
# "#SBATCH --signal=TERM@60" line by the template's options placeholder.
c.SlurmSpawner.req_options = "--signal=TERM@60"

# Variables for the job. Spawner.environment is part of the spawner's
# environment, so batchspawner's default keepvars (--export=...) passes them
# on. FIREFOX_LAUNCHER_CLEANUP_TIMEOUT bounds the launcher's cleanup on
# SIGTERM; keep it a few seconds below the cluster's KillWait
# (`scontrol show config | grep KillWait`, Slurm's default is 30 s).
# FFL_LAUNCH selects the launcher binary when it is not on the nodes' PATH.
c.Spawner.environment = {
    "FIREFOX_LAUNCHER_CLEANUP_TIMEOUT": "20",
    # "FFL_LAUNCH": "/opt/ffl/bin/ffl-launch",
}

# Batch queues can be slow to start a job.
c.SlurmSpawner.start_timeout = 300
c.SlurmSpawner.http_timeout = 120

# Stopping and culling: JupyterHub stops a server with batchspawner's
# batch_cancel_cmd, `scancel {{job_id}}` by default, and jupyterhub-idle-culler
# stops idle servers the same way. Nothing ffl-specific to set: the srun task
# (ffl-launch) gets the SIGTERM, stops the Firefox sessions and ends the
# server; the node's Epilog (ffl-epilog) ends whatever the SIGKILL finds.
