"""A termination model: every action's probability of ending the episode, and nothing else.

The termination veto (:mod:`pdqn.acting`) asks a world model one question, "does this action end the episode?", but
the learned model answers it as a by-product of predicting the next frame, which costs most of its update. This model
keeps only what the answer needs, the structured model's per-cell first layer without the action and its "cells"
termination head (:mod:`pdqn.models.conv`):

    h       = ReLU(LN(W1 [5x5 neighbourhood, row, column]))      per cell, no action
    logit_a = logsumexp(cells_a(h), global_a(pooled(h)))           for every action at once

trained on the taken action's logit of every update's real batch with the weighted termination loss
(:func:`pdqn.models.learned.termination_loss`). It predicts no frames, so it cannot imagine: it serves the veto
with ``--dyna.planner none``, where the Q-network learns from real data alone.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.config import TerminationModelConfig
from pdqn.layers import Dense, LayerNorm
from pdqn.learner import flatten_time
from pdqn.metrics import MODEL_LOSS, TERMINATION_MODEL_METRICS, Metric
from pdqn.models.base import Metrics, StepModel, WorldModel
from pdqn.models.conv import CellsTermination, cell_input_size, cell_inputs
from pdqn.models.learned import event_rates, event_scores, fit_model, model_optimiser, termination_loss
from pdqn.rollout import Rollout


class TerminationNetwork(eqx.Module):
    """See the module docstring."""

    local: Dense
    local_norm: LayerNorm
    head: CellsTermination

    def __init__(self, obs_shape: tuple[int, int, int], num_actions: int, features: int, *, key: PRNGKeyArray):
        k_local, k_head = jax.random.split(key)
        self.local = Dense(cell_input_size(obs_shape[2]), features, key=k_local)
        self.local_norm = LayerNorm(features)
        self.head = CellsTermination(features, num_actions, key=k_head)

    def __call__(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        """Every action's termination logit."""
        h = jax.nn.relu(self.local_norm(self.local(jax.lax.stop_gradient(cell_inputs(obs)))))
        return self.head(h)


class TerminationBatch(eqx.Module):
    """Real transitions as its training data."""

    obs: Float[Array, "batch height width channels"]
    action: Int[Array, " batch"]
    terminated: Float[Array, " batch"]


def taken_termination_loss(
    network: TerminationNetwork, batch: TerminationBatch, termination_weight: float
) -> tuple[Float[Array, ""], dict[str, Array]]:
    """:func:`termination_loss` of the taken actions' logits; with the event rates that become precision and recall
    (on the batch before the gradient step)."""
    logit = jnp.take_along_axis(network(batch.obs), batch.action[:, None], axis=1)[:, 0]
    rates = event_rates({"term": (logit > 0, batch.terminated > 0.5)})
    return termination_loss(logit, batch.terminated, termination_weight), rates


class TerminationState(eqx.Module):
    network: TerminationNetwork
    opt_state: Any


class TerminationModel(WorldModel):
    """See the module docstring."""

    obs_shape: tuple[int, int, int] = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    lr: float = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    termination_weight: float = eqx.field(static=True)

    @classmethod
    def build(
        cls, config: TerminationModelConfig, obs_shape: tuple[int, int, int], num_actions: int, real_batch_size: int
    ) -> "TerminationModel":
        """The model ``config`` describes, for observations of ``obs_shape``, ``num_actions`` actions and updates of
        ``real_batch_size`` real transitions."""
        return cls(
            obs_shape=obs_shape,
            num_actions=num_actions,
            features=config.features,
            lr=config.lr,
            batch_size=config.batch_size(real_batch_size),
            epochs=config.epochs,
            minibatches=config.minibatches,
            termination_weight=config.termination_weight,
        )

    def init(self, key: PRNGKeyArray) -> TerminationState:
        network = TerminationNetwork(self.obs_shape, self.num_actions, self.features, key=key)
        return TerminationState(network=network, opt_state=model_optimiser().init(eqx.filter(network, eqx.is_array)))

    def update(self, state: TerminationState, rollout: Rollout, key: PRNGKeyArray) -> tuple[TerminationState, Metrics]:
        """Epochs x minibatches of the weighted termination loss on a random share of the rollout."""
        batch = TerminationBatch(
            obs=flatten_time(rollout.obs),
            action=flatten_time(rollout.action),
            terminated=flatten_time(rollout.terminated).astype(jnp.float32),
        )
        network, opt_state, (loss, rates) = fit_model(
            lambda net, rows: taken_termination_loss(net, rows, self.termination_weight),
            state.network,
            state.opt_state,
            batch,
            key,
            batch_size=self.batch_size,
            lr=self.lr,
            epochs=self.epochs,
            minibatches=self.minibatches,
        )
        return TerminationState(network=network, opt_state=opt_state), {MODEL_LOSS.name: loss, **event_scores(rates)}

    def stepper(self, state: TerminationState) -> StepModel:
        raise TypeError("the termination model predicts no next frames, so it cannot imagine (use it with --dyna.planner none)")

    def termination_probabilities(
        self, state: TerminationState, obs: Float[Array, "batch height width channels"], carry: Any, key: PRNGKeyArray, num_actions: int
    ) -> Float[Array, "batch actions"]:
        """Every action's probability from one pass (``carry`` and ``key`` are not needed)."""
        return jax.nn.sigmoid(state.network(obs))

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return TERMINATION_MODEL_METRICS

    @property
    def imagines(self) -> bool:
        return False
