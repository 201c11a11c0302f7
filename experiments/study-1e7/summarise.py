"""One row per game, algorithm and seed of the 1e7-step runs (experiments/study-1e7/runs/*/summary.json):
final greedy and behaviour returns, env steps per second (all seeds of the run together) and seconds, written to
experiments/study-1e7/summary.csv and printed as a markdown table of means over the seeds.

    python experiments/study-1e7/summarise.py
"""

import json
import sys
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent


def rows(run_dir: Path) -> list[dict]:
    summary = json.loads((run_dir / "summary.json").read_text())
    seconds = summary["compile_seconds"] + summary["train_seconds"]
    return [
        {
            "game": summary["env"],
            "alg": summary["alg"],
            "seed": seed,
            "env_steps": summary["env_steps_per_seed"],
            "final_greedy_return": greedy,
            "final_behaviour_return": behaviour,
            "env_steps_per_second": summary["steps_per_second"],
            "seconds": seconds,
        }
        for seed, greedy, behaviour in zip(summary["seeds"], summary["final_target_return"], summary["final_behaviour_return"])
    ]


def main() -> int:
    found = sorted(p for p in (HERE / "runs").glob("*") if (p / "summary.json").exists())
    if not found:
        print("error: no finished run under experiments/study-1e7/runs", file=sys.stderr)
        return 2
    frame = pl.DataFrame([row for run_dir in found for row in rows(run_dir)]).sort("game", "alg", "seed")
    frame.write_csv(HERE / "summary.csv")
    table = frame.group_by("game", "alg", maintain_order=True).agg(
        pl.col("seed").len().alias("seeds"),
        pl.col("final_greedy_return").mean().round(1).alias("greedy"),
        pl.col("final_behaviour_return").mean().round(1).alias("behaviour"),
        pl.col("env_steps_per_second").first().round(0).alias("env steps/s"),
        (pl.col("seconds").first() / 60).round(0).alias("minutes"),
    )
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=50):
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
