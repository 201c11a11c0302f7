"""Final returns per seed, mean ± standard error with bootstrap CIs, IQM of normalised scores and the
probability of improvement (as in rliable: Agarwal et al. 2021), all on polars frames.

Definitions:

- final greedy return of a seed: its last greedy evaluation (``target_return``);
- final behaviour return of a seed: mean ``behaviour_return`` over the last ``tail`` fraction (10 %)
  of its env steps (the same as ``summary.json``);
- normalised score: min-max per game over every seed of every variant in the comparison,
  ``(x - min) / (max - min)`` (0.5 when all are equal), so 0 = worst and 1 = best seed seen on that game;
- IQM: mean of the middle 50 % of the pooled (game, seed) normalised scores (trimming
  ``floor(n/4)`` from each end); its CI is a stratified bootstrap (seeds resampled within each game);
- probability of improvement P(X > Y): for each game, the fraction of seed pairs (x, y) with x > y,
  ties counting 1/2, averaged over games; its CI resamples the seeds of X and of Y within each game.
"""

import numpy as np
import polars as pl

POLICIES = {"greedy": "target_return", "behaviour": "behaviour_return"}
RESAMPLES = 2000


def final_returns(frame: pl.DataFrame, tail: float = 0.1) -> pl.DataFrame:
    """One row per run: ``game, alg, variant, seed, run_id, greedy, behaviour, env_step``."""
    last_step = pl.col("env_step").max().over("run_id")
    first_step = pl.col("env_step").min().over("run_id")
    window = frame.filter(pl.col("env_step") > last_step - (last_step - first_step) * tail - 1e-9)
    behaviour = (
        window.with_columns(pl.col("behaviour_return").fill_nan(None))
        .group_by("run_id")
        .agg(pl.col("behaviour_return").mean().alias("behaviour"))
    )
    greedy = (
        frame.filter(pl.col("target_return").is_finite())
        .sort("env_step")
        .group_by("run_id")
        .agg(pl.col("target_return").last().alias("greedy"))
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


def bootstrap_ci(values: np.ndarray, statistic=np.mean, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile 95 % bootstrap CI of ``statistic`` over ``values`` (NaN for no values)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    samples = values[rng.integers(0, values.size, (resamples, values.size))]
    stats = np.apply_along_axis(statistic, 1, samples) if statistic is not np.mean else samples.mean(axis=1)
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


def per_game_table(finals: pl.DataFrame, resamples: int = RESAMPLES) -> pl.DataFrame:
    """Per game and variant, for greedy and behaviour: mean, standard error, 95 % bootstrap CI, seeds."""
    rows = []
    for (game, variant), group in finals.group_by(["game", "variant"], maintain_order=True):
        row = {"game": game, "variant": variant, "seeds": group.height}
        for policy in POLICIES:
            values = group[policy].drop_nulls().drop_nans().to_numpy()
            n = values.size
            row[f"{policy}_mean"] = float(values.mean()) if n else None
            row[f"{policy}_se"] = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else None
            low, high = bootstrap_ci(values, resamples=resamples)
            row[f"{policy}_ci_low"], row[f"{policy}_ci_high"] = low, high
        rows.append(row)
    return pl.DataFrame(rows).sort("game", "variant")


def normalise_scores(finals: pl.DataFrame, column: str = "greedy") -> pl.DataFrame:
    """Add ``score``: min-max normalised ``column`` per game over every run in ``finals``."""
    low = pl.col(column).min().over("game")
    high = pl.col(column).max().over("game")
    return finals.with_columns(
        score=pl.when(high > low).then((pl.col(column) - low) / (high - low)).otherwise(0.5)
    )


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean after trimming floor(n/4) values from each end."""
    values = np.sort(np.asarray(values, np.float64))
    cut = values.size // 4
    kept = values[cut : values.size - cut]
    return float(kept.mean()) if kept.size else float("nan")


def _by_game(scores: pl.DataFrame, variant: str) -> list[np.ndarray]:
    part = scores.filter(pl.col("variant") == variant)
    return [g["score"].drop_nulls().drop_nans().to_numpy() for _, g in part.group_by("game", maintain_order=True)]


def stratified_iqm(per_game: list[np.ndarray], resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """IQM of the pooled scores and its stratified-bootstrap 95 % CI."""
    per_game = [g for g in per_game if g.size]
    if not per_game:
        return float("nan"), float("nan"), float("nan")
    point = iqm(np.concatenate(per_game))
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for b in range(resamples):
        stats[b] = iqm(np.concatenate([g[rng.integers(0, g.size, g.size)] for g in per_game]))
    low, high = np.percentile(stats, [2.5, 97.5])
    return point, float(low), float(high)


def _p_greater(x: np.ndarray, y: np.ndarray) -> float:
    diff = x[:, None] - y[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def probability_of_improvement(
    finals: pl.DataFrame, better: str, worse: str, column: str = "greedy", resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float] | None:
    """P(``better`` > ``worse``) averaged over the games both have, with a bootstrap 95 % CI (None if no shared game)."""
    pairs = []
    for game in sorted(set(finals["game"].to_list())):
        part = finals.filter(pl.col("game") == game)
        x = part.filter(pl.col("variant") == better)[column].drop_nulls().drop_nans().to_numpy()
        y = part.filter(pl.col("variant") == worse)[column].drop_nulls().drop_nans().to_numpy()
        if x.size and y.size:
            pairs.append((x, y))
    if not pairs:
        return None
    point = float(np.mean([_p_greater(x, y) for x, y in pairs]))
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for b in range(resamples):
        stats[b] = np.mean(
            [_p_greater(x[rng.integers(0, x.size, x.size)], y[rng.integers(0, y.size, y.size)]) for x, y in pairs]
        )
    low, high = np.percentile(stats, [2.5, 97.5])
    return point, float(low), float(high)


def iqm_difference(
    finals: pl.DataFrame, better: str, worse: str, column: str = "greedy", resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float] | None:
    """IQM(``better``) - IQM(``worse``) of min-max normalised scores, with a stratified bootstrap 95 % CI
    (seeds resampled within each game, independently per variant); None if a variant is missing."""
    scores = normalise_scores(finals, column)
    x, y = _by_game(scores, better), _by_game(scores, worse)
    x, y = [g for g in x if g.size], [g for g in y if g.size]
    if not x or not y:
        return None
    point = iqm(np.concatenate(x)) - iqm(np.concatenate(y))
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for b in range(resamples):
        draw = lambda games: np.concatenate([g[rng.integers(0, g.size, g.size)] for g in games])  # noqa: E731
        stats[b] = iqm(draw(x)) - iqm(draw(y))
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(point), float(low), float(high)


def aggregate(
    finals: pl.DataFrame, resamples: int = RESAMPLES, better: str = "pdqn", worse: str | list[str] = "pqn"
) -> dict:
    """Across games: IQM of normalised greedy and behaviour scores per variant; for ``better`` against each
    baseline in ``worse``: the probability of improvement and the IQM difference, each with a 95 % CI."""
    baselines = [worse] if isinstance(worse, str) else list(worse)
    out: dict = {
        "normalisation": "min-max per game over all runs in the comparison",
        "iqm": {},
        "probability_of_improvement": {},
        "comparisons": [],
    }
    for policy in POLICIES:
        scores = normalise_scores(finals, policy)
        for variant in sorted(set(finals["variant"].to_list())):
            point, low, high = stratified_iqm(_by_game(scores, variant), resamples)
            out["iqm"].setdefault(variant, {})[policy] = {"iqm": point, "ci_low": low, "ci_high": high}
        for baseline in baselines:
            result = probability_of_improvement(finals, better, baseline, policy, resamples)
            difference = iqm_difference(finals, better, baseline, policy, resamples)
            if result is None or difference is None:
                continue
            if baseline == baselines[0]:
                out["probability_of_improvement"][policy] = {
                    "better": better, "worse": baseline, "p": result[0], "ci_low": result[1], "ci_high": result[2],
                }
            out["comparisons"].append({
                "policy": policy, "better": better, "worse": baseline,
                "p": result[0], "p_ci_low": result[1], "p_ci_high": result[2],
                "iqm_difference": difference[0], "difference_ci_low": difference[1], "difference_ci_high": difference[2],
            })
    return out
