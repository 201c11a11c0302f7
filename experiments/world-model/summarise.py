"""The world-model accuracy table from the runs of ``run.sh`` (and the model's cost per update, if measured).

    python experiments/world-model/summarise.py      (writes results.csv and results.md beside this file)

Each figure is the mean over the 10 updates up to 300k env steps (update 73) and up to 1M (update 245), every
one measured on that update's fresh real batch before the model trained on it.
"""

import json
from pathlib import Path

import polars as pl

from pdqn import metrics

HERE = Path(__file__).parent
POINTS = {"300k": 73, "1M": 245}
WINDOW = 10
COLUMNS = {
    metrics.MODEL_OBS_EXACT.name: "exact",
    metrics.MODEL_OBS_EXACT_3.name: "exact 3-step",
    metrics.MODEL_OBS_EXACT_5.name: "exact 5-step",
    metrics.MODEL_CHANGED_CELL_ACCURACY.name: "changed-cell acc.",
    metrics.MODEL_REWARD_PRECISION.name: "reward prec.",
    metrics.MODEL_REWARD_RECALL.name: "reward recall",
    metrics.MODEL_TERM_PRECISION.name: "term. prec.",
    metrics.MODEL_TERM_RECALL.name: "term. recall",
}
VARIANTS = ["mlp128-ens3", "mlp128", "mlp256", "conv32", "mlp128-frames-4", "conv32-frames-4"]


def table() -> pl.DataFrame:
    rows = []
    for done in sorted((HERE / "runs").glob("*/summary.json")):  # finished runs only
        game, variant = done.parent.name.split("-", 1)
        frame = pl.read_parquet(done.parent / "metrics.parquet")
        for point, update in POINTS.items():
            window = frame.filter((pl.col("update") > update - WINDOW) & (pl.col("update") <= update))
            row = {"game": game, "variant": variant, "steps": point}
            row |= {label: window[name].fill_nan(None).mean() for name, label in COLUMNS.items()}
            rows.append(row)
    order = {v: i for i, v in enumerate(VARIANTS)}
    frame = pl.DataFrame(rows)
    return frame.with_columns(pl.col("variant").replace_strict(order, default=99).alias("_o")).sort("game", "steps", "_o").drop("_o")


def cost() -> dict[str, float]:
    """Model-update milliseconds per update (Breakout, one seed) from ``cost.json``, if it has been measured."""
    path = HERE / "cost.json"
    return json.loads(path.read_text()) if path.exists() else {}


def markdown(frame: pl.DataFrame, costs: dict[str, float]) -> str:
    labels = list(COLUMNS.values())
    lines = ["| game | steps | variant | " + " | ".join(labels) + " | model update ms |", "|---|---|---|" + "---:|" * (len(labels) + 1)]
    for row in frame.iter_rows(named=True):
        cells = ["–" if row[label] is None else f"{row[label]:.3f}" for label in labels]
        ms = costs.get(row["variant"])
        lines.append(f"| {row['game']} | {row['steps']} | {row['variant']} | " + " | ".join(cells) + f" | {'–' if ms is None else f'{ms:.0f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    frame = table()
    frame.write_csv(HERE / "results.csv")
    (HERE / "results.md").write_text(markdown(frame, cost()))
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
