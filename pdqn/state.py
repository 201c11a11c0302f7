"""The training state: everything a run needs to continue, as one pytree of arrays."""

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.dynamics import Ensemble
from pdqn.envs import EpisodeStats
from pdqn.networks import QNetwork


class TrainState(eqx.Module):
    """One seed's complete state; seeds are stacked along a leading axis."""

    q_net: QNetwork
    q_opt_state: Any
    env_state: Any
    env_stats: EpisodeStats
    obs: Float[Array, "envs height width channels"]
    key: PRNGKeyArray
    update: Int[Array, ""]
    """Updates completed so far."""
    model: Ensemble | None = None
    model_opt_state: Any = None
