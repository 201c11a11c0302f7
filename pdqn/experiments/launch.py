"""Sweeps as job arrays through submitit (``python -m pdqn.experiments.sweep ... --launcher submitit``).

The unfinished points (of ``--shard``, if given) go out as one job array, a job per point. A job trains its
point exactly as ``--shard`` would (:class:`PointJob`): it resumes from the point's checkpoint if it has one.
submitit asks SLURM for SIGUSR2 shortly before the time limit (``--signal=USR2@90``), and preemption on most
clusters sends it too: the run checkpoints and stops, and the job hands the signal back to submitit, which
requeues it; the requeued job resumes the point. A job killed outright loses only the updates since the point's
last checkpoint: run the same sweep command again and it submits the points that are not done.

``--launcher submitit-local`` runs the same jobs as processes on this machine (submitit's local executor).
"""

import argparse
import dataclasses
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from pdqn.cli import fail
from pdqn.experiments.sweep import POINTS_FILE, Shard, Sweep, SweepStopped, is_done, points_table, report, sweep, write_table

POLL_SECONDS = {"submitit": 30.0, "submitit-local": 1.0}
"""How often a waiting launcher asks whether its jobs have ended."""


def add_slurm_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("SLURM jobs (with --launcher submitit)")
    group.add_argument("--slurm.partition", dest="slurm_partition", default=None, help="partition to submit to")
    group.add_argument("--slurm.time", dest="slurm_time", type=int, default=60, metavar="MINUTES", help="time limit of each job in minutes; a point that needs longer is checkpointed, requeued and resumes (default: 60)")
    group.add_argument("--slurm.max-requeues", dest="slurm_max_requeues", type=int, default=3, metavar="N", help="time-outs after which a job is requeued no more (preemptions do not count; default: 3)")
    group.add_argument("--slurm.gpus-per-node", dest="slurm_gpus_per_node", type=int, default=None, metavar="N", help="GPUs of each job (a point's seeds are sharded over them when they divide)")
    group.add_argument("--slurm.cpus-per-task", dest="slurm_cpus_per_task", type=int, default=None, metavar="N", help="CPU cores of each job")
    group.add_argument("--slurm.mem-gb", dest="slurm_mem_gb", type=float, default=None, metavar="GB", help="memory of each job")
    group.add_argument("--slurm.account", dest="slurm_account", default=None, help="account to charge")
    group.add_argument("--slurm.qos", dest="slurm_qos", default=None, help="quality of service")
    group.add_argument("--slurm.constraint", dest="slurm_constraint", default=None, help="node features, e.g. a100")
    group.add_argument("--slurm.array-parallelism", dest="slurm_array_parallelism", type=int, default=None, metavar="N", help="most jobs of the array running at once (default: submitit's 256)")
    group.add_argument("--slurm.setup", dest="slurm_setup", action="append", default=[], metavar="COMMAND", help="shell command run before each job, e.g. 'module load cuda' (repeatable)")
    group.add_argument("--slurm.folder", dest="slurm_folder", type=Path, default=None, help="submitit's job files and logs (default: <sweep folder>/submitit)")


def executor_parameters(flags: argparse.Namespace, name: str) -> dict[str, Any]:
    """submitit's parameters from the --slurm.* flags (unset ones are left to SLURM's and submitit's defaults)."""
    parameters = {
        "name": f"pdqn-sweep-{name}",
        "timeout_min": flags.slurm_time,
        "gpus_per_node": flags.slurm_gpus_per_node,
        "cpus_per_task": flags.slurm_cpus_per_task,
        "mem_gb": flags.slurm_mem_gb,
        "slurm_partition": flags.slurm_partition,
        "slurm_account": flags.slurm_account,
        "slurm_qos": flags.slurm_qos,
        "slurm_constraint": flags.slurm_constraint,
        "slurm_array_parallelism": flags.slurm_array_parallelism,
        "slurm_setup": flags.slurm_setup or None,
    }
    return {key: value for key, value in parameters.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class PointJob:
    """One point of a sweep as a submitit job (checkpointable: submitit requeues it after a preemption or a
    time-out, and the requeued job resumes the point from its checkpoint)."""

    sweep: Sweep
    index: int

    def __call__(self) -> str:
        spec = self.sweep
        shard = Shard(self.index, len(spec.points()))  # this point alone, as `--shard` would run it
        try:
            table = sweep(spec.name, spec.base, spec.grid, spec.games, spec.out, shard=shard)
        except SweepStopped as err:
            if err.signum == signal.SIGUSR2 and callable(signal.getsignal(signal.SIGUSR2)):
                signal.raise_signal(signal.SIGUSR2)  # the point is checkpointed: submitit's handler requeues the job
            raise
        record = table.row(self.index, named=True)
        if record["status"] != "done":  # the job fails, so that SLURM and submitit say so
            raise RuntimeError(f"point {self.index} ({record['game']} {record['label']}) {record['status']}: {record['reason']}")
        return "done"

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """What submitit requeues: this same job (it resumes the point from its newest checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def wait_for(jobs: list[Any], poll: float) -> None:
    while not all(job.done() for job in jobs):
        time.sleep(poll)


def launch(spec: Sweep, shard: Shard | None, flags: argparse.Namespace, log: Any = None) -> int:
    """Submit the unfinished points as a job array; with ``--wait``, wait for it and report like a sweep."""
    log = sys.stderr if log is None else log
    try:
        import submitit
    except ImportError:
        fail("--launcher submitit needs submitit: pip install 'pdqn[cluster]'")
    local = flags.launcher == "submitit-local"
    if not local and (shutil.which("sbatch") is None or shutil.which("srun") is None):
        fail("--launcher submitit needs SLURM (sbatch and srun on PATH); --launcher submitit-local runs the jobs here")
    todo = [p for p in spec.points() if (shard is None or shard.owns(p)) and not is_done(spec, p)]
    if not todo:
        print(f"[sweep {spec.name}] every point is done; nothing to submit", file=log, flush=True)
        return report(spec.name, write_table(spec) if shard is None else points_table(spec), spec.folder / POINTS_FILE, log)
    folder = flags.slurm_folder or spec.folder / "submitit"
    timeouts = {f"{cluster}_max_num_timeout": flags.slurm_max_requeues for cluster in ("slurm", "local")}
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if local else "slurm", **timeouts)
    executor.update_parameters(**executor_parameters(flags, spec.name))
    jobs = executor.submit_array([PointJob(spec, p.index) for p in todo])
    ids = [str(job.job_id) for job in jobs]
    what = f"local jobs {', '.join(ids)}" if local else f"job array {ids[0].split('_')[0]}"
    print(f"[sweep {spec.name}] submitted {len(jobs)} points as {what}; logs in {folder}", file=log, flush=True)
    if not flags.wait:
        print(f"[sweep {spec.name}] when they have ended, the same command with --status writes the table", file=log)
        return 0
    wait_for(jobs, POLL_SECONDS[flags.launcher])
    table = write_table(spec) if shard is None else points_table(spec)
    for job, point in zip(jobs, todo):
        record = table.row(point.index, named=True)
        if record["status"] != "done":
            print(f"[sweep {spec.name}] point {point.index} ({point.game} {point.label}): job {job.job_id} ended "
                  f"{job.state}, point {record['status']}; run the same command again to resume it", file=log)  # fmt: skip
    return report(spec.name, table if shard is None else shard.rows(table), spec.folder / POINTS_FILE, log)
