"""The learned world model: an ensemble of dynamics networks (the MLP of :mod:`pdqn.models.mlp` or the
convolutional network of :mod:`pdqn.models.conv`) trained on every update's real batch.

The loss per member: binary cross-entropy of every predicted cell of the newest frame (mean over cells), squared
error of the reward, binary cross-entropy of the termination flag. Truncated steps carry ``terminated=False``: the
time limit is not a termination target.
"""

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.config import LearnedModelConfig
from pdqn.learner import flatten_time, subsample
from pdqn.metrics import (
    LEARNED_MODEL_METRICS,
    MODEL_CELL_ACCURACY,
    MODEL_CHANGED_CELL_ACCURACY,
    MODEL_LOSS,
    MODEL_OBS_EXACT,
    MODEL_OBS_EXACT_3,
    MODEL_OBS_EXACT_5,
    MODEL_OBS_LOSS,
    MODEL_REWARD_ABS_ERROR,
    MODEL_REWARD_LOSS,
    MODEL_REWARD_PRECISION,
    MODEL_REWARD_RECALL,
    MODEL_TERM_PRECISION,
    MODEL_TERM_RECALL,
    MODEL_TERMINATED_LOSS,
    Metric,
)
from pdqn.models.base import Metrics, Prediction, StepModel, WorldModel, threshold_cells
from pdqn.models.conv import ConvDynamicsModel, TerminationHead
from pdqn.models.mlp import DynamicsModel
from pdqn.q_update import sgd_epochs
from pdqn.rollout import Rollout

EVENTS = {"term": (MODEL_TERM_PRECISION, MODEL_TERM_RECALL), "reward": (MODEL_REWARD_PRECISION, MODEL_REWARD_RECALL)}
"""Sparse events scored by precision and recall: a termination, and a reward (predicted above 0.5).
Per minibatch their true-positive, predicted and actual rates are kept; the means over an epoch form the scores."""


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


def termination_loss(
    terminated_logit: Float[Array, " batch"], terminated: Float[Array, " batch"], weight: float
) -> Float[Array, ""]:
    """Binary cross-entropy of the termination flag, a terminating step weighing ``weight`` times a safe one::

        loss = mean_i w_i BCE(logit_i, d_i),   w_i = weight if d_i else 1

    Terminations are rare (under 1 % of MinAtar steps), so with ``weight`` 1 the base rate is a cheap optimum."""
    bce = optax.sigmoid_binary_cross_entropy(terminated_logit, terminated)
    return jnp.mean(jnp.where(terminated > 0.5, weight, 1.0) * bce)


def model_loss(
    model: Ensemble, batch: ModelBatch, termination_weight: float = 1.0
) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Summed per-member losses: cell BCE (mean over cells), reward MSE, termination BCE (a terminating step
    weighing ``termination_weight``, :func:`termination_loss`).

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
    term_bce = jax.vmap(termination_loss, in_axes=(0, None, None))(pred.terminated_logit, terminated, termination_weight)
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
    rates = event_rates(events)
    return rates | {
        MODEL_CELL_ACCURACY.name: jnp.mean(correct),
        MODEL_CHANGED_CELL_ACCURACY.name: jnp.sum(correct & changed) / jnp.maximum(jnp.sum(changed), 1),
        MODEL_OBS_EXACT.name: jnp.mean(jnp.all(correct, axis=(1, 2, 3))),
        MODEL_REWARD_ABS_ERROR.name: jnp.mean(jnp.abs(pred.reward[0] - batch.reward)),
    }


def event_rates(events: dict[str, tuple[Array, Array]]) -> dict[str, Array]:
    """Per event ``name: (predicted, actual)`` (booleans over a batch): the rates :func:`event_scores` turns into
    precision and recall, ``name_true_positive``, ``name_predicted`` and ``name_actual``."""
    return {
        f"{name}_{kind}": jnp.mean(value)
        for name, (predicted, actual) in events.items()
        for kind, value in (("true_positive", predicted & actual), ("predicted", predicted), ("actual", actual))
    }


def event_scores(metrics: dict[str, Array]) -> dict[str, Array]:
    """Replace the mean per-minibatch event rates by each event's precision and recall (NaN where undefined), for
    the events whose rates ``metrics`` holds."""
    metrics = dict(metrics)
    nan = jnp.asarray(jnp.nan, jnp.float32)
    for name, (precision, recall) in EVENTS.items():
        if f"{name}_true_positive" not in metrics:
            continue
        true_positive = metrics.pop(f"{name}_true_positive")
        predicted = metrics.pop(f"{name}_predicted")
        actual = metrics.pop(f"{name}_actual")
        metrics[precision.name] = jnp.where(predicted > 0, true_positive / predicted, nan)
        metrics[recall.name] = jnp.where(actual > 0, true_positive / actual, nan)
    return metrics


def model_optimiser() -> optax.GradientTransformation:
    """Adam's direction with global-norm clipping; the learning rate is applied by the caller."""
    return optax.chain(optax.clip_by_global_norm(10.0), optax.scale_by_adam())


def fit_model(
    loss: Callable[[Any, Any], tuple[Array, dict[str, Array]]],
    params: Any,
    opt_state: Any,
    batch: Any,
    key: PRNGKeyArray,
    *,
    batch_size: int,
    lr: float,
    epochs: int,
    minibatches: int,
) -> tuple[Any, Any, tuple[Array, dict[str, Array]]]:
    """A model's update: ``epochs`` x ``minibatches`` steps of :func:`model_optimiser` on ``loss(params, rows)``
    over a fresh random ``batch_size`` of the ``batch``'s rows (all of them where it has no more); returns the new
    parameters and optimiser state, and the loss and metrics averaged over the steps."""
    k_subset, k_epochs = jax.random.split(key)
    if batch_size < jax.tree.leaves(batch)[0].shape[0]:
        batch = subsample(k_subset, batch, batch_size)
    return sgd_epochs(
        loss,
        model_optimiser(),
        params,
        opt_state,
        batch,
        key=k_epochs,
        learning_rate=jnp.asarray(lr, jnp.float32),
        num_epochs=epochs,
        num_minibatches=minibatches,
    )


class LearnedState(eqx.Module):
    ensemble: Ensemble
    opt_state: Any


OPEN_LOOP_WINDOWS = 64
"""Windows of real steps per update on which the multi-step exact rates are measured. Every update is logged, so the
rates are averaged over many updates anyway; 512 windows (8 forward passes of 512 rows) took a fifth of the conv
model's PDQN update (Asterix, paired on a loaded machine: 3.24-3.36x PQN's time per update against 3.98-4.23x with
512; idle today 2.81-2.84x, docs/speed.md)."""


class LearnedModel(WorldModel):
    """An ensemble of dynamics models (the MLP of :mod:`pdqn.models.mlp` or the convolutional model of
    :mod:`pdqn.models.conv`) trained on every update's real batch; each imagined step of each rollout uses a
    randomly drawn member."""

    obs_shape: tuple[int, int, int] = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    frames: int = eqx.field(static=True)
    architecture: str = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    size: int = eqx.field(static=True)
    lr: float = eqx.field(static=True)
    batch_size: int = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    termination_weight: float = eqx.field(static=True, default=1.0)
    termination_head: TerminationHead = eqx.field(static=True, default="summary")

    @classmethod
    def build(
        cls, config: LearnedModelConfig, obs_shape: tuple[int, int, int], num_actions: int, frames: int, real_batch_size: int
    ) -> "LearnedModel":
        """The model ``config`` describes, for observations of ``obs_shape`` (``frames`` stacked), ``num_actions``
        actions and updates of ``real_batch_size`` real transitions."""
        return cls(
            obs_shape=obs_shape,
            num_actions=num_actions,
            frames=frames,
            architecture=config.architecture,
            hidden=config.hidden,
            features=config.features,
            size=config.ensemble_size,
            lr=config.lr,
            batch_size=config.batch_size(real_batch_size),
            epochs=config.epochs,
            minibatches=config.minibatches,
            termination_weight=config.termination_weight,
            termination_head=config.termination_head,
        )

    def member(self, key: PRNGKeyArray) -> eqx.Module:
        if self.architecture == "conv":
            return ConvDynamicsModel(
                self.obs_shape, self.num_actions, self.features, key=key, frames=self.frames, termination_head=self.termination_head
            )
        return DynamicsModel(self.obs_shape, self.num_actions, self.hidden, key=key, frames=self.frames)

    def init(self, key: PRNGKeyArray) -> LearnedState:
        ensemble = Ensemble(self.member, self.size, key=key)
        return LearnedState(ensemble=ensemble, opt_state=model_optimiser().init(eqx.filter(ensemble, eqx.is_array)))

    def update(self, state: LearnedState, rollout: Rollout, key: PRNGKeyArray) -> tuple[LearnedState, Metrics]:
        """Epochs x minibatches of the model loss on (a random share of) the rollout; the multi-step exact rates
        are measured on the rollout first, like every model metric on data the model has not trained on."""
        k_fit, k_open = jax.random.split(key)
        open_loop = {
            metric.name: open_loop_exact(state.ensemble, rollout, k_open, steps=steps)
            for metric, steps in ((MODEL_OBS_EXACT_3, 3), (MODEL_OBS_EXACT_5, 5))
        }
        batch = ModelBatch(
            obs=flatten_time(rollout.obs),
            action=flatten_time(rollout.action),
            next_obs=flatten_time(rollout.next_obs),
            reward=flatten_time(rollout.reward),
            terminated=flatten_time(rollout.terminated),
        )
        ensemble, opt_state, (loss, metrics) = fit_model(
            functools.partial(model_loss, termination_weight=self.termination_weight),
            state.ensemble,
            state.opt_state,
            batch,
            k_fit,
            batch_size=self.batch_size,
            lr=self.lr,
            epochs=self.epochs,
            minibatches=self.minibatches,
        )
        new_state = LearnedState(ensemble=ensemble, opt_state=opt_state)
        return new_state, {MODEL_LOSS.name: loss, **event_scores(metrics), **open_loop}

    def stepper(self, state: LearnedState) -> StepModel:
        return ensemble_stepper(state.ensemble)

    def termination_probabilities(
        self, state: LearnedState, obs: Float[Array, "batch height width channels"], carry: Any, key: PRNGKeyArray, num_actions: int
    ) -> Float[Array, "batch actions"]:
        """As :meth:`WorldModel.termination_probabilities` (one randomly drawn member per state and action), from one
        pass of each member for every action (the veto asks at every behaviour step, so this is its cost)."""
        logits = eqx.filter_vmap(lambda m: m.terminated_logits(obs))(state.ensemble.members)
        member = jax.random.randint(key, logits.shape[1:], 0, self.size)
        return jax.nn.sigmoid(jnp.take_along_axis(logits, member[None], axis=0)[0])

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return LEARNED_MODEL_METRICS

    @property
    def reports_disagreement(self) -> bool:
        return self.size > 1


def open_loop_exact(ensemble: Any, rollout: Rollout, key: PRNGKeyArray, *, steps: int) -> Array:
    """Share of windows of ``steps`` real steps inside one episode whose last next frame the first member,
    fed its own (thresholded) predictions and the real actions, predicts exactly (newest frame, every cell)."""
    num_steps, num_envs = rollout.reward.shape
    k_time, k_env = jax.random.split(key)
    t = jax.random.randint(k_time, (OPEN_LOOP_WINDOWS,), 0, num_steps - steps + 1)
    env = jax.random.randint(k_env, (OPEN_LOOP_WINDOWS,), 0, num_envs)
    ended = rollout.terminated | rollout.truncated
    first = jax.tree.map(lambda m: m[0], ensemble.members)
    obs, inside = rollout.obs[t, env], jnp.ones(OPEN_LOOP_WINDOWS, bool)
    for i in range(steps):
        obs = threshold_cells(first(obs, rollout.action[t + i, env]).next_obs_logits)
        if i < steps - 1:
            inside = inside & ~ended[t + i, env]  # the next frame after an episode's end is a new episode's
    newest = slice(obs.shape[-1] - ensemble.frame_channels, None)
    exact = jnp.all((obs[..., newest] > 0.5) == (rollout.next_obs[t + steps - 1, env][..., newest] > 0.5), axis=(1, 2, 3))
    return jnp.sum(exact & inside) / jnp.maximum(jnp.sum(inside), 1)


def disagreeing_cells(member_logits: Float[Array, "members batch h w c"]) -> Int[Array, " batch"]:
    """Cells per prediction whose thresholded value differs between ensemble members."""
    votes = member_logits > 0
    return jnp.sum(jnp.any(votes != votes[:1], axis=0), axis=(1, 2, 3))


def ensemble_stepper(ensemble: Any) -> StepModel:
    """Sample one member of ``ensemble`` per row at each step; with several members, report how many cells
    they disagree on. ``ensemble(obs, action)`` returns every member's prediction stacked on axis 0."""

    def step(obs, carry, action, key):
        preds = ensemble(obs, action)
        member = jax.random.randint(key, (obs.shape[0],), 0, ensemble.size)
        chosen = jax.tree.map(lambda x: x[member, jnp.arange(obs.shape[0])], preds)
        if ensemble.size > 1:
            disagreeing = disagreeing_cells(preds.next_obs_logits)
            chosen = eqx.tree_at(lambda p: p.disagreeing_cells, chosen, disagreeing, is_leaf=lambda x: x is None)
        return chosen, carry

    return step
