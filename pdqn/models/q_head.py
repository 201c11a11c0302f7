"""The Q-network's own termination head as the veto's model (``--dyna.model q_head``).

The head (:class:`pdqn.networks.QNetwork` with ``termination_channels=K``) reads the conv features the greedy step
computes anyway beside channels of its own, and the learner trains it on the real minibatches
(:class:`pdqn.learner.TerminationHeadLoss`, ``--pqn.termination-head-channels``), so this model holds nothing and
trains nothing: it only asks the acting Q-network.
"""

from typing import Any

import jax
from jaxtyping import Array, Float, PRNGKeyArray

from pdqn.models.base import Metrics, StepModel, WorldModel
from pdqn.networks import QNetwork
from pdqn.rollout import Rollout


class QHeadModel(WorldModel):
    """See the module docstring."""

    def init(self, key: PRNGKeyArray) -> None:
        return None

    def update(self, state: None, rollout: Rollout, key: PRNGKeyArray) -> tuple[None, Metrics]:
        return None, {}

    def stepper(self, state: None) -> StepModel:
        raise TypeError("the Q-network's termination head predicts no next frames, so it cannot imagine (use it with --dyna.planner none)")

    def termination_probabilities(
        self,
        state: None,
        obs: Float[Array, "batch height width channels"],
        carry: Any,
        key: PRNGKeyArray,
        num_actions: int,
        *,
        q_net: QNetwork | None = None,
    ) -> Float[Array, "batch actions"]:
        """Every action's probability from the head on ``q_net``'s conv features."""
        if q_net is None:
            raise ValueError("the q_head model reads the acting Q-network's termination head: pass q_net")
        return jax.nn.sigmoid(q_net.termination_logits(obs))

    @property
    def imagines(self) -> bool:
        return False
