"""The fixed per-game anchors of normalised scores: 0 = a uniformly random policy, 1 = a named reference.

    normalised score = (return - random) / (reference - random)

Both anchors are committed CSV files in ``analysis/anchors/`` (shipped as package data), so a run's
normalised score does not depend on which other runs are compared with it:

- ``random_policy.csv``: mean return of 1000 uniformly random episodes per game on the project's own
  environments (gymnax 1.0.1 MinAtar, minimal action sets, no sticky actions), made by
  ``python -m analysis.random_policy --episodes 1000 --seed 0 --out analysis/anchors/random_policy.csv``;
- ``reference.csv``: the reference score per game and where it comes from (``source``, ``budget``,
  ``protocol`` columns). Today it is this project's PQN at 1M env steps: the mean final greedy return of
  the five held-out seeds (5-9) of ``experiments/study-1m`` (the low-data study's baseline, same gymnax
  environments and evaluation protocol as every run here), made by
  ``python -m analysis.anchors --runs experiments/study-1m/runs --variant pqn --out analysis/anchors/reference.csv``.
  A score of 1 therefore reads "as far above random as PQN after 1M env steps". No published table with
  all five games under this protocol could be checked when the anchors were set (the MinAtar paper,
  arXiv 1903.03176, reports its DQN results as curves only); a published reference can replace the file
  (same columns) without a code change.
"""

import argparse
import shlex
import sys
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

from analysis.load import AnalysisError

ANCHOR_DIR = Path(__file__).resolve().parent / "anchors"
RANDOM_FILE = ANCHOR_DIR / "random_policy.csv"
REFERENCE_FILE = ANCHOR_DIR / "reference.csv"


@cache
def load_anchors(random_file: Path = RANDOM_FILE, reference_file: Path = REFERENCE_FILE) -> pl.DataFrame:
    """One row per game: ``game, random, reference, reference_source`` (the committed anchor files)."""
    for file in (random_file, reference_file):
        if not file.exists():
            raise AnalysisError(f"anchor file {file} is missing (see analysis/anchors/README.md for the commands that make it)")
    random = pl.read_csv(random_file).select("game", pl.col("mean_return").alias("random"))
    reference = pl.read_csv(reference_file).select(
        "game", pl.col("reference_return").alias("reference"), pl.col("source").alias("reference_source")
    )
    anchors = random.join(reference, on="game", how="inner").sort("game")
    flat = anchors.filter(pl.col("reference") <= pl.col("random"))["game"].to_list()
    if flat:
        raise AnalysisError(f"anchors of {', '.join(flat)}: the reference score is not above the random policy's")
    return anchors


def anchors_for(games: list[str], anchors: pl.DataFrame | None = None) -> pl.DataFrame:
    """The anchors of ``games`` (from ``anchors``, default the committed files); a game without both anchors
    is an error that names the games that have them."""
    anchors = load_anchors() if anchors is None else anchors
    known = set(anchors["game"].to_list())
    missing = sorted(set(games) - known)
    if missing:
        raise AnalysisError(
            f"no score anchors for game(s) {', '.join(missing)}: anchors exist for {', '.join(sorted(known))}"
        )
    return anchors.filter(pl.col("game").is_in(games))


def reference_name() -> str:
    """The source of the reference anchor, as written in ``reference.csv`` (one source for every game)."""
    sources = load_anchors()["reference_source"].unique().to_list()
    return "; ".join(sorted(sources))


def reference_table(finals: pl.DataFrame, variant: str, source: str, command: str) -> pl.DataFrame:
    """Per game, the mean final greedy return of ``variant``'s runs in ``finals`` as a reference anchor row."""
    part = finals.filter(pl.col("variant") == variant)
    if part.is_empty():
        found = ", ".join(sorted(set(finals["variant"].to_list())))
        raise AnalysisError(f"--variant: no runs of {variant} (found: {found})")
    rows = []
    for (game,), group in part.group_by("game", maintain_order=True):
        values = group["greedy"].drop_nulls().drop_nans().to_numpy()
        rows.append({
            "game": game,
            "reference_return": float(values.mean()),
            "standard_error": float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None,
            "seeds": int(values.size),
            "source": source,
            "budget": f"{int(group['env_step'].to_numpy().max()):,} env steps per seed",
            "protocol": "mean over seeds of the final greedy evaluation (128 episodes, one per environment)",
            "command": command,
        })  # fmt: skip
    return pl.DataFrame(rows).sort("game")


def main(argv: list[str] | None = None) -> int:
    from analysis.finals import final_returns
    from analysis.load import load_run_dirs
    from pdqn.cli import fail

    parser = argparse.ArgumentParser(prog="python -m analysis.anchors", description="Write the reference anchor (score 1) from runs.")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="run dirs or folders holding them")
    parser.add_argument("--variant", default="pqn", help="the variant whose mean final greedy return is the reference (default pqn)")
    parser.add_argument("--source", default="PQN, this project, 1M env steps (experiments/study-1m, held-out seeds 5-9)", help="name of the reference, written beside each score")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    try:
        table = reference_table(final_returns(load_run_dirs(args.runs)), args.variant, args.source, shlex.join(["python", "-m", "analysis.anchors", *given]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.write_csv(args.out)
    except AnalysisError as err:
        fail(str(err))
    print(table.select("game", "reference_return", "standard_error", "seeds"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
