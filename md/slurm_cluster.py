"""A Dask scheduler with SLURM workers for `ionkinetics campaign run --scheduler ADDRESS`.

Keep this running (e.g. in tmux) while the campaign runs: `python md/slurm_cluster.py`. Needs
`pip install -e '.[cluster]'` (dask-jobqueue) on a machine that can submit SLURM jobs; edit the
queue, resources and the venv path for your cluster.
"""

from dask_jobqueue import SLURMCluster

cluster = SLURMCluster(
    queue="gpu",
    cores=4,
    processes=1,
    memory="16GB",
    walltime="24:00:00",
    job_extra_directives=["--gres=gpu:1"],  # one GPU per worker job
    job_script_prologue=["source /path/to/ionkinetics/.venv/bin/activate"],
)
cluster.adapt(minimum_jobs=1, maximum_jobs=16)
print(cluster.scheduler_address)  # e.g. tcp://10.1.2.3:8786
input("scheduler running; Enter stops it\n")
