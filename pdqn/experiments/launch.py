"""Jobs through submitit, the cluster side of ``python -m pdqn.experiments.sweep ... --launcher submitit``: the
``--slurm.*`` flags, submitting a job array, waiting for it, and requeueing.

submitit asks SLURM for SIGUSR2 shortly before the time limit (``--signal=USR2@90``), and preemption on most
clusters sends it too: a job checkpoints and stops, and hands the signal back to submitit (:func:`hand_back`),
which requeues it (:class:`RequeuedJob`); the requeued job resumes from its checkpoint. What a job does (a sweep
point trained as ``--shard`` would) is :class:`pdqn.experiments.sweep.PointJob`: this module knows nothing of
sweeps, so that the sweep command imports it and not the other way round.

``--launcher submitit-local`` runs the same jobs as processes on this machine (submitit's local executor).
"""

import abc
import argparse
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from pdqn.cli import fail

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


class RequeuedJob(abc.ABC):
    """A submitit job that submitit requeues after a preemption or a time-out: the same call again (the job
    resumes its work from its own checkpoint)."""

    @abc.abstractmethod
    def __call__(self) -> Any:
        """The job's work."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """What submitit requeues: this same job."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def hand_back(signum: int) -> None:
    """After a job checkpointed and stopped on ``signum``: SIGUSR2 goes back to submitit's handler, which
    requeues the job (any other signal, or no handler of submitit's, is left to the caller)."""
    if signum == signal.SIGUSR2 and callable(signal.getsignal(signal.SIGUSR2)):
        signal.raise_signal(signal.SIGUSR2)


def require_submitit(launcher: str) -> Any:
    """The submitit module, once it is known that ``launcher`` can run here (else one error line, exit 2)."""
    try:
        import submitit
    except ImportError:
        fail("--launcher submitit needs submitit: pip install 'pdqn[cluster]'")
    if launcher != "submitit-local" and (shutil.which("sbatch") is None or shutil.which("srun") is None):
        fail("--launcher submitit needs SLURM (sbatch and srun on PATH); --launcher submitit-local runs the jobs here")
    return submitit


def submit_array(submitit: Any, jobs: list[Any], flags: argparse.Namespace, name: str, folder: Path) -> list[Any]:
    """Submit ``jobs`` as one job array (submitit's local executor with ``--launcher submitit-local``)."""
    local = flags.launcher == "submitit-local"
    timeouts = {f"{cluster}_max_num_timeout": flags.slurm_max_requeues for cluster in ("slurm", "local")}
    executor = submitit.AutoExecutor(folder=folder, cluster="local" if local else "slurm", **timeouts)
    executor.update_parameters(**executor_parameters(flags, name))
    return executor.submit_array(jobs)


def array_name(jobs: list[Any], launcher: str) -> str:
    """How the submitted jobs are named in messages: the local jobs' ids, or the SLURM array's id."""
    ids = [str(job.job_id) for job in jobs]
    return f"local jobs {', '.join(ids)}" if launcher == "submitit-local" else f"job array {ids[0].split('_')[0]}"


def wait_for(jobs: list[Any], launcher: str) -> None:
    """Wait until every job has ended, asking every :data:`POLL_SECONDS` of ``launcher``."""
    while not all(job.done() for job in jobs):
        time.sleep(POLL_SECONDS[launcher])
