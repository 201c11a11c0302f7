"""Model accuracy per architecture over the last 20 % of updates -> results.md / results.csv.

Run from the repository root: python experiments/model-accuracy/summarise.py
"""

from pathlib import Path

import polars as pl

HERE = Path(__file__).parent
COLUMNS = [
    "model_cell_accuracy",
    "model_changed_cell_accuracy",
    "model_obs_exact",
    "model_reward_abs_error",
    "model_term_precision",
    "model_term_recall",
]


def main() -> None:
    rows = []
    for run_dir in sorted((HERE / "runs").iterdir()):
        if not (run_dir / "summary.json").exists():
            continue
        metrics = pl.read_parquet(run_dir / "metrics.parquet")
        last = metrics.filter(pl.col("update") > metrics["update"].max() * 0.8)
        rows.append({"variant": run_dir.name, **{c.removeprefix("model_"): last[c].drop_nans().mean() for c in COLUMNS}})
    table = pl.DataFrame(rows)
    table.write_csv(HERE / "results.csv")
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_column_data_types=True, tbl_hide_dataframe_shape=True,
                   float_precision=4, tbl_width_chars=300, tbl_cols=20):
        (HERE / "results.md").write_text(str(table) + "\n")
    print((HERE / "results.md").read_text())


if __name__ == "__main__":
    main()
