"""The training state: everything a run needs to continue, as one pytree of arrays."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, Int, PRNGKeyArray

from pdqn.learner import Learner
from pdqn.rollout import EnvCarry


class TrainState(eqx.Module):
    """One seed's complete state; seeds are stacked along a leading axis."""

    learner: Learner
    envs: EnvCarry
    planner: Any
    """The planner's state (None for PQN)."""
    key: PRNGKeyArray
    update: Int[Array, ""]
    """Updates completed so far."""
