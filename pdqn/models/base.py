"""What every world model is: a one-step prediction, the step function imagination calls, and the protocol.

A :class:`WorldModel` keeps its knobs as static fields and its parameters in a state that flows through its
calls: ``init(key) -> state``, ``update(state, rollout, key) -> (state, metrics)`` once per update on the real
rollout, ``start(rollout, rows)`` for the carry of imagined steps that start at those real rows, and
``stepper(state)``: the :data:`StepModel` a planner calls. A planner holds a model and never looks inside it, so a
new model plugs in without touching the planners.
"""

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.metrics import Metric
from pdqn.rollout import Rollout

Metrics = dict[str, Array]

CERTAIN_LOGIT = 30.0
"""The logit of a cell the model copies rather than predicts (p = 1 - 1e-13)."""


class Prediction(eqx.Module):
    """A model's one-step prediction for a batch of (observation, action) pairs."""

    next_obs_logits: Float[Array, "batch height width channels"]
    reward: Float[Array, " batch"]
    terminated_logit: Float[Array, " batch"]
    disagreeing_cells: Int[Array, " batch"] | None = None
    """Cells whose thresholded prediction differs between ensemble members (None: one model)."""
    truncated: Bool[Array, " batch"] | None = None
    """Where the step hit the game's time limit (only a model that steps the real game knows; None: never)."""


StepModel = Callable[
    [Float[Array, "batch height width channels"], Any, Int[Array, " batch"], PRNGKeyArray], tuple[Prediction, Any]
]
"""One imagined step: ``(obs, carry, action, key) -> (prediction, next carry)``. ``carry`` is whatever the model
needs beyond the observation (the real game's state for the oracle; None for a learned model)."""


def threshold_cells(logits: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """A binary frame from predicted cell logits: a cell is on where its probability exceeds one half."""
    return (logits > 0.0).astype(jnp.float32)


def sample_cells(key: PRNGKeyArray, logits: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """A binary frame drawn from predicted cell logits: each cell on with its probability."""
    return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(jnp.float32)


def every_action_terminated_logits(
    predict: Callable[..., Prediction],
    obs: Float[Array, "batch height width channels"],
    first_without_action: Float[Array, "batch ..."],
    action_rows: Float[Array, "actions units"],
) -> Float[Array, "batch actions"]:
    """``predict(obs, first, one_hot).terminated_logit`` for every action, for a network whose first layer takes the
    one-hot action as its last inputs: ``first_without_action`` (that layer with no action) is computed once and each
    action adds its own row of the weights, ``action_rows``."""
    batch, num_actions = obs.shape[0], action_rows.shape[0]

    def logit(action):
        one_hot = jnp.broadcast_to(jax.nn.one_hot(action, num_actions), (batch, num_actions))
        return predict(obs, first_without_action + action_rows[action], one_hot).terminated_logit

    return jax.vmap(logit, out_axes=1)(jnp.arange(num_actions))


class WorldModel(eqx.Module):
    """Abstract world model; see the module docstring for the protocol."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray) -> Any: ...

    @abc.abstractmethod
    def update(self, state: Any, rollout: Rollout, key: PRNGKeyArray) -> tuple[Any, Metrics]: ...

    @abc.abstractmethod
    def stepper(self, state: Any) -> StepModel: ...

    def start(self, rollout: Rollout, rows: Int[Array, " n"], after: bool = False) -> Any:
        """The carry of imagined steps starting at the observation of these rows of the flattened rollout, or
        (``after``) at their next observation (None: the observation is all the model needs)."""
        return None

    def termination_probabilities(
        self, state: Any, obs: Float[Array, "batch height width channels"], carry: Any, key: PRNGKeyArray, num_actions: int
    ) -> Float[Array, "batch actions"]:
        """The model's probability that each action ends the episode, at each of a batch of observations (``carry``
        as :meth:`start` gives it, for those observations)."""
        batch = obs.shape[0]
        repeat = lambda x: jnp.repeat(x, num_actions, axis=0)  # noqa: E731
        actions = jnp.tile(jnp.arange(num_actions, dtype=jnp.int32), batch)
        pred, _ = self.stepper(state)(repeat(obs), jax.tree.map(repeat, carry), actions, key)
        return jax.nn.sigmoid(pred.terminated_logit).reshape(batch, num_actions)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The metrics :meth:`update` produces."""
        return ()

    @property
    def reports_disagreement(self) -> bool:
        """Whether its predictions count the cells ensemble members disagree on."""
        return False

    @property
    def imagines(self) -> bool:
        """Whether :meth:`stepper` predicts next frames, so that a planner can imagine with it (the termination model
        cannot)."""
        return True

    @property
    def needs_env_states(self) -> bool:
        """Whether :meth:`start` reads the real environment states of the rollout."""
        return False
