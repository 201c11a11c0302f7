"""The final returns of each run, the figures every comparison starts from (:mod:`analysis.stats` aggregates
them, :mod:`analysis.anchors` makes the reference anchor from them):

- final greedy return of a seed: its last greedy evaluation (``target_return``);
- final behaviour return of a seed: mean ``behaviour_return`` over the last ``tail`` fraction (10 %)
  of its env steps (the same as ``summary.json``).
"""

import polars as pl

from pdqn.metrics import BEHAVIOUR_RETURN, TARGET_RETURN


def final_returns(frame: pl.DataFrame, tail: float = 0.1) -> pl.DataFrame:
    """One row per run: ``game, alg, variant, seed, run_id, greedy, behaviour, env_step``."""
    last_step = pl.col("env_step").max().over("run_id")
    first_step = pl.col("env_step").min().over("run_id")
    window = frame.filter(pl.col("env_step") > last_step - (last_step - first_step) * tail - 1e-9)
    behaviour = (
        window.with_columns(pl.col(BEHAVIOUR_RETURN.name).fill_nan(None))
        .group_by("run_id")
        .agg(pl.col(BEHAVIOUR_RETURN.name).mean().alias("behaviour"))
    )
    greedy = (
        frame.filter(pl.col(TARGET_RETURN.name).is_finite())
        .sort("env_step")
        .group_by("run_id")
        .agg(pl.col(TARGET_RETURN.name).last().alias("greedy"))
    )
    runs = frame.group_by("run_id").agg(
        pl.col("game").first(), pl.col("alg").first(), pl.col("variant").first(), pl.col("seed").first(),
        pl.col("env_step").max(),
    )
    return (
        runs.join(greedy, on="run_id", how="left")
        .join(behaviour, on="run_id", how="left")
        .select("game", "alg", "variant", "seed", "run_id", "greedy", "behaviour", "env_step")
        .sort("game", "variant", "seed")
    )
