"""Analysis of pdqn runs with polars: load (Aim repository or run dirs), aggregate, plot, tabulate.

    from analysis import load_aim, load_run_dirs, final_returns, per_game_table, aggregate, learning_curves

Scores are normalised with fixed per-game anchors (``analysis.anchors``: 0 = random policy, 1 = reference).
"""

from analysis.anchors import anchors_for, load_anchors
from analysis.finals import final_returns
from analysis.load import AnalysisError, load_aim, load_reference, load_run_dirs, require_metrics
from analysis.plots import interval_plot, iqm_curve_plot, learning_curves, profile_plot
from analysis.stats import (
    aggregate,
    bootstrap_ci,
    interval_estimate,
    interval_estimates,
    iqm,
    iqm_difference,
    iqm_over_steps,
    normalise_scores,
    per_game_table,
    performance_profile,
    performance_profiles,
    probability_of_improvement,
    stratified_iqm,
)
from analysis.table import markdown_table

__all__ = [
    "AnalysisError",
    "aggregate",
    "anchors_for",
    "bootstrap_ci",
    "final_returns",
    "interval_estimate",
    "interval_estimates",
    "interval_plot",
    "iqm",
    "iqm_curve_plot",
    "iqm_difference",
    "iqm_over_steps",
    "learning_curves",
    "load_aim",
    "load_anchors",
    "load_reference",
    "load_run_dirs",
    "markdown_table",
    "normalise_scores",
    "per_game_table",
    "performance_profile",
    "performance_profiles",
    "probability_of_improvement",
    "profile_plot",
    "require_metrics",
    "stratified_iqm",
]
