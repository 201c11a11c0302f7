"""Does the planner component learn as the code before it did? Today's default PDQN (gated ensemble of 3) on
Asterix and Freeway, seeds 0-2, 1M env steps, rerun with the refactored code (``runs/<game>-pdqn``), against the
committed runs of the same configuration made by the code before the refactor
(``experiments/pdqn-ablations/runs/<game>-pdqn-ens3-gate-1-batch-mean``; the committed ``asterix-pdqn-defaults-gap``
is the same random stream again, identical to it, so it is no second draw).

    python experiments/oracle-diagnostic/same_as_before.py     (writes same_as_before.md beside this file)

Judged by the difference of the mean final return over seeds (new minus old) with a 95 % bootstrap CI that
resamples the seeds of each side, and Welch's t-test: "within seed noise" means the CI contains 0. Random
streams differ between the code versions (the keys are split differently), so the runs are new draws of the same
protocol, not copies.
"""

from pathlib import Path

import numpy as np
import polars as pl

from analysis import final_returns, load_run_dirs

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PAIRS = [
    ("asterix", "runs/asterix-pdqn", "experiments/pdqn-ablations/runs/asterix-pdqn-ens3-gate-1-batch-mean"),
    ("freeway", "runs/freeway-pdqn", "experiments/pdqn-ablations/runs/freeway-pdqn-ens3-gate-1-batch-mean"),
]
RESAMPLES = 20_000


def finals(path: Path) -> pl.DataFrame:
    return final_returns(load_run_dirs([path])).sort("seed")


def difference_ci(new: np.ndarray, old: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    draws = new[rng.integers(0, new.size, (RESAMPLES, new.size))].mean(1) - old[rng.integers(0, old.size, (RESAMPLES, old.size))].mean(1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(new.mean() - old.mean()), float(low), float(high)


def welch_p(new: np.ndarray, old: np.ndarray) -> float:
    from scipy import stats

    return float(stats.ttest_ind(new, old, equal_var=False).pvalue)


def row(game: str, new_path: str, old_path: str, policy: str) -> str:
    new, old = finals(HERE / new_path)[policy].to_numpy(), finals(ROOT / old_path)[policy].to_numpy()
    diff, low, high = difference_ci(new, old)
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    verdict = "yes" if low <= 0 <= high else "no"
    return (
        f"| {game} | {policy} | {fmt(new)} ({new.mean():.1f}) | `{Path(old_path).name}`: {fmt(old)} ({old.mean():.1f}) "
        f"| {diff:+.1f} [{low:+.1f}, {high:+.1f}] | {welch_p(new, old):.2f} | {verdict} |"
    )


def main() -> None:
    lines = [
        "| game | policy | refactored code, seeds 0-2 (mean) | code before the refactor, seeds 0-2 (mean) | new - old [95 % CI] | Welch p | within seed noise |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for game, new_path, old_path in PAIRS:
        for policy in ("greedy", "behaviour"):
            lines.append(row(game, new_path, old_path, policy))
    text = "\n".join(lines) + "\n"
    (HERE / "same_as_before.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
