"""Analysis of pdqn runs with polars: load (Aim repository or run dirs), aggregate, plot, tabulate.

    from analysis import load_aim, load_run_dirs, final_returns, per_game_table, aggregate, learning_curves
"""

from analysis.load import AnalysisError, load_aim, load_reference, load_run_dirs, require_metrics
from analysis.plots import learning_curves
from analysis.stats import (
    aggregate,
    bootstrap_ci,
    final_returns,
    iqm,
    iqm_difference,
    normalise_scores,
    per_game_table,
    probability_of_improvement,
)
from analysis.table import markdown_table

__all__ = [
    "AnalysisError",
    "aggregate",
    "bootstrap_ci",
    "final_returns",
    "iqm",
    "iqm_difference",
    "learning_curves",
    "load_aim",
    "load_reference",
    "load_run_dirs",
    "markdown_table",
    "normalise_scores",
    "per_game_table",
    "probability_of_improvement",
    "require_metrics",
]
