"""Write README.md's headline results (between the ``<!-- results -->`` markers) from the committed report of the
held-out study (experiments/study-heldout/report) and the published model-based figures beside it
(experiments/study-heldout/model_based_1m.csv). Run from the repository root after the study's analysis.report
command (experiments/study-heldout/README.md):

    python experiments/readme_results.py
"""

import json
from pathlib import Path

import polars as pl

from analysis.table import replace_marked
from pdqn.config import GAMES

STUDY = Path("experiments/study-heldout/report")
PUBLISHED = Path("experiments/study-heldout/model_based_1m.csv")
README = Path("README.md")
COLUMNS = {
    "pqn": "PQN", "pqn-matched": "compute-matched PQN", "pqn-wallclock": "wall-clock-matched PQN", "pdqn": "PDQN",
}  # fmt: skip


def cell(rows: pl.DataFrame, game: str, variant: str) -> str:
    """``mean ± s.e.`` of the greedy return, or a dash where the run is not (yet) in the report."""
    row = rows.filter((pl.col("game") == game) & (pl.col("variant") == variant))
    if row.is_empty():
        return "–"
    return f"{row['greedy_mean'][0]:.1f} ± {row['greedy_se'][0]:.1f}"


def table(report: Path, columns: dict[str, str]) -> str:
    rows = pl.read_parquet(report / "table.parquet")
    published = dict(pl.read_csv(PUBLISHED).select("game", "return").iter_rows())
    header = list(columns.values()) + ["model-based, published"]
    lines = ["| game | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    for game in GAMES:
        if not rows.filter(pl.col("game") == game).is_empty():
            ours = [cell(rows, game, v) for v in columns]
            lines.append(f"| {game} | " + " | ".join(ours + [f"{published[game]:.1f}" if game in published else "–"]) + " |")
    return "\n".join(lines)


def differences(report: Path, better: str, names: dict[str, str]) -> str:
    """IQM differences of normalised return, ``better`` minus each other variant, greedy and behaviour."""
    comparisons = json.loads((report / "aggregate.json").read_text())["comparisons"]
    parts = []
    for c in comparisons:
        if c["better"] == better and c["worse"] in names:
            parts.append(
                f"{c['policy']} vs {names[c['worse']]} {c['iqm_difference']:+.2f} "
                f"[{c['difference_ci_low']:+.2f}, {c['difference_ci_high']:+.2f}]"
            )
    return "; ".join(parts)


def coverage(report: Path) -> str:
    """Which games the report holds, said only where it is not all of them."""
    games = set(pl.read_parquet(report / "table.parquet")["game"])
    missing = [game for game in GAMES if game not in games]
    return f"; not in the report yet: {', '.join(missing)}" if missing else ""


def unfinished(report: Path, columns: dict[str, str]) -> str:
    """A note where some variant of a reported game has not finished."""
    rows = pl.read_parquet(report / "table.parquet")
    games = set(rows["game"])
    missing = any(cell(rows, game, v) == "–" for game in games for v in columns)
    return " A dash in our columns: that run has not finished." if missing else ""


def block() -> str:
    return f"""**Held-out study** (`experiments/study-heldout/`): greedy return after 1M env steps, mean ± s.e. over fresh
seeds 10-14 (128 evaluation episodes per seed{coverage(STUDY)}). PDQN is the default when the study ran: the anchored
counterfactual planner with one learned MLP model, every counterfactual row counted, in place of a real one. Today's
default counts a row only where the model reproduces the real step (the gate) and adds the rows to full real
minibatches (both chosen on tuning seeds afterwards; their held-out runs are in the study's README). Compute-matched PQN takes as many extra real gradient steps as PDQN's planner
(20 per update), wall-clock-matched PQN as many as fit in PDQN's time per update (42).{unfinished(STUDY, COLUMNS)}

{table(STUDY, COLUMNS)}

IQM difference of normalised return (0 = random policy, 1 = PQN's score in the earlier study), PDQN minus the
others, 95 % stratified-bootstrap CI: {differences(STUDY, "pdqn", COLUMNS)}.

The published column is the best model-based agent we know on gymnax MinAtar at 1M env steps (Dedieu et al. 2025,
a transformer world model with Dyna; `experiments/study-heldout/model_based_1m.csv`). It is quoted, not re-run:
its agent (a CNN+RNN policy trained on real and imagined data), its evaluation protocol and its seeds differ from
ours, and it reports no Seaquest figure."""


def main() -> None:
    replace_marked(README, "results", block())


if __name__ == "__main__":
    main()
