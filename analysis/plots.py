"""Plots of a report, written as PNG files (matplotlib, headless Agg):

- ``learning_curves``: one panel per game, behaviour (solid) and greedy (dashed) policy of each variant,
  mean over seeds with a shaded 95 % bootstrap band, each seed's curve smoothed over ``window`` points;
- ``profile_plot``: rliable-style performance profiles (fraction of runs with normalised score > τ);
- ``interval_plot``: IQM, median, mean and optimality gap of normalised scores per variant with 95 % CIs;
- ``iqm_curve_plot``: IQM of normalised greedy return over env steps with its 95 % CI band.

The numbers behind the last three come from ``analysis.stats``; these functions only draw them."""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from pdqn.metrics import BEHAVIOUR_RETURN, TARGET_RETURN  # noqa: E402

STYLES = {BEHAVIOUR_RETURN.name: ("-", "behaviour"), TARGET_RETURN.name: ("--", "greedy")}


def smoothed(frame: pl.DataFrame, column: str, window: int) -> pl.DataFrame:
    """Per run: the finite values of ``column``, a trailing rolling mean over ``window`` of them."""
    return (
        frame.filter(pl.col(column).is_finite())
        .sort("run_id", "env_step")
        .with_columns(value=pl.col(column).rolling_mean(window_size=max(1, window), min_samples=1).over("run_id"))
        .select("run_id", "seed", "env_step", "value")
    )


def band(curves: pl.DataFrame, resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """env steps, mean over runs and a 95 % bootstrap band (runs resampled) at each step."""
    wide = curves.pivot(on="run_id", index="env_step", values="value", aggregate_function="mean").sort("env_step")
    steps = wide["env_step"].to_numpy()
    matrix = wide.drop("env_step").to_numpy().astype(np.float64).T  # [runs, steps]
    # A step where no resampled run has a value is NaN by design (the curve has a gap there); numpy's
    # "Mean of empty slice" warnings about it are noise.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(matrix, axis=0)
        n = matrix.shape[0]
        if n < 2:
            return steps, mean, mean, mean
        rng = np.random.default_rng(seed)
        samples = np.nanmean(matrix[rng.integers(0, n, (resamples, n))], axis=1)
        low, high = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    return steps, mean, low, high


def learning_curves(
    frame: pl.DataFrame,
    out: str | Path,
    window: int = 10,
    reference: pl.DataFrame | None = None,
    title: str = "",
) -> Path:
    """Write the PNG and return its path."""
    data = frame if reference is None else pl.concat([frame, reference], how="diagonal_relaxed")
    games = sorted(set(frame["game"].to_list()))
    variants = sorted(set(data["variant"].to_list()))
    colours = {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(variants)}
    fig, axes = plt.subplots(1, len(games), figsize=(5.2 * len(games), 4.0), squeeze=False)
    for ax, game in zip(axes[0], games):
        part = data.filter(pl.col("game") == game)
        for variant in variants:
            runs = part.filter(pl.col("variant") == variant)
            if runs.is_empty():
                continue
            for column, (style, policy) in STYLES.items():
                if column not in runs.columns:
                    continue
                curves = smoothed(runs, column, window if column == BEHAVIOUR_RETURN.name else max(1, window // 5))
                if curves.is_empty():
                    continue
                steps, mean, low, high = band(curves)
                seeds = curves["run_id"].n_unique()
                ax.plot(steps, mean, style, color=colours[variant], label=f"{variant} {policy} (n={seeds})")
                ax.fill_between(steps, low, high, color=colours[variant], alpha=0.15, linewidth=0)
        ax.set_title(game)
        ax.set_xlabel("env steps per seed")
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title or f"mean over seeds, 95 % bootstrap band; behaviour smoothed over {window} updates")
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def variant_colours(variants: list[str]) -> dict[str, tuple]:
    """One tab10 colour per variant, in sorted order, so a variant has the same colour in every plot."""
    return {v: plt.get_cmap("tab10")(i % 10) for i, v in enumerate(sorted(variants))}


def _save(fig, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _anchor_lines(ax, axis: str) -> None:
    """Dotted lines at the anchors: 0 = random policy, 1 = reference."""
    line = ax.axvline if axis == "x" else ax.axhline
    for value, name in ((0.0, "random"), (1.0, "reference")):
        line(value, color="grey", linestyle=":", linewidth=1)
        if axis == "x":
            ax.annotate(name, (value, 0.02), xycoords=("data", "axes fraction"), fontsize=7, color="grey",
                        rotation=90, ha="right", va="bottom")  # fmt: skip
        else:
            ax.annotate(name, (0.0, value), xycoords=("axes fraction", "data"), fontsize=7, color="grey", va="bottom")


def profile_plot(profiles: pl.DataFrame, out: str | Path) -> Path:
    """Performance profiles (``analysis.stats.performance_profiles``), one panel per policy, 95 % bands."""
    policies = list(dict.fromkeys(profiles["policy"].to_list()))
    colours = variant_colours(profiles["variant"].unique().to_list())
    fig, axes = plt.subplots(1, len(policies), figsize=(5.6 * len(policies), 4.2), squeeze=False)
    for ax, policy in zip(axes[0], policies):
        for variant, colour in colours.items():
            part = profiles.filter((pl.col("policy") == policy) & (pl.col("variant") == variant)).sort("tau")
            if part.is_empty():
                continue
            tau = part["tau"].to_numpy()
            ax.plot(tau, part["fraction"].to_numpy(), color=colour, label=variant)
            ax.fill_between(tau, part["ci_low"].to_numpy(), part["ci_high"].to_numpy(), color=colour, alpha=0.2, linewidth=0)
        _anchor_lines(ax, "x")
        ax.set_title(f"{policy} policy")
        ax.set_xlabel("normalised score τ")
        ax.set_ylabel("fraction of runs with score > τ")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("performance profiles over all (game, seed) runs; 95 % stratified-bootstrap bands")
    fig.tight_layout()
    return _save(fig, out)


def interval_plot(intervals: dict, out: str | Path) -> Path:
    """Interval estimates (``analysis.stats.interval_estimates``): a row per policy, a column per aggregate;
    each variant's 95 % CI as a bar, its point estimate as a black tick."""
    variants = sorted(intervals)
    policies = list(next(iter(intervals.values())))
    metrics = list(next(iter(next(iter(intervals.values())).values())))
    colours = variant_colours(variants)
    fig, axes = plt.subplots(len(policies), len(metrics), figsize=(3.3 * len(metrics) + 1.5, 0.45 * len(variants) * len(policies) + 1.6), squeeze=False)
    for row, policy in enumerate(policies):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            for y, variant in enumerate(variants):
                e = intervals[variant][policy][metric]
                ax.barh(y, e["ci_high"] - e["ci_low"], left=e["ci_low"], height=0.6, color=colours[variant], alpha=0.75)
                ax.plot([e["point"]] * 2, [y - 0.3, y + 0.3], color="black", linewidth=1.5)
            ax.set_yticks(range(len(variants)), variants if col == 0 else [""] * len(variants), fontsize=8)
            ax.set_title(f"{metric} ({policy})", fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=8)
    fig.supxlabel("normalised score (0 = random policy, 1 = reference); bars: 95 % stratified-bootstrap CI", fontsize=9)
    fig.tight_layout()
    return _save(fig, out)


def iqm_curve_plot(curve: pl.DataFrame, out: str | Path) -> Path:
    """IQM of normalised greedy return over env steps (``analysis.stats.iqm_over_steps``), 95 % CI bands."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for variant, colour in variant_colours(curve["variant"].unique().to_list()).items():
        part = curve.filter(pl.col("variant") == variant).sort("env_step")
        steps = part["env_step"].to_numpy()
        ax.plot(steps, part["iqm"].to_numpy(), marker=".", color=colour, label=variant)
        ax.fill_between(steps, part["ci_low"].to_numpy(), part["ci_high"].to_numpy(), color=colour, alpha=0.2, linewidth=0)
    _anchor_lines(ax, "y")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e6:g}M"))
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel("IQM of normalised greedy return")
    ax.set_title("IQM over games and seeds at each greedy evaluation; 95 % stratified-bootstrap band", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, out)
