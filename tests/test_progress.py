"""The progress line: one line per chunk, each declared metric shown by its label; a metric that is not measured yet
(NaN, e.g. imagined losses during the planning delay) is shown as a dash, never as "nan"."""

import polars as pl

from pdqn.metrics import BEHAVIOUR_RETURN, IMAGINED_TD_LOSS, SEED, TD_LOSS, UPDATE
from pdqn.outputs import progress_line
from tests.conftest import tiny_config


def frame(imagined_td: list[float]) -> pl.DataFrame:
    return pl.DataFrame({
        SEED: [0, 1, 0, 1], UPDATE: [1, 1, 2, 2], BEHAVIOUR_RETURN.name: [1.0, 3.0, float("nan"), 5.0],
        TD_LOSS.name: [0.5, 0.5, 0.25, 0.75], IMAGINED_TD_LOSS.name: imagined_td,
    })  # fmt: skip


def test_metrics_are_shown_by_label_and_a_nan_metric_as_a_dash():
    config = tiny_config(alg="pdqn", num_seeds=2)
    line = progress_line(config, [TD_LOSS, IMAGINED_TD_LOSS], frame([float("nan")] * 4), 100.0, float("nan"))
    assert line.startswith("[pdqn breakout] ") and "100 steps/s" in line and "behaviour 5.00" in line  # the latest update, NaN dropped
    assert "greedy – (not evaluated yet)" in line and "td 0.5000" in line and "imag-td –" in line
    assert "nan" not in line
    line = progress_line(config, [IMAGINED_TD_LOSS], frame([0.0, 0.0, 0.125, 0.375]), 100.0, 2.5)
    assert "imag-td 0.2500" in line and "greedy 2.50" in line
