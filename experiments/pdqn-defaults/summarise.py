"""Summarise the PDQN-defaults sweep into results.csv and results.md.

Run from the repository root: python experiments/pdqn-defaults/summarise.py
"""

import json
from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
MODEL_COLUMNS = ["model_cell_accuracy", "model_changed_cell_accuracy", "model_reward_abs_error", "model_term_recall"]


def point_row(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = pl.read_parquet(run_dir / "metrics.parquet")
    last = metrics.filter(pl.col("update") > metrics["update"].max() * 0.9)
    row = {
        "game": summary["env"],
        "point": run_dir.name.removeprefix(summary["env"] + "-"),
        "seeds": summary["num_seeds"],
        "greedy_mean": sum(summary["final_target_return"]) / summary["num_seeds"],
        "greedy_per_seed": " / ".join(f"{v:.1f}" for v in summary["final_target_return"]),
        "behaviour_mean": sum(summary["final_behaviour_return"]) / summary["num_seeds"],
        "mean_q_last10%": last["mean_q"].mean(),
        "steps_per_second": summary["steps_per_second"],
    }
    for column in MODEL_COLUMNS + ["imagined_td_loss"]:
        row[column.removeprefix("model_") + "_last10%"] = last[column].mean() if column in last.columns else None
    return row


def main() -> None:
    rows = [point_row(d) for d in sorted((HERE / "runs").iterdir()) if (d / "summary.json").exists()]
    table = pl.DataFrame(rows).sort("game", "point")
    table.write_csv(HERE / "results.csv")
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   tbl_rows=100, tbl_cols=100, float_precision=3, tbl_width_chars=400):
        (HERE / "results.md").write_text(str(table) + "\n")
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
