"""Learning curves: one panel per game, behaviour (solid) and greedy (dashed) policy of each variant,
mean over seeds with a shaded 95 % bootstrap band, each seed's curve smoothed over ``window`` points."""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

STYLES = {"behaviour_return": ("-", "behaviour"), "target_return": ("--", "greedy")}


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
                curves = smoothed(runs, column, window if column == "behaviour_return" else max(1, window // 5))
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
