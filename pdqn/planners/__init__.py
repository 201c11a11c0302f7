"""Planners: what PDQN does with a world model between real updates (``--dyna.planner``).

Adding a planner: a module here with a :class:`Planner` subclass whose ``build(config, model, fit, context)``
takes a config class of its own, that config as a field of :class:`~pdqn.config.PlanningConfig` named like the
planner (its knobs become ``--dyna.NAME.*``; the field's name is the ``--dyna.planner`` choice), and the line in
:data:`PLANNERS` below. The trainer, runner, trackers and analysis need no change: they read the planner's declared
metrics. A planner defined outside the package needs none of this: pass it to ``pdqn.Trainer(config,
planner=...)`` (docs/library.md).
"""

from pdqn.planners.base import Clock, Context, NoPlanner, Planner, PlannerState
from pdqn.planners.counterfactual import Counterfactual
from pdqn.planners.dyna import Dyna
from pdqn.planners.model_only import ModelOnly
from pdqn.planners.imagination import ImaginedRollout, ImaginedStart, Imagination, imagined_batch
from pdqn.planners.reuse import Reuse
from pdqn.planners.search import SearchPlanner
from pdqn.planners.value_expansion import ValueExpansion

PLANNERS: dict[str, type[Planner]] = {
    "counterfactual": Counterfactual,
    "dyna": Dyna,
    "value_expansion": ValueExpansion,
    "search": SearchPlanner,
    "none": ModelOnly,
}
"""``--dyna.planner`` choices."""

__all__ = [
    "PLANNERS",
    "Clock",
    "Context",
    "Counterfactual",
    "Dyna",
    "ImaginedRollout",
    "ImaginedStart",
    "Imagination",
    "ModelOnly",
    "NoPlanner",
    "Planner",
    "PlannerState",
    "Reuse",
    "SearchPlanner",
    "ValueExpansion",
    "imagined_batch",
]
