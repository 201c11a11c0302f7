"""Train PQN or PDQN on a MinAtar game: ``python -m pdqn.experiments.minatar --alg pqn --env breakout``."""

import sys
from pathlib import Path

from pdqn.cli import fail, parse
from pdqn.config import Config
from pdqn.runner import RunDirError, default_run_dir, prepare_run_dir, run
from pdqn.tracking import make_hooks


def main(args: list[str] | None = None) -> int:
    config = parse(Config, args, description=__doc__)
    try:
        run_dir = prepare_run_dir(Path(config.run_dir) if config.run_dir else default_run_dir(config))
    except RunDirError as err:
        fail(str(err))
    print(f"[{config.alg} {config.env}] writing to {run_dir}", file=sys.stderr, flush=True)
    summary = run(config, run_dir, hooks=make_hooks(config))
    print(
        f"[{config.alg} {config.env}] done: greedy {summary['final_target_return']}, "
        f"behaviour {summary['final_behaviour_return']}, {summary['steps_per_second']:,.0f} steps/s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
