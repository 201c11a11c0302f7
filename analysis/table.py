"""A markdown table of per-game results and the cross-game aggregates, ready to paste into README.md."""

import re
from pathlib import Path

import polars as pl

from analysis.finals import MEASURES


def replace_marked(document: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name -->`` and ``<!-- /name -->`` in ``document`` (ValueError without them)."""
    old = document.read_text()
    pattern = rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->"
    if not re.search(pattern, old, flags=re.S):
        raise ValueError(f"{document} has no <!-- {name} --> ... <!-- /{name} --> markers")
    document.write_text(re.sub(pattern, lambda _: f"<!-- {name} -->\n{text}\n<!-- /{name} -->", old, flags=re.S))


def _cell(row: dict, policy: str) -> str:
    mean = row.get(f"{policy}_mean")
    if mean is None:
        return "–"
    se = row.get(f"{policy}_se")
    low, high = row.get(f"{policy}_ci_low"), row.get(f"{policy}_ci_high")
    text = f"{mean:.2f}" + (f" ± {se:.2f}" if se is not None else "")
    return text + f" [{low:.2f}, {high:.2f}]"


def normalisation_note(aggregates: dict) -> str:
    """How the scores were normalised: the fixed anchors per game and the reference they come from."""
    anchors = ", ".join(
        f"{game} {a['random']:.2f} → {a['reference']:.2f}" for game, a in sorted(aggregates.get("anchors", {}).items())
    )
    return (
        "IQM over games of normalised scores, (return - random) / (reference - random) per game with fixed anchors: "
        f"0 = a uniformly random policy, 1 = {aggregates.get('reference', 'the reference')} "
        f"(`analysis/anchors/`; random → reference: {anchors}); stratified bootstrap 95 % CI."
    )


def markdown_table(table: pl.DataFrame, aggregates: dict | None = None, env_steps: int | None = None) -> str:
    """Per game and variant: each measure of ``analysis.finals.MEASURES``, mean ± s.e. [95 % bootstrap CI]."""
    measures = [m for m in MEASURES if f"{m}_mean" in table.columns]
    lines = [
        "| game | variant | seeds | " + " | ".join(f"{m} return" for m in measures) + " |",
        "|---|---|---:|" + "---:|" * len(measures),
    ]
    for row in table.iter_rows(named=True):
        cells = " | ".join(_cell(row, m) for m in measures)
        lines.append(f"| {row['game']} | {row['variant']} | {row['seeds']} | {cells} |")
    notes = [
        "",
        "Final returns: mean ± standard error over seeds [95 % percentile bootstrap CI]; "
        + ", ".join(f"{m} = {MEASURES[m]}" for m in measures)
        + (f"; {env_steps:,} env steps per seed." if env_steps else "."),
    ]
    if aggregates and aggregates.get("iqm"):
        notes += ["", "| variant | " + " | ".join(f"IQM normalised {m}" for m in measures) + " |", "|---|" + "---:|" * len(measures)]
        for variant, policies in aggregates["iqm"].items():
            cells = []
            for policy in measures:
                v = policies.get(policy, {})
                cells.append(f"{v['iqm']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]" if v else "–")
            notes.append(f"| {variant} | " + " | ".join(cells) + " |")
        notes += ["", normalisation_note(aggregates)]
    comparisons = (aggregates or {}).get("comparisons", [])
    if comparisons:
        notes += ["", comparison_table(comparisons)]
    return "\n".join(lines + notes) + "\n"


def comparison_table(comparisons: list[dict]) -> str:
    """P(improvement) and the IQM difference of each comparison (``aggregate.json``'s ``comparisons``), with its
    caption."""
    lines = ["| comparison | policy | P(improvement) | IQM difference |", "|---|---|---:|---:|"]
    for c in comparisons:
        lines.append(
            f"| {c['better']} vs {c['worse']} | {c['policy']} | {c['p']:.3f} [{c['p_ci_low']:.3f}, {c['p_ci_high']:.3f}] "
            f"| {c['iqm_difference']:+.3f} [{c['difference_ci_low']:+.3f}, {c['difference_ci_high']:+.3f}] |"
        )
    return "\n".join(
        lines
        + [
            "",
            "P(improvement): P(X > Y) over seed pairs per game (ties 1/2), averaged over games, bootstrap 95 % CI; "
            "IQM difference: of the normalised scores above, stratified bootstrap 95 % CI.",
        ]
    )
