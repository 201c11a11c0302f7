"""World models a planner imagines with (``--dyna.model``): the learned ensemble and the real game as oracle; and the
termination model, which only the veto uses.

Adding a model: a :class:`WorldModel` subclass in a module here, its knobs in a config class of its own, and a
builder in :data:`WORLD_MODELS`.
"""

from collections.abc import Callable

from pdqn.config import PlanningConfig
from pdqn.envs import VecEnv
from pdqn.models.base import (
    CERTAIN_LOGIT,
    Prediction,
    StepModel,
    WorldModel,
    sample_cells,
    threshold_cells,
)
from pdqn.models.conv import ConvDynamicsModel
from pdqn.models.learned import (
    Ensemble,
    LearnedModel,
    LearnedState,
    ModelBatch,
    disagreeing_cells,
    ensemble_stepper,
    model_loss,
)
from pdqn.models.mlp import DynamicsModel
from pdqn.models.oracle import OracleModel
from pdqn.models.termination import TerminationModel, TerminationNetwork, TerminationState

WORLD_MODELS: dict[str, Callable[[PlanningConfig, VecEnv, int], WorldModel]] = {
    "learned": lambda planning, env, real_batch_size: LearnedModel.build(
        planning.learned, env.obs_shape, env.num_actions, env.frames, real_batch_size
    ),
    "oracle": lambda planning, env, real_batch_size: OracleModel(env=env),
    "termination": lambda planning, env, real_batch_size: TerminationModel.build(
        planning.termination, env.obs_shape, env.num_actions, real_batch_size
    ),
}
"""``--dyna.model`` choices: each builds its model from the planning config (its own group of it), the training
environments and the real transitions per update."""


def make_model(planning: PlanningConfig, env: VecEnv, real_batch_size: int) -> WorldModel:
    """The world model ``planning.model`` names."""
    return WORLD_MODELS[planning.model](planning, env, real_batch_size)


__all__ = [
    "CERTAIN_LOGIT",
    "WORLD_MODELS",
    "ConvDynamicsModel",
    "DynamicsModel",
    "Ensemble",
    "LearnedModel",
    "LearnedState",
    "ModelBatch",
    "OracleModel",
    "Prediction",
    "StepModel",
    "TerminationModel",
    "TerminationNetwork",
    "TerminationState",
    "WorldModel",
    "disagreeing_cells",
    "ensemble_stepper",
    "make_model",
    "model_loss",
    "sample_cells",
    "threshold_cells",
]
