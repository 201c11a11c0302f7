"""Write README.md's headline results (between the ``<!-- results -->`` markers) from two committed reports:
the held-out low-data study (experiments/study-1m/report-candidate) and the perfect-model diagnostic
(experiments/oracle-diagnostic/report). Run from the repository root after their analysis.report commands:

    python experiments/readme_results.py
"""

import json
from pathlib import Path

import polars as pl

from analysis.table import replace_marked
from pdqn.config import GAMES

STUDY = Path("experiments/study-1m/report-candidate")
DIAGNOSTIC = Path("experiments/oracle-diagnostic/report")
README = Path("README.md")
STUDY_COLUMNS = {"pqn": "PQN", "pqn-matched": "compute-matched PQN", "pdqn-ens3-gate-1-batch-mean": "PDQN"}
DIAGNOSTIC_COLUMNS = {
    "pqn": "PQN", "pqn-matched": "compute-matched PQN", "pdqn": "PDQN", "pdqn-oracle": "PDQN, perfect model",
}  # fmt: skip


def cell(rows: pl.DataFrame, game: str, variant: str) -> str:
    """``mean ± s.e.`` of the greedy return, or a dash where the run is not (yet) in the report."""
    row = rows.filter((pl.col("game") == game) & (pl.col("variant") == variant))
    if row.is_empty():
        return "–"
    return f"{row['greedy_mean'][0]:.1f} ± {row['greedy_se'][0]:.1f}"


def table(report: Path, columns: dict[str, str]) -> str:
    rows = pl.read_parquet(report / "table.parquet")
    lines = ["| game | " + " | ".join(columns.values()) + " |", "|---|" + "---:|" * len(columns)]
    for game in GAMES:
        if not rows.filter(pl.col("game") == game).is_empty():
            lines.append(f"| {game} | " + " | ".join(cell(rows, game, v) for v in columns) + " |")
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
    return f"; not run yet: {', '.join(missing)}" if missing else ""


def block() -> str:
    study = table(STUDY, STUDY_COLUMNS)
    study_diff = differences(STUDY, "pdqn-ens3-gate-1-batch-mean", STUDY_COLUMNS)
    diagnostic = table(DIAGNOSTIC, DIAGNOSTIC_COLUMNS)
    diagnostic_diff = differences(DIAGNOSTIC, "pdqn-oracle", DIAGNOSTIC_COLUMNS)
    return f"""**Held-out study** (`docs/study-1m.md`): greedy return after 1M env steps, mean ± s.e. over held-out seeds
5-9 (128 evaluation episodes per seed). PDQN is today's default (Dyna with a gated ensemble of 3 learned models).

{study}

IQM difference of normalised return (0 = random policy, 1 = PQN's study score), PDQN minus the others, 95 %
stratified-bootstrap CI: {study_diff}.

**Perfect-model diagnostic** (`experiments/oracle-diagnostic/`, tuning seeds 0-2{coverage(DIAGNOSTIC)}): the same
planner with the real game as its model.{" A dash: that run has not finished." if "–" in diagnostic else ""}

{diagnostic}

IQM difference, PDQN with the perfect model minus the others: {diagnostic_diff}."""


def main() -> None:
    replace_marked(README, "results", block())


if __name__ == "__main__":
    main()
