"""Every metric a run can log, from its one declaration (``pdqn/metrics.py``), as a markdown table.

    python -m pdqn.experiments.metrics > docs/metrics.md
"""

import sys

from pdqn import metrics
from pdqn.metrics import Metric

GROUPS = {
    "Every update (PQN and PDQN)": metrics.UPDATE_METRICS + (metrics.TARGET_RETURN,),
    "A learned world model (`--dyna.model learned`; the termination model, `--dyna.model termination`, logs"
    " `model_loss`, `model_term_precision` and `model_term_recall` of these)": metrics.LEARNED_MODEL_METRICS,
    "The counterfactual planner (`--dyna.planner counterfactual`, the PDQN default)": metrics.COUNTERFACTUAL_METRICS,
    "The Dyna planner (`--dyna.planner dyna`; also `planning_active`)": tuple(
        m for m in metrics.DYNA_METRICS if m is not metrics.PLANNING_ACTIVE
    )
    + (metrics.IMAGINED_DISAGREEING_CELLS,),
    "The value-expansion planner (`--dyna.planner value_expansion`; also `planning_active`)": tuple(
        m for m in metrics.VALUE_EXPANSION_METRICS if m is not metrics.PLANNING_ACTIVE
    ),
    "The search planner (`--dyna.planner search`, with `--dyna.search.minibatches` > 0; also `planning_active`)": tuple(
        m for m in metrics.SEARCH_METRICS if m is not metrics.PLANNING_ACTIVE
    ),
    "PQN reusing recent rollouts (`--pqn.reuse-rollouts`)": (metrics.REUSE_TD_LOSS,),
    "Acting with the termination veto (`--dyna.veto.threshold`, in training)": (metrics.VETOED_ACTION_RATE,),
    "Acting by search (`--dyna.planner search`, with `--dyna.search.training`)": (metrics.SEARCH_CHANGED_ACTION_RATE,),
}


def table(group: tuple[Metric, ...]) -> list[str]:
    lines = ["| metric | Aim context | NaN guard | what it measures |", "|---|---|---|---|"]
    for metric in group:
        key, value = metric.context
        guard = "" if not metric.guarded else ("yes" if metric.guarded_while is None else f"while {metric.guarded_while}")
        lines.append(f"| `{metric.name}` | `{key}: {value}` | {guard} | {metric.doc} |")
    return lines


def main() -> int:
    lines = [
        "# Metrics",
        "",
        "Generated from the declarations in `pdqn/metrics.py` by `python -m pdqn.experiments.metrics > docs/metrics.md`.",
        "A run logs exactly the metrics its configuration declares (`metrics.parquet`, one row per seed and update,",
        "beside `seed`, `update` and `env_step`; Aim, with the context shown). Model figures are measured on each",
        "update's fresh real batch before the model trains on it; the gate counts of the Dyna planner appear only",
        "where their gate is on.",
    ]
    for title, group in GROUPS.items():
        lines += ["", f"## {title}", "", *table(group)]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
