"""The training runs' own figures as a markdown table: each run's final greedy evaluation, the mean of its last
three evaluations and its final behaviour return, as mean ± s.e. over its seeds, its training seconds (and of them the
seconds in compiled updates: the rest is mostly its greedy evaluations) and its final evaluation per hour of training
(the study's return per wall-clock second, scaled).

    python experiments/decision-time/runs_table.py experiments/decision-time/runs/asterix-pqn \\
        experiments/decision-time/runs/asterix-termination-veto-0.5

Reads each run's committed ``summary.json`` and ``metrics.parquet`` (what ``pdqn.experiments.minatar`` writes). With
``--against RUN`` (one of the runs) each other run's probability of improvement over it is added, on both measures,
with a bootstrap 95 % CI (``analysis.stats.probability_of_improvement``; the runs' seeds are unpaired).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from analysis.finals import final_returns
from analysis.load import load_run_dirs
from analysis.stats import probability_of_improvement


def mean_se(values: np.ndarray) -> str:
    return f"{values.mean():.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"


def per_seed(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's final evaluation and mean of its last three evaluations (``analysis.finals``)."""
    finals = final_returns(load_run_dirs([run_dir])).sort("seed")
    return finals["greedy"].to_numpy(), finals["greedy_last3"].to_numpy()


def row(run_dir: Path, against: Path | None) -> dict[str, str]:
    summary = json.loads((run_dir / "summary.json").read_text())
    final, last_three = per_seed(run_dir)
    cells = {
        "run": run_dir.name,
        "final evaluation": mean_se(final),
        "mean of the last three evaluations": mean_se(last_three),
        "behaviour at the end": f"{np.mean(summary['final_behaviour_return']):.1f}",
        "training seconds": f"{summary['train_seconds']:.0f}",
        # the compiled chunks of updates; the rest is mostly the greedy evaluations (with the veto where the run
        # evaluates with it), which the paired benchmark of time per update leaves out
        "of which updates": f"{summary['update_seconds']:.0f}",
        # the protocol's return per wall-clock second, per hour to be readable; all of the run's seeds share the time
        "final evaluation per training hour": f"{final.mean() / summary['train_seconds'] * 3600:.1f}",
    }
    if against is not None:
        cells[f"P(> {against.name}), final / last three"] = "" if run_dir == against else improvement(run_dir, against)
    return cells


def improvement(run_dir: Path, against: Path) -> str:
    frames = []
    for variant, directory in (("run", run_dir), ("against", against)):
        final, last_three = per_seed(directory)
        frames.append(pl.DataFrame({"game": "g", "variant": variant, "final": final, "last_three": last_three}))
    finals = pl.concat(frames)
    shown = []
    for column in ("final", "last_three"):
        result = probability_of_improvement(finals, "run", "against", column=column)
        assert result is not None  # one shared game by construction
        shown.append(f"{result[0]:.2f} [{result[1]:.2f}, {result[2]:.2f}]")
    return " / ".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--against", type=Path, default=None, help="one of the runs: the others' P(improvement) over it")
    args = parser.parse_args(argv)
    if args.against is not None and args.against not in args.run_dirs:
        print(f"error: --against {args.against} is not one of the runs", file=sys.stderr)
        return 2
    missing = [str(d) for d in args.run_dirs if not (d / "summary.json").is_file() or not (d / "metrics.parquet").is_file()]
    if missing:
        print(f"error: no summary.json and metrics.parquet in {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = [row(d, args.against) for d in args.run_dirs]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for r in rows:
        print("| " + " | ".join(r.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
