"""Train PQN or PDQN on a MinAtar game: ``python -m pdqn.experiments.minatar --alg pqn --env breakout``.

``python -m pdqn.experiments.minatar --resume RUN_DIR`` continues a run from its newest
checkpoint (from the start if it has none yet) with the config saved in RUN_DIR (no other
flags are accepted with it).

Exit codes: 0 done; 2 bad input (flags, run directory, checkpoint); 3 a loss or parameter
became NaN/inf (the last good checkpoint is kept); 130/143 stopped by SIGINT/SIGTERM after
saving a checkpoint (once "writing to RUN_DIR" is printed, a stop at any moment can be resumed).
"""

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import tyro

from pdqn.checkpoint import CheckpointError, list_checkpoints, verify_latest
from pdqn.cli import fail, parse
from pdqn.config import Config
from pdqn.devices import maybe_initialize_distributed
from pdqn.rundir import SUMMARY_FILE, RunDirError, check_writable, default_run_dir, prepare, read_config
from pdqn.runner import Interrupted, NonFiniteError, StopSignals, run
from pdqn.tracking import TrackingError, make_hooks

NON_FINITE_EXIT = 3
STOPPED_EXITS = (128 + 2, 128 + 15)
"""SIGINT, SIGTERM."""
PROG = "python -m pdqn.experiments.minatar"


@dataclasses.dataclass(frozen=True)
class TrainArgs:
    """The command line: a run's config, or --resume (read before tyro; declared here for --help)."""

    config: Annotated[Config, tyro.conf.arg(name="")]
    resume: Annotated[Path | None, tyro.conf.arg(metavar="RUN_DIR")] = None
    """Continue the run in RUN_DIR from its newest checkpoint with the config saved there (no other flag
    is accepted with it)."""


def resume_dir(args: list[str]) -> Path | None:
    """The run directory of ``--resume RUN_DIR`` (or ``--resume=RUN_DIR``); None without --resume."""
    flags = [a for a in args if a == "--resume" or a.startswith("--resume=")]
    if not flags:
        return None
    if args[0].startswith("--resume="):
        rest, path = args[1:], args[0].split("=", 1)[1]
    elif args[0] == "--resume" and len(args) >= 2:
        rest, path = args[2:], args[1]
    else:
        rest, path = args, ""
    if rest or not path or len(flags) > 1:
        fail("--resume takes one run directory and no other flags (the run's saved config is used)")
    return Path(path)


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


def parse_args(args: Sequence[str]) -> Config | Path:
    """The command line's config, or the run directory of ``--resume RUN_DIR``, without running anything
    (the directory is not looked at); bad input exits 2 with one ``error:`` line, --help exits 0."""
    resume = resume_dir(list(args))
    if resume is not None:
        return resume
    return parse(TrainArgs, args, description=__doc__, prog=PROG).config


def main(args: list[str] | None = None) -> int:
    """Parse, train, and turn the outcome into an exit status. Stop signals are listened to from the start:
    one that arrives before training is answered as soon as the run starts (its config saved)."""
    with StopSignals() as stop:
        return train(sys.argv[1:] if args is None else args, stop)


def train(args: Sequence[str], stop: StopSignals) -> int:
    parsed = parse_args(args)
    resume = isinstance(parsed, Path)
    if isinstance(parsed, Path):
        run_dir = parsed
        config = load_resume(run_dir)
    else:
        config = parsed
        try:
            run_dir = prepare(Path(config.run_dir) if config.run_dir else default_run_dir(config))
        except RunDirError as err:
            fail(str(err))
    maybe_initialize_distributed(sys.stderr)
    tag = f"[{config.alg} {config.env}]"
    print(f"{tag} {'resuming' if resume else 'writing to'} {run_dir}", file=sys.stderr, flush=True)
    try:
        summary = run(config, run_dir, hooks=make_hooks(config), resume=resume, stop=stop)
    except (CheckpointError, RunDirError, TrackingError) as err:
        fail(str(err))
    except NonFiniteError as err:
        print(f"error: {err}", file=sys.stderr)
        return NON_FINITE_EXIT
    except Interrupted as err:
        print(f"{tag} {err}; continue with: {PROG} --resume {run_dir}", file=sys.stderr)
        return 128 + err.signum
    print(
        f"{tag} done: greedy {summary['final_target_return']}, "
        f"behaviour {summary['final_behaviour_return']}, {summary['steps_per_second']:,.0f} steps/s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    status = main()
    if status in STOPPED_EXITS:
        # A stop abandons work still running: a compile in a thread (XLA aborts the process, "FATAL: exception
        # not rethrown", if Python is finalised around it) or a chunk on the device (finalising waits for it,
        # seconds). Every output is already written and closed: end now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
