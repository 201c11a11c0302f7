"""Train PQN or PDQN on a MinAtar game: ``python -m pdqn.experiments.minatar --alg pqn --env breakout``.

``python -m pdqn.experiments.minatar --resume RUN_DIR`` continues a run from its newest
checkpoint (from the start if it has none yet) with the config saved in RUN_DIR (no other
flags are accepted with it but --distributed.*).

One run over several processes (hosts): start the same command in every process with
``--distributed.coordinator HOST:PORT --distributed.num-processes N --distributed.process-id I`` (or the
variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; under ``srun`` or ``mpirun`` with
several tasks JAX detects them). The seeds (a multiple of the device count) are sharded over every
process's devices; process 0 writes the outputs. Its checkpoints resume on any number of processes.

Exit codes: 0 done; 2 bad input (flags, run directory, checkpoint); 3 a loss or parameter
became NaN/inf (the last good checkpoint is kept); 130/143/140 stopped by SIGINT/SIGTERM/SIGUSR2
after saving a checkpoint (once "writing to RUN_DIR" is printed, a stop at any moment can be resumed).
"""

import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import tyro

# Nothing imported here starts JAX's backend: a multi-process run must call jax.distributed.initialize() first.
from pdqn.checkpoint import CheckpointError, list_checkpoints, verify_latest
from pdqn.cli import USAGE_ERROR, fail, parse
from pdqn.config import Config, DistributedConfig
from pdqn.devices import DistributedError, check_seeds, resolve_distributed, start_distributed, stop_distributed
from pdqn.rundir import SUMMARY_FILE, RunDirError, check_writable, default_run_dir, prepare, read_config
from pdqn.signals import StopSignals
from pdqn.tracking import TrackingError, make_hooks

NON_FINITE_EXIT = 3
STOPPED_EXITS = (128 + 2, 128 + 15, 128 + 12)
"""SIGINT, SIGTERM, SIGUSR2."""
PROG = "python -m pdqn.experiments.minatar"


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """The command line: a run's config and how it is spread over processes, or --resume (read before tyro;
    declared here for --help)."""

    config: Annotated[Config, tyro.conf.arg(name="")]
    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)
    """One run over several processes (not saved with the run)."""
    resume: Annotated[Path | None, tyro.conf.arg(metavar="RUN_DIR")] = None
    """Continue the run in RUN_DIR from its newest checkpoint with the config saved there (no other flag
    is accepted with it but --distributed.*)."""


@dataclasses.dataclass(frozen=True)
class ResumeCommand:
    """What ``--resume RUN_DIR`` accepts besides the run directory."""

    distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)
    """One run over several processes (not saved with the run)."""


def resume_dir(args: list[str]) -> tuple[Path, list[str]] | None:
    """The run directory of ``--resume RUN_DIR`` (or ``--resume=RUN_DIR``) and the flags after it (only
    --distributed.* ones are allowed); None without --resume."""
    flags = [a for a in args if a == "--resume" or a.startswith("--resume=")]
    if not flags:
        return None
    if args[0].startswith("--resume="):
        rest, path = args[1:], args[0].split("=", 1)[1]
    elif args[0] == "--resume" and len(args) >= 2:
        rest, path = args[2:], args[1]
    else:
        rest, path = args, ""
    others = [a for a in rest if a.startswith("-") and not a.startswith("--distributed.")]
    if others or not path or len(flags) > 1:
        fail("--resume takes one run directory and no other flags but --distributed.* (the run's saved config is used)")
    return Path(path), rest


def load_resume(run_dir: Path) -> Config:
    if not run_dir.is_dir():
        fail(f"cannot resume {run_dir}: not a run directory")
    if (run_dir / SUMMARY_FILE).exists():
        fail(f"cannot resume {run_dir}: the run has already finished")
    try:
        config = read_config(run_dir, CheckpointError)
        if list_checkpoints(run_dir):  # none yet: the run starts again from the beginning
            verify_latest(run_dir, config)
        check_writable(run_dir)
    except (CheckpointError, RunDirError) as err:
        fail(str(err))
    return config


def parse_args(args: Sequence[str]) -> tuple[Config | Path, DistributedConfig]:
    """The command line's config, or the run directory of ``--resume RUN_DIR``, and the distributed flags,
    without running anything (the directory is not looked at); bad input exits 2 with one ``error:`` line,
    --help exits 0."""
    resume = resume_dir(list(args))
    if resume is not None:
        run_dir, rest = resume
        return run_dir, parse(ResumeCommand, rest, description=__doc__, prog=PROG).distributed
    parsed = parse(TrainArgs, args, description=__doc__, prog=PROG)
    return parsed.config, parsed.distributed


def abandon(message: str) -> None:
    """End a process whose multi-process start-up timed out (JAX would soon abort it with a fatal error)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(USAGE_ERROR)


def start_processes(flags: DistributedConfig, config: Config, run_dir: Path, resume: bool) -> None:
    """Check the distributed settings, prepare a new run's directory, then join a multi-process run when the
    flags, the environment or the cluster ask for one (every process has prepared the directory by then)."""
    try:
        launch = resolve_distributed(flags)
        check_seeds(launch, config.num_seeds)
        if not resume:
            prepare(run_dir)
        if launch is not None:
            start_distributed(launch, sys.stderr, on_timeout=abandon)
    except (DistributedError, RunDirError) as err:
        fail(str(err))


def main(args: list[str] | None = None, *, end_stopped: bool = False) -> int:
    """Parse, train, and turn the outcome into an exit status. Stop signals are listened to from the start:
    one that arrives before training is answered as soon as the run starts (its config saved). With
    ``end_stopped`` (the program itself), a stopped run ends the process while still listening, and a second
    signal at any moment ends it at once with one line."""
    with StopSignals(at_once=end_at_once if end_stopped else None) as stop:
        status = train(sys.argv[1:] if args is None else args, stop)
        if end_stopped and status in STOPPED_EXITS:
            end_now(status)
        return status


def end_at_once(signum: int) -> None:
    """A second stop signal: end the process now (every file is written atomically, so none is left half-written)."""
    print(f"{PROG}: stopped at once by a second {signal.Signals(signum).name}", file=sys.stderr)
    end_now(128 + signum)


def end_now(status: int) -> NoReturn:
    """A stop abandons work still running: a compile in a thread (XLA aborts the process, "FATAL: exception not
    rethrown", if Python is finalised around it) or a chunk on the device (finalising waits for it, seconds). Every
    output is already written and closed: end now."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def train(args: Sequence[str], stop: StopSignals) -> int:
    target, distributed = parse_args(args)
    resume = isinstance(target, Path)
    if isinstance(target, Path):
        run_dir, config = target, load_resume(target)
    else:
        config = target
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
    start_processes(distributed, config, run_dir, resume)
    from pdqn.runner import Interrupted, NonFiniteError, run  # imports the trainer, which starts JAX's backend

    tag = f"[{config.alg} {config.env}]"
    print(f"{tag} {'resuming' if resume else 'writing to'} {run_dir}", file=sys.stderr, flush=True)
    try:
        summary = run(config, run_dir, hooks=make_hooks(config), resume=resume, stop=stop)
    except (CheckpointError, RunDirError, TrackingError, DistributedError) as err:
        fail(str(err))
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        stop_distributed()
        return NON_FINITE_EXIT
    except Interrupted as err:
        print(f"{tag} {err}; continue with: {PROG} --resume {run_dir}", file=sys.stderr)
        stop_distributed()
        return 128 + err.signum
    stop_distributed()  # every process of a multi-process run ends here, together
    print(
        f"{tag} done: greedy {summary['final_target_return']}, "
        f"behaviour {summary['final_behaviour_return']}, {summary['steps_per_second']:,.0f} steps/s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(end_stopped=True))
