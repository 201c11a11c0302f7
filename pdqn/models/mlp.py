"""The learned dynamics model: next observation, reward and termination from (observation, action).

MinAtar observations are binary grids, so each next-observation cell and the
termination flag are Bernoulli variables (logits, binary cross-entropy); the reward
is regressed. The next-observation logits get the current observation as a skip
connection, so "nothing changes here" is the easy default the model refines.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.layers import Dense, LayerNorm
from pdqn.metrics import (
    MODEL_CELL_ACCURACY,
    MODEL_CHANGED_CELL_ACCURACY,
    MODEL_OBS_EXACT,
    MODEL_OBS_LOSS,
    MODEL_REWARD_ABS_ERROR,
    MODEL_REWARD_LOSS,
    MODEL_REWARD_PRECISION,
    MODEL_REWARD_RECALL,
    MODEL_TERM_PRECISION,
    MODEL_TERM_RECALL,
    MODEL_TERMINATED_LOSS,
)

EVENTS = {"term": (MODEL_TERM_PRECISION, MODEL_TERM_RECALL), "reward": (MODEL_REWARD_PRECISION, MODEL_REWARD_RECALL)}
"""Sparse events scored by precision and recall: a termination, and a reward (predicted above 0.5).
Per minibatch their true-positive, predicted and actual rates are kept; the means over an epoch form the scores."""


class Prediction(eqx.Module):
    next_obs_logits: Float[Array, "batch height width channels"]
    reward: Float[Array, " batch"]
    terminated_logit: Float[Array, " batch"]
    disagreeing_cells: Int[Array, " batch"] | None = None
    """Cells whose thresholded prediction differs between ensemble members (None: one model)."""
    truncated: Bool[Array, " batch"] | None = None
    """Where the step hit the game's time limit (only a model that steps the real game knows; None: never)."""


CERTAIN_LOGIT = 30.0
"""The logit of a cell the model copies rather than predicts (p = 1 - 1e-13)."""


class DynamicsModel(eqx.Module):
    """An MLP over the flattened observation and the one-hot action, with three heads.

    With ``frames > 1`` the observation is a stack of frames (oldest first along the channels) and
    the model predicts only the newest frame of the next stack; the older ones are the current
    stack shifted by one frame, which the prediction copies with certainty.
    """

    encoder: Dense
    encoder_norm: LayerNorm
    trunk: Dense
    trunk_norm: LayerNorm
    obs_head: Dense
    reward_head: Dense
    terminated_head: Dense
    skip_scale: Float[Array, " channels"]
    obs_shape: tuple[int, int, int] = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    frames: int = eqx.field(static=True)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        hidden: int,
        *,
        key: PRNGKeyArray,
        frames: int = 1,
    ):
        if obs_shape[2] % frames:
            raise ValueError(f"{obs_shape[2]} observation channels do not split into {frames} frames")
        k_enc, k_trunk, k_obs, k_rew, k_term = jax.random.split(key, 5)
        flat = obs_shape[0] * obs_shape[1] * obs_shape[2]
        self.obs_shape = obs_shape
        self.num_actions = num_actions
        self.frames = frames
        self.encoder = Dense(flat + num_actions, hidden, key=k_enc)
        self.encoder_norm = LayerNorm(hidden)
        self.trunk = Dense(hidden + num_actions, hidden, key=k_trunk)
        self.trunk_norm = LayerNorm(hidden)
        self.obs_head = Dense(hidden, flat // frames, key=k_obs)
        self.reward_head = Dense(hidden, 1, key=k_rew)
        self.terminated_head = Dense(hidden, 1, key=k_term)
        self.skip_scale = jnp.full((obs_shape[2] // frames,), 2.0, jnp.float32)

    @property
    def frame_channels(self) -> int:
        return self.obs_shape[2] // self.frames

    def __call__(
        self, obs: Float[Array, "batch height width channels"], action: Int[Array, " batch"]
    ) -> Prediction:
        batch = obs.shape[0]
        one_hot = jax.nn.one_hot(action, self.num_actions)
        x = jnp.concatenate([obs.reshape(batch, -1), one_hot], axis=-1)
        x = jax.nn.relu(self.encoder_norm(self.encoder(x)))
        x = jax.nn.relu(self.trunk_norm(self.trunk(jnp.concatenate([x, one_hot], axis=-1))))
        newest = obs[..., obs.shape[-1] - self.frame_channels :]
        logits = self.obs_head(x).reshape(newest.shape) + (2.0 * newest - 1.0) * self.skip_scale
        if self.frames > 1:
            older = obs[..., self.frame_channels :]
            logits = jnp.concatenate([CERTAIN_LOGIT * (2.0 * older - 1.0), logits], axis=-1)
        return Prediction(
            next_obs_logits=logits,
            reward=self.reward_head(x)[:, 0],
            terminated_logit=self.terminated_head(x)[:, 0],
        )


class Ensemble(eqx.Module):
    """``size`` independently initialised dynamics models (any architecture), stacked and vmapped."""

    members: eqx.Module
    size: int = eqx.field(static=True)

    def __init__(self, make_member: Callable[[PRNGKeyArray], eqx.Module], size: int, *, key: PRNGKeyArray):
        """``make_member(key)`` builds one member, e.g. ``lambda k: DynamicsModel(shape, actions, 128, key=k)``."""
        self.members = eqx.filter_vmap(make_member)(jax.random.split(key, size))
        self.size = size

    @property
    def frame_channels(self) -> int:
        """Channels of the newest frame: the part of an observation the model predicts."""
        return self.members.frame_channels  # pyright: ignore[reportAttributeAccessIssue] (every member has it)

    def __call__(
        self, obs: Float[Array, "batch height width channels"], action: Int[Array, " batch"]
    ) -> Prediction:
        """Every member's prediction, stacked along a leading ``member`` axis."""
        return eqx.filter_vmap(lambda m: m(obs, action))(self.members)  # pyright: ignore[reportCallIssue]


class ModelBatch(eqx.Module):
    """Real transitions as model training data."""

    obs: Float[Array, "batch height width channels"]
    action: Int[Array, " batch"]
    next_obs: Float[Array, "batch height width channels"]
    reward: Float[Array, " batch"]
    terminated: Bool[Array, " batch"]


def model_loss(model: Ensemble, batch: ModelBatch) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Summed per-member losses: cell BCE (mean over cells), reward MSE, termination BCE.

    Truncated steps carry ``terminated=False``: the time limit is not a termination target.
    The metrics are computed before the gradient step, on data the model has not yet fit.
    """
    pred = model(batch.obs, batch.action)
    terminated = batch.terminated.astype(jnp.float32)
    newest = slice(batch.obs.shape[-1] - model.frame_channels, None)  # older frames are copied, not learnt
    obs_bce = jnp.mean(
        optax.sigmoid_binary_cross_entropy(pred.next_obs_logits[..., newest], batch.next_obs[..., newest]),
        axis=(1, 2, 3, 4),
    )
    reward_mse = jnp.mean(jnp.square(pred.reward - batch.reward), axis=1)
    term_bce = jnp.mean(optax.sigmoid_binary_cross_entropy(pred.terminated_logit, terminated), axis=1)
    loss = jnp.sum(obs_bce + reward_mse + term_bce)
    return loss, model_metrics(pred, batch, model.frame_channels) | {
        MODEL_OBS_LOSS.name: jnp.mean(obs_bce),
        MODEL_REWARD_LOSS.name: jnp.mean(reward_mse),
        MODEL_TERMINATED_LOSS.name: jnp.mean(term_bce),
    }


def model_metrics(pred: Prediction, batch: ModelBatch, frame_channels: int) -> dict[str, Array]:
    """Accuracy figures of the ensemble's first member on a batch, over the newest frame's cells."""
    newest = slice(batch.obs.shape[-1] - frame_channels, None)
    predicted_obs = pred.next_obs_logits[0][..., newest] > 0
    target_obs = batch.next_obs[..., newest] > 0.5
    correct = predicted_obs == target_obs
    changed = target_obs != (batch.obs[..., newest] > 0.5)
    events = {
        "term": (pred.terminated_logit[0] > 0, batch.terminated),
        "reward": (pred.reward[0] > 0.5, batch.reward > 0.5),
    }
    rates = {
        f"{name}_{kind}": jnp.mean(value)
        for name, (predicted, actual) in events.items()
        for kind, value in (("true_positive", predicted & actual), ("predicted", predicted), ("actual", actual))
    }
    return rates | {
        MODEL_CELL_ACCURACY.name: jnp.mean(correct),
        MODEL_CHANGED_CELL_ACCURACY.name: jnp.sum(correct & changed) / jnp.maximum(jnp.sum(changed), 1),
        MODEL_OBS_EXACT.name: jnp.mean(jnp.all(correct, axis=(1, 2, 3))),
        MODEL_REWARD_ABS_ERROR.name: jnp.mean(jnp.abs(pred.reward[0] - batch.reward)),
    }


def event_scores(metrics: dict[str, Array]) -> dict[str, Array]:
    """Replace the mean per-minibatch event rates by each event's precision and recall (NaN where undefined)."""
    metrics = dict(metrics)
    nan = jnp.asarray(jnp.nan, jnp.float32)
    for name, (precision, recall) in EVENTS.items():
        true_positive = metrics.pop(f"{name}_true_positive")
        predicted = metrics.pop(f"{name}_predicted")
        actual = metrics.pop(f"{name}_actual")
        metrics[precision.name] = jnp.where(predicted > 0, true_positive / predicted, nan)
        metrics[recall.name] = jnp.where(actual > 0, true_positive / actual, nan)
    return metrics


def model_optimiser() -> optax.GradientTransformation:
    """Adam's direction with global-norm clipping; the learning rate is applied by the caller."""
    return optax.chain(optax.clip_by_global_norm(10.0), optax.scale_by_adam())
