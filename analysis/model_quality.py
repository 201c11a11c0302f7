"""Model quality and imagined values per game and variant, from the runs' metrics (late in training).

    python -m analysis.model_quality --runs experiments/study-1m/runs --out experiments/study-1m/model_quality.md

For each PDQN run (``--alg pdqn``, whatever its variant's name: the termination model's runs too), each metric is
averaged over the last ``--tail`` fraction of updates per seed, then reported as mean ± standard error over seeds.
``mean_q`` of the PQN run of the same game is set beside PDQN's:
the gap shows what imagined targets do to the values (inflated on Breakout, lower on the games with poor models).
"""

import argparse
import sys
from pathlib import Path

import polars as pl

from analysis.load import AnalysisError, load_run_dirs
from pdqn import metrics

COLUMNS = {
    metrics.MODEL_CHANGED_CELL_ACCURACY.name: "changed-cell acc.",
    metrics.MODEL_OBS_EXACT.name: "whole obs exact",
    metrics.MODEL_REWARD_ABS_ERROR.name: "reward abs. error",
    metrics.MODEL_TERM_PRECISION.name: "term. precision",
    metrics.MODEL_TERM_RECALL.name: "term. recall",
    metrics.MEAN_Q.name: "mean Q (real batch)",
    metrics.IMAGINED_MEAN_Q.name: "mean Q (imagined batch)",
    metrics.IMAGINED_TD_LOSS.name: "imagined TD loss",
    metrics.TD_LOSS.name: "real TD loss",
    metrics.IMAGINED_TRUSTED_FRACTION.name: "trusted fraction",
}
"""The declared metrics the table shows (a run that does not produce one leaves its cell empty)."""


def late_means(frame: pl.DataFrame, tail: float) -> pl.DataFrame:
    """Per run and seed, the mean of every known column over the last ``tail`` fraction of env steps."""
    present = [c for c in COLUMNS if c in frame.columns]
    last = pl.col("env_step").max().over("run_id", "seed")
    late = frame.filter(pl.col("env_step") > last * (1.0 - tail))
    return late.group_by("game", "alg", "variant", "run_id", "seed").agg(
        [pl.col(c).cast(pl.Float64).fill_nan(None).mean() for c in present]
    )


def quality_table(frame: pl.DataFrame, tail: float) -> pl.DataFrame:
    """Mean and standard error over seeds per game and variant; PQN's mean Q alongside as ``pqn_mean_q``."""
    seeds = late_means(frame, tail)
    present = [c for c in COLUMNS if c in seeds.columns]
    summary = seeds.group_by("game", "alg", "variant").agg(
        pl.len().alias("seeds"),
        *[pl.col(c).mean().alias(c) for c in present],
        *[(pl.col(c).std() / pl.len().sqrt()).alias(c + "_se") for c in present],
    )
    pqn_q = summary.filter(pl.col("variant") == "pqn").select("game", pl.col(metrics.MEAN_Q.name).alias("pqn_mean_q"))
    planning = summary.filter(pl.col("alg") == "pdqn")
    if planning.height == 0:
        raise AnalysisError("no PDQN runs (--alg pdqn) among the runs given")
    return planning.join(pqn_q, on="game", how="left").sort("game", "variant")


def markdown(table: pl.DataFrame) -> str:
    present = [c for c in COLUMNS if c in table.columns]
    head = ["game", "variant", "seeds", *[COLUMNS[c] for c in present], "PQN mean Q"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    for row in table.iter_rows(named=True):
        cells = [f"{fmt(row[c])} ± {fmt(row[c + '_se'])}" if row[c] is not None else "–" for c in present]
        lines.append("| " + " | ".join([row["game"], row["variant"], str(row["seeds"]), *cells, fmt(row["pqn_mean_q"])]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from pdqn.cli import fail

    parser = argparse.ArgumentParser(prog="python -m analysis.model_quality", description="Model quality and imagined values per game and variant.")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run dirs or folders holding them")
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write")
    parser.add_argument("--tail", type=float, default=0.1, help="fraction of the last env steps to average (default 0.1)")
    args = parser.parse_args(argv)
    try:
        if not 0.0 < args.tail <= 1.0:
            raise AnalysisError("--tail must be in (0, 1]")
        text = markdown(quality_table(load_run_dirs(args.runs), args.tail))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    except AnalysisError as err:
        fail(str(err))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
