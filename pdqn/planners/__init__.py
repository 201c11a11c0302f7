"""Planners: what PDQN does with a world model between real updates (``--dyna.planner``).

Adding a planner: write a module here with a :class:`Planner` subclass and a ``from_config(config, env, model,
fit)`` class method, add its name to ``DynaConfig.planner``'s choices and to :data:`PLANNERS` below. The
trainer, runner, trackers and analysis need no change: they read the planner's declared metrics.
"""

from collections.abc import Callable

from pdqn.config import Config
from pdqn.envs import VecEnv
from pdqn.learner import QFit
from pdqn.planners.base import Clock, NoPlanner, Planner
from pdqn.planners.counterfactual import Counterfactual
from pdqn.planners.dyna import Dyna, DynaState
from pdqn.planners.value_expansion import ValueExpansion
from pdqn.world_models import WORLD_MODELS, WorldModel

PLANNERS: dict[str, Callable[[Config, VecEnv, WorldModel, QFit], Planner]] = {
    "dyna": Dyna.from_config,
    "value_expansion": ValueExpansion.from_config,
    "counterfactual": Counterfactual.from_config,
}
"""``--dyna.planner`` choices."""


def make_planner(config: Config, env: VecEnv, fit: QFit) -> Planner:
    """The planner ``config`` asks for (``NoPlanner`` for ``--alg pqn``), with its world model."""
    if not config.planning:
        return NoPlanner()
    model = WORLD_MODELS[config.dyna.model].from_config(config, env)
    return PLANNERS[config.dyna.planner](config, env, model, fit)


__all__ = ["PLANNERS", "Clock", "Counterfactual", "Dyna", "DynaState", "NoPlanner", "Planner", "ValueExpansion", "make_planner"]
