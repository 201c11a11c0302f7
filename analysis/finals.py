"""The final returns of each run, the figures every comparison starts from (:mod:`analysis.stats` aggregates
them, :mod:`analysis.anchors` makes the reference anchor from them):

- final greedy return of a seed (``greedy``): its last greedy evaluation (``target_return``);
- recent greedy return of a seed (``greedy_last3``): the mean of its last three greedy evaluations, a measure
  that one collapsed evaluation cannot decide;
- final behaviour return of a seed (``behaviour``): mean ``behaviour_return`` over the last ``tail`` fraction
  (10 %) of its env steps (the same as ``summary.json``).

``MEASURES`` names them, in the order tables show them.
"""

import polars as pl

from pdqn.metrics import BEHAVIOUR_RETURN, TARGET_RETURN


RECENT_EVALUATIONS = 3
MEASURES = {
    "greedy": "last greedy evaluation",
    "greedy_last3": f"mean of the last {RECENT_EVALUATIONS} greedy evaluations",
    "behaviour": "mean ε-greedy episode return over the last 10 % of env steps",
}


def final_returns(frame: pl.DataFrame, tail: float = 0.1) -> pl.DataFrame:
    """One row per run: ``game, alg, variant, seed, run_id, greedy, greedy_last3, behaviour, env_step``."""
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
        .agg(
            pl.col(TARGET_RETURN.name).last().alias("greedy"),
            pl.col(TARGET_RETURN.name).tail(RECENT_EVALUATIONS).mean().alias("greedy_last3"),
        )
    )
    runs = frame.group_by("run_id").agg(
        pl.col("game").first(), pl.col("alg").first(), pl.col("variant").first(), pl.col("seed").first(),
        pl.col("env_step").max(),
    )
    return (
        runs.join(greedy, on="run_id", how="left")
        .join(behaviour, on="run_id", how="left")
        .select("game", "alg", "variant", "seed", "run_id", *MEASURES, "env_step")
        .sort("game", "variant", "seed")
    )
