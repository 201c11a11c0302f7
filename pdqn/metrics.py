"""Every metric a run logs, declared once: its name, its Aim context, whether the NaN guard watches it, and
how the progress line shows it.

A component (the trainer's real update, a planner, a world model) declares the metrics it produces as a
tuple of :class:`Metric`; the trainer checks at trace time that its compiled update produces exactly the
declared names, so a metric a configuration does not produce is absent by declaration, and a renamed metric
fails loudly instead of silently switching off its guard or its Aim context. The runner, the trackers and
``analysis/`` read these declarations; none of them spells a metric name of its own.
"""

import dataclasses
from collections.abc import Iterable

BEHAVIOUR = ("policy", "behaviour")
TARGET = ("policy", "target")
REAL = ("update", "real")
IMAGINED = ("update", "imagined")
MODEL = ("component", "model")

SEED = "seed"
UPDATE = "update"
ENV_STEP = "env_step"
INDEX_COLUMNS = (SEED, UPDATE, ENV_STEP)
"""The columns of ``metrics.parquet`` that index a row rather than measure something."""


class MetricsError(RuntimeError):
    """A component produced metrics other than the ones it declared."""


@dataclasses.dataclass(frozen=True)
class Metric:
    """One logged quantity, as the runner, the trackers and the analysis see it."""

    name: str
    """Column name in ``metrics.parquet`` and metric name in Aim."""
    context: tuple[str, str]
    """Aim context as a (key, value) pair, e.g. ``("policy", "behaviour")``."""
    doc: str
    """What it measures (one line)."""
    guarded: bool = False
    """A loss or value the NaN guard watches: a NaN/inf stops the run at the last good checkpoint."""
    guarded_while: str | None = None
    """Only guard the rows where this other metric is > 0.5 (e.g. planning losses while planning is active)."""
    show: tuple[str, str] | None = None
    """Label and format spec of its field in the progress line (e.g. ``("td", ".4f")``); None: not shown."""

    @property
    def aim_context(self) -> dict[str, str]:
        key, value = self.context
        return {key: value}


def declared(metrics: Iterable[Metric]) -> dict[str, Metric]:
    """Metrics by name; a name declared twice is an error (one declaration per fact)."""
    table: dict[str, Metric] = {}
    for metric in metrics:
        if metric.name in table:
            raise MetricsError(f"metric {metric.name!r} is declared twice")
        table[metric.name] = metric
    return table


def check_produced(metrics: Iterable[Metric], produced: Iterable[str], who: str) -> None:
    """Raise :class:`MetricsError` unless ``produced`` names exactly the declared ``metrics``."""
    want, got = {m.name for m in metrics}, set(produced)
    if want != got:
        missing, extra = sorted(want - got), sorted(got - want)
        raise MetricsError(f"{who} declares metrics it does not produce {missing} or produces undeclared {extra}")


# ---- the metrics of every update (real data) ---------------------------------------------------------

BEHAVIOUR_RETURN = Metric("behaviour_return", BEHAVIOUR, "mean return of the epsilon-greedy episodes that ended in the update (NaN if none)")
BEHAVIOUR_LENGTH = Metric("behaviour_length", BEHAVIOUR, "mean length of those episodes")
EPISODES = Metric("episodes", BEHAVIOUR, "episodes that ended in the update")
REWARD_RATE = Metric("reward_rate", BEHAVIOUR, "mean reward per real transition of the update's batch")
TERMINATION_RATE = Metric("termination_rate", BEHAVIOUR, "terminations per real transition of the batch")
TD_LOSS = Metric("td_loss", REAL, "mean TD loss of the real-data gradient steps", guarded=True, show=("td", ".4f"))
MEAN_Q = Metric("mean_q", REAL, "mean Q(s, a) over the real minibatches", guarded=True)
EPSILON = Metric("epsilon", REAL, "behaviour epsilon of the update")
LEARNING_RATE = Metric("lr", REAL, "learning rate of the update")

UPDATE_METRICS = (
    BEHAVIOUR_RETURN, BEHAVIOUR_LENGTH, EPISODES, REWARD_RATE, TERMINATION_RATE, TD_LOSS, MEAN_Q, EPSILON,
    LEARNING_RATE,
)  # fmt: skip
"""What every update produces, whatever the planner."""

REUSE_TD_LOSS = Metric(
    "reuse_td_loss", REAL, "mean TD loss of the gradient steps on reused recent rollouts (0 at the first update, with none stored)",
    guarded=True,
)  # fmt: skip
"""Produced by the data-reuse control (--pqn.reuse-rollouts)."""

VETOED_ACTION_RATE = Metric(
    "vetoed_action_rate", BEHAVIOUR, "share of behaviour steps whose greedy action the termination veto changed",
    show=("vetoed", ".4f"),
)  # fmt: skip
"""Produced when the behaviour policy acts with the termination veto (--dyna.veto.threshold)."""

TARGET_RETURN = Metric("target_return", TARGET, "mean greedy return over the evaluation episodes (at evaluation updates, NaN elsewhere)")
"""Filled in by the host loop at each greedy evaluation, not by the compiled update."""

# ---- a learned world model (measured on each update's fresh real batch, before it trains on it) ----

MODEL_LOSS = Metric("model_loss", MODEL, "the world model's training loss (summed over ensemble members)", guarded=True)
MODEL_OBS_LOSS = Metric("model_obs_loss", MODEL, "next-observation cell BCE (mean over members and cells)")
MODEL_REWARD_LOSS = Metric("model_reward_loss", MODEL, "reward squared error")
MODEL_TERMINATED_LOSS = Metric("model_terminated_loss", MODEL, "termination BCE")
MODEL_CELL_ACCURACY = Metric("model_cell_accuracy", MODEL, "share of next-frame cells predicted right", show=("model cell-acc", ".4f"))
MODEL_CHANGED_CELL_ACCURACY = Metric("model_changed_cell_accuracy", MODEL, "share of the cells that change predicted right", show=("changed-acc", ".3f"))
MODEL_OBS_EXACT = Metric("model_obs_exact", MODEL, "share of next frames predicted exactly (every cell)")
MODEL_REWARD_ABS_ERROR = Metric("model_reward_abs_error", MODEL, "mean absolute reward error")
MODEL_TERM_PRECISION = Metric("model_term_precision", MODEL, "termination precision (NaN when none predicted)")
MODEL_TERM_RECALL = Metric("model_term_recall", MODEL, "termination recall (NaN when none happened)")
MODEL_REWARD_PRECISION = Metric("model_reward_precision", MODEL, "share of predicted rewards (> 0.5) that happened (NaN when none predicted)")
MODEL_REWARD_RECALL = Metric("model_reward_recall", MODEL, "share of real rewards the model predicted (NaN when none happened)")
MODEL_OBS_EXACT_3 = Metric("model_obs_exact_3", MODEL, "share of 3-step windows inside an episode whose third next frame the model, fed its own predictions and the real actions, predicts exactly")
MODEL_OBS_EXACT_5 = Metric("model_obs_exact_5", MODEL, "the same over 5 steps")

LEARNED_MODEL_METRICS = (
    MODEL_LOSS, MODEL_OBS_LOSS, MODEL_REWARD_LOSS, MODEL_TERMINATED_LOSS, MODEL_CELL_ACCURACY,
    MODEL_CHANGED_CELL_ACCURACY, MODEL_OBS_EXACT, MODEL_REWARD_ABS_ERROR, MODEL_TERM_PRECISION, MODEL_TERM_RECALL,
    MODEL_REWARD_PRECISION, MODEL_REWARD_RECALL, MODEL_OBS_EXACT_3, MODEL_OBS_EXACT_5,
)  # fmt: skip

TERMINATION_MODEL_METRICS = (MODEL_LOSS, MODEL_TERM_PRECISION, MODEL_TERM_RECALL)
"""What the termination model (--dyna.model termination) reports: its loss (the weighted termination BCE), and precision and
recall of the taken actions' terminations at 0.5."""

# ---- Dyna planning ------------------------------------------------------------------------------------

PLANNING_ACTIVE = Metric("planning_active", IMAGINED, "1 once the planning delay has passed")
IMAGINED_TD_LOSS = Metric(
    "imagined_td_loss", IMAGINED, "mean TD loss of the imagined gradient steps (NaN before planning starts)",
    guarded=True, guarded_while=PLANNING_ACTIVE.name, show=("imag-td", ".4f"),
)  # fmt: skip
IMAGINED_MEAN_Q = Metric(
    "imagined_mean_q", IMAGINED, "mean Q(s, a) over the imagined minibatches (NaN before planning starts)",
    guarded=True, guarded_while=PLANNING_ACTIVE.name,
)  # fmt: skip
IMAGINED_REWARD_RATE = Metric("imagined_reward_rate", IMAGINED, "mean reward per live imagined step (beside reward_rate: a gap is a hallucinated reward)")
IMAGINED_TERMINATION_RATE = Metric("imagined_termination_rate", IMAGINED, "terminations per imagined step")
IMAGINED_BOOTSTRAP_GAP = Metric("imagined_bootstrap_gap", IMAGINED, "max Q of the model's prediction of each real step's next observation minus max Q of the real one")
IMAGINED_ALIVE_FRACTION = Metric("imagined_alive_fraction", IMAGINED, "share of imagined steps before their episode ended")
IMAGINED_TRUSTED_FRACTION = Metric("imagined_trusted_fraction", IMAGINED, "share of imagined steps alive and trusted by the gates")
IMAGINED_DISAGREEING_CELLS = Metric("imagined_disagreeing_cells", IMAGINED, "cells the ensemble members disagree on per live imagined step")

DYNA_METRICS = (
    PLANNING_ACTIVE, IMAGINED_TD_LOSS, IMAGINED_MEAN_Q, IMAGINED_REWARD_RATE, IMAGINED_TERMINATION_RATE,
    IMAGINED_BOOTSTRAP_GAP, IMAGINED_ALIVE_FRACTION, IMAGINED_TRUSTED_FRACTION,
)  # fmt: skip
"""What the Dyna planner always produces; the gate counts are declared only where their gate is on."""

# ---- value expansion ----------------------------------------------------------------------------------

EXPANDED_TD_LOSS = Metric(
    "expanded_td_loss", IMAGINED, "mean TD loss of the gradient steps on real transitions with expanded targets",
    guarded=True, show=("exp-td", ".4f"),
)  # fmt: skip
EXPANDED_MEAN_Q = Metric("expanded_mean_q", IMAGINED, "mean Q(s, a) over those steps", guarded=True)
EXPANSION_MODEL_FREE_WEIGHT = Metric("expansion_model_free_weight", IMAGINED, "mean normalised weight of the model-free Q(lambda) target (1: the model is ignored)")
EXPANSION_TARGET_SHIFT = Metric("expansion_target_shift", IMAGINED, "mean expanded target minus the model-free one (the sign says which way the model pulls)")
EXPANSION_VALUE_STD = Metric("expansion_value_std", IMAGINED, "standard deviation of an expanded target over the model's samples (mean over transitions and horizons)")

VALUE_EXPANSION_METRICS = (
    PLANNING_ACTIVE, EXPANDED_TD_LOSS, EXPANDED_MEAN_Q, EXPANSION_MODEL_FREE_WEIGHT, EXPANSION_TARGET_SHIFT,
    EXPANSION_VALUE_STD,
)  # fmt: skip

# ---- counterfactual actions -----------------------------------------------------------------------------

COUNTERFACTUAL_TD_LOSS = Metric(
    "counterfactual_td_loss", IMAGINED, "mean TD loss of the planner's gradient steps (real and counterfactual rows together)",
    guarded=True, show=("cf-td", ".4f"),
)  # fmt: skip
COUNTERFACTUAL_MEAN_Q = Metric("counterfactual_mean_q", IMAGINED, "mean Q(s, a) over those steps' rows", guarded=True)
COUNTERFACTUAL_TARGET_GAP = Metric("counterfactual_target_gap", IMAGINED, "mean one-step target of the counterfactual rows minus Q(s, a') before the steps (negative: the Q-network overvalues the untaken actions)")
COUNTERFACTUAL_REWARD_RATE = Metric("counterfactual_reward_rate", IMAGINED, "mean predicted reward of the counterfactual transitions")
COUNTERFACTUAL_TERMINATION_RATE = Metric("counterfactual_termination_rate", IMAGINED, "mean predicted termination probability of the counterfactual transitions")
COUNTERFACTUAL_TRUSTED_FRACTION = Metric("counterfactual_trusted_fraction", IMAGINED, "share of the counterfactual rows that count (where the model reproduces the taken action's real outcome, with --dyna.counterfactual.max-wrong-cells)")

COUNTERFACTUAL_METRICS = (
    PLANNING_ACTIVE, COUNTERFACTUAL_TD_LOSS, COUNTERFACTUAL_MEAN_Q, COUNTERFACTUAL_TARGET_GAP,
    COUNTERFACTUAL_REWARD_RATE, COUNTERFACTUAL_TERMINATION_RATE, COUNTERFACTUAL_TRUSTED_FRACTION,
)  # fmt: skip

# ---- search -----------------------------------------------------------------------------------------------

SEARCH_CHANGED_ACTION_RATE = Metric(
    "search_changed_action_rate", BEHAVIOUR, "share of behaviour steps where search chose another action than argmax Q",
    show=("search-changed", ".3f"),
)  # fmt: skip
"""Produced when the behaviour policy acts by search (--dyna.planner search, --dyna.search.training)."""
SEARCH_TD_LOSS = Metric(
    "search_td_loss", IMAGINED, "mean squared-error loss of the gradient steps toward the search's root values",
    guarded=True, show=("search-td", ".4f"),
)  # fmt: skip
SEARCH_MEAN_Q = Metric("search_mean_q", IMAGINED, "mean Q(s, a) over those steps' rows", guarded=True)
SEARCH_TARGET_GAP = Metric("search_target_gap", IMAGINED, "mean root value of the search minus Q(s, a) before the steps, over the actions it visited (positive: search finds more than Q believes)")

SEARCH_METRICS = (PLANNING_ACTIVE, SEARCH_TD_LOSS, SEARCH_MEAN_Q, SEARCH_TARGET_GAP)
"""What the search planner produces when it trains (--dyna.search.minibatches > 0)."""
