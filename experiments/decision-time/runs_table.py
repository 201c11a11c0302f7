"""The training runs' own figures as a markdown table: each run's final greedy evaluation, the mean of its last
three evaluations and its final behaviour return, as mean ± s.e. over its seeds, and its training seconds.

    python experiments/decision-time/runs_table.py experiments/decision-time/runs/asterix-pqn \\
        experiments/decision-time/runs/asterix-termination-veto-0.5

Reads each run's committed ``summary.json`` and ``metrics.parquet`` (what ``pdqn.experiments.minatar`` writes).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl


def mean_se(values: np.ndarray) -> str:
    return f"{values.mean():.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"


def row(run_dir: Path) -> dict[str, str]:
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluations = pl.read_parquet(run_dir / "metrics.parquet").filter(pl.col("target_return").is_not_nan())
    last_updates = evaluations["update"].unique().sort()[-3:]
    last_three = (
        evaluations.filter(pl.col("update").is_in(last_updates.implode()))
        .group_by("seed")
        .agg(pl.col("target_return").mean())
        .sort("seed")["target_return"]
        .to_numpy()
    )
    return {
        "run": run_dir.name,
        "final evaluation": mean_se(np.asarray(summary["final_target_return"])),
        "mean of the last three evaluations": mean_se(last_three),
        "behaviour at the end": f"{np.mean(summary['final_behaviour_return']):.1f}",
        "training seconds": f"{summary['train_seconds']:.0f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.run_dirs if not (d / "summary.json").is_file() or not (d / "metrics.parquet").is_file()]
    if missing:
        print(f"error: no summary.json and metrics.parquet in {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = [row(d) for d in args.run_dirs]
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for r in rows:
        print("| " + " | ".join(r.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
