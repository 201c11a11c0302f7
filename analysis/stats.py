"""Mean ± standard error of the final returns per seed (:mod:`analysis.finals`, which defines them) with
bootstrap CIs, and the cross-game aggregates of rliable (Agarwal et al. 2021): IQM, median, mean and optimality
gap of normalised scores, performance profiles and the probability of improvement, all on polars frames.
``tests/test_analysis.py`` checks the IQM, its stratified-bootstrap CI and the probability of improvement
against rliable on one score matrix.

Definitions:

- normalised score: ``(x - random) / (reference - random)`` with fixed per-game anchors
  (``analysis.anchors``: 0 = a uniformly random policy, 1 = the reference score named in
  ``analysis/anchors/reference.csv``), so a run's score does not depend on the other runs compared;
- IQM: mean of the middle 50 % of the pooled (game, seed) normalised scores (trimming
  ``floor(n/4)`` from each end); median and mean: of the per-game mean scores; optimality gap: mean
  shortfall below 1 of the pooled scores, ``mean(1 - min(score, 1))``; each with a stratified-bootstrap
  95 % percentile CI (seeds resampled with replacement within each game, ``RESAMPLES`` times);
- performance profile at τ: the fraction of pooled (game, seed) normalised scores above τ, with the same
  stratified-bootstrap band;
- probability of improvement P(X > Y): for each game, the fraction of seed pairs (x, y) with x > y,
  ties counting 1/2, averaged over games (raw returns: no normalisation needed); its CI resamples the
  seeds of X and of Y within each game.
"""

from collections.abc import Callable

import numpy as np
import polars as pl

from pdqn.metrics import TARGET_RETURN

from analysis.anchors import anchors_for, reference_name
from analysis.finals import MEASURES

RESAMPLES = 2000


def measures_of(finals: pl.DataFrame) -> list[str]:
    """The measures of ``analysis.finals.MEASURES`` that ``finals`` has, in their order."""
    return [m for m in MEASURES if m in finals.columns]


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
    """Per game and variant, for each measure: mean, standard error, 95 % bootstrap CI, seeds."""
    rows = []
    for (game, variant), group in finals.group_by(["game", "variant"], maintain_order=True):
        row = {"game": game, "variant": variant, "seeds": group.height}
        for policy in measures_of(finals):
            values = group[policy].drop_nulls().drop_nans().to_numpy()
            n = values.size
            row[f"{policy}_mean"] = float(values.mean()) if n else None
            row[f"{policy}_se"] = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else None
            low, high = bootstrap_ci(values, resamples=resamples)
            row[f"{policy}_ci_low"], row[f"{policy}_ci_high"] = low, high
        rows.append(row)
    return pl.DataFrame(rows).sort("game", "variant")


def normalise_scores(finals: pl.DataFrame, column: str = "greedy", anchors: pl.DataFrame | None = None) -> pl.DataFrame:
    """Add ``score``: ``column`` normalised per game by the fixed anchors, (x - random) / (reference - random).

    ``anchors`` (``game, random, reference``) defaults to the committed ``analysis/anchors`` files; a game
    without anchors raises AnalysisError."""
    table = anchors_for(sorted(set(finals["game"].to_list())), anchors).select("game", "random", "reference")
    return (
        finals.join(table, on="game", how="left")
        .with_columns(score=(pl.col(column) - pl.col("random")) / (pl.col("reference") - pl.col("random")))
        .drop("random", "reference")
    )


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean after trimming floor(n/4) values from each end."""
    values = np.asarray(values, np.float64)
    return float(_iqm_rows(values[None, :])[0]) if values.size else float("nan")


def _iqm_rows(matrix: np.ndarray) -> np.ndarray:
    """IQM of each row of ``matrix`` (rows are bootstrap resamples of the pooled scores)."""
    cut = matrix.shape[1] // 4
    return np.sort(matrix, axis=1)[:, cut : matrix.shape[1] - cut].mean(axis=1)


# Cross-game aggregates of per-game score arrays; each array is [resamples, seeds of that game], each
# aggregate returns one value per resample. The definitions match rliable's metrics on a runs x games matrix.
AGGREGATES: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
    "IQM": lambda games: _iqm_rows(np.concatenate(games, axis=1)),
    "median": lambda games: np.median(np.stack([g.mean(axis=1) for g in games], axis=1), axis=1),
    "mean": lambda games: np.stack([g.mean(axis=1) for g in games], axis=1).mean(axis=1),
    "optimality gap": lambda games: 1.0 - np.minimum(np.concatenate(games, axis=1), 1.0).mean(axis=1),
}


def _by_game(scores: pl.DataFrame, variant: str) -> list[np.ndarray]:
    part = scores.filter(pl.col("variant") == variant)
    games = [g["score"].drop_nulls().drop_nans().to_numpy() for _, g in part.group_by("game", maintain_order=True)]
    return [g for g in games if g.size]


def _resample(per_game: list[np.ndarray], resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified bootstrap: per game, ``resamples`` draws of its seeds with replacement, [resamples, seeds]."""
    return [g[rng.integers(0, g.size, (resamples, g.size))] for g in per_game]


def _ci(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95 % percentile interval over the first axis (the resamples)."""
    low, high = np.percentile(stats, [2.5, 97.5], axis=0)
    return low, high


def interval_estimate(
    per_game: list[np.ndarray], statistic: str = "IQM", resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """An aggregate of ``AGGREGATES`` over the per-game scores and its stratified-bootstrap 95 % CI (NaN if empty)."""
    if not per_game:
        return float("nan"), float("nan"), float("nan")
    aggregate_of = AGGREGATES[statistic]
    point = aggregate_of([g[None, :] for g in per_game])[0]
    low, high = _ci(aggregate_of(_resample(per_game, resamples, np.random.default_rng(seed))))
    return float(point), float(low), float(high)


def stratified_iqm(per_game: list[np.ndarray], resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """IQM of the pooled scores and its stratified-bootstrap 95 % CI."""
    return interval_estimate(per_game, "IQM", resamples, seed)


def performance_profile(
    per_game: list[np.ndarray], taus: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of pooled (game, seed) scores above each τ, with a stratified-bootstrap 95 % band."""
    taus = np.asarray(taus, np.float64)
    pooled = np.concatenate(per_game)
    point = (pooled[:, None] > taus[None, :]).mean(axis=0)
    draws = np.concatenate(_resample(per_game, resamples, np.random.default_rng(seed)), axis=1)
    low, high = _ci((draws[:, :, None] > taus[None, None, :]).mean(axis=1))
    return point, low, high


def performance_profiles(
    finals: pl.DataFrame, resamples: int = RESAMPLES, anchors: pl.DataFrame | None = None, taus: np.ndarray | None = None
) -> pl.DataFrame:
    """Per policy, variant and τ: the fraction of (game, seed) normalised scores above τ with its 95 % band.

    Default τ: 101 points from min(0, lowest score) to the highest score, the same for every variant."""
    scores = {policy: normalise_scores(finals, policy, anchors) for policy in measures_of(finals)}
    if taus is None:
        pooled = np.concatenate([s["score"].drop_nulls().drop_nans().to_numpy() for s in scores.values()])
        taus = np.linspace(min(0.0, float(pooled.min())), max(1.0, float(pooled.max())), 101)
    frames = []
    for policy, policy_scores in scores.items():
        for variant in sorted(set(finals["variant"].to_list())):
            per_game = _by_game(policy_scores, variant)
            if not per_game:
                continue
            point, low, high = performance_profile(per_game, taus, resamples)
            frames.append(pl.DataFrame({"policy": policy, "variant": variant, "tau": taus, "fraction": point, "ci_low": low, "ci_high": high}))
    return pl.concat(frames)


def _p_greater(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per row: the fraction of pairs (x_i, y_j) with x_i > y_j, ties 1/2; x is [rows, n_x], y is [rows, n_y]."""
    diff = x[:, :, None] - y[:, None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2))


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
    point = float(np.mean([_p_greater(x[None, :], y[None, :])[0] for x, y in pairs]))
    rng = np.random.default_rng(seed)
    per_game = [_p_greater(*_resample([x, y], resamples, rng)) for x, y in pairs]
    low, high = _ci(np.mean(per_game, axis=0))
    return point, float(low), float(high)


def iqm_difference(
    finals: pl.DataFrame,
    better: str,
    worse: str,
    column: str = "greedy",
    resamples: int = RESAMPLES,
    seed: int = 0,
    anchors: pl.DataFrame | None = None,
) -> tuple[float, float, float] | None:
    """IQM(``better``) - IQM(``worse``) of anchor-normalised scores over the games both have, with a stratified
    bootstrap 95 % CI (seeds resampled within each game, independently per variant); None if they share no game."""
    scores = normalise_scores(finals, column, anchors)
    shared = set(scores.filter(pl.col("variant") == better)["game"]) & set(scores.filter(pl.col("variant") == worse)["game"])
    scores = scores.filter(pl.col("game").is_in(sorted(shared)))
    x, y = _by_game(scores, better), _by_game(scores, worse)
    if not x or not y:
        return None
    iqm_of = AGGREGATES["IQM"]
    point = iqm_of([g[None, :] for g in x])[0] - iqm_of([g[None, :] for g in y])[0]
    rng = np.random.default_rng(seed)
    low, high = _ci(iqm_of(_resample(x, resamples, rng)) - iqm_of(_resample(y, resamples, rng)))
    return float(point), float(low), float(high)


def iqm_over_steps(
    frame: pl.DataFrame, resamples: int = RESAMPLES, anchors: pl.DataFrame | None = None, seed: int = 0
) -> pl.DataFrame:
    """Per variant and env step with greedy evaluations: IQM of the normalised greedy returns of the runs
    evaluated there, with its stratified-bootstrap 95 % CI. Steps where some game of the variant has no
    evaluation are left out (an IQM over fewer games would not be comparable along the curve)."""
    column = TARGET_RETURN.name
    evals = frame.filter(pl.col(column).is_finite()).select("game", "variant", "run_id", "env_step", pl.col(column).alias("greedy"))
    scores = normalise_scores(evals, "greedy", anchors)
    rows = []
    for (variant,), part in scores.group_by("variant", maintain_order=True):
        games = part["game"].n_unique()
        for (step,), at in part.group_by("env_step"):
            if at["game"].n_unique() < games:
                continue
            point, low, high = stratified_iqm(_by_game(at, str(variant)), resamples, seed)
            rows.append({"variant": variant, "env_step": step, "iqm": point, "ci_low": low, "ci_high": high, "runs": at.height})
    schema = {"variant": pl.Utf8, "env_step": pl.Int64, "iqm": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "runs": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort("variant", "env_step")


def interval_estimates(
    finals: pl.DataFrame, resamples: int = RESAMPLES, anchors: pl.DataFrame | None = None
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """variant -> policy -> aggregate (IQM, median, mean, optimality gap) -> ``point, ci_low, ci_high``."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for policy in measures_of(finals):
        scores = normalise_scores(finals, policy, anchors)
        for variant in sorted(set(finals["variant"].to_list())):
            per_game = _by_game(scores, variant)
            estimates = {name: interval_estimate(per_game, name, resamples) for name in AGGREGATES}
            out.setdefault(variant, {})[policy] = {
                name: {"point": p, "ci_low": low, "ci_high": high} for name, (p, low, high) in estimates.items()
            }
    return out


def aggregate(
    finals: pl.DataFrame,
    resamples: int = RESAMPLES,
    better: str = "pdqn",
    worse: str | list[str] = "pqn",
    anchors: pl.DataFrame | None = None,
) -> dict:
    """Across games: the anchors used; per variant and policy the interval estimates (IQM, median, mean,
    optimality gap of normalised scores); for ``better`` against each baseline in ``worse``: the
    probability of improvement and the IQM difference, each with a 95 % CI."""
    baselines = [worse] if isinstance(worse, str) else list(worse)
    games = sorted(set(finals["game"].to_list()))
    used = anchors_for(games, anchors)
    intervals = interval_estimates(finals, resamples, anchors)
    out: dict = {
        "normalisation": "(x - random) / (reference - random) per game, fixed anchors",
        "reference": reference_name() if anchors is None else "anchors given by the caller",
        "anchors": {row["game"]: {"random": row["random"], "reference": row["reference"]} for row in used.iter_rows(named=True)},
        "iqm": {
            v: {policy: {"iqm": e["IQM"]["point"], "ci_low": e["IQM"]["ci_low"], "ci_high": e["IQM"]["ci_high"]} for policy, e in by_policy.items()}
            for v, by_policy in intervals.items()
        },
        "intervals": intervals,
        "probability_of_improvement": {},
        "comparisons": [],
    }
    for policy in measures_of(finals):
        for baseline in baselines:
            result = probability_of_improvement(finals, better, baseline, policy, resamples)
            difference = iqm_difference(finals, better, baseline, policy, resamples, anchors=anchors)
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
