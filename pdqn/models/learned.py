"""World models a planner imagines with: the learned ensemble and the oracle (the real game).

A :class:`WorldModel` keeps its knobs as static fields and its parameters in a state that flows through
its calls: ``init(key) -> state``, ``update(state, rollout, key) -> (state, metrics)`` once per update on the
real rollout, ``start(rollout, rows)`` for the carry of imagined rollouts that start at those real rows, and
``stepper(state)``: the :data:`~pdqn.planning.StepModel` imagination calls. A planner holds a model and never
looks inside it, so a new model plugs in without touching the planner.
"""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from pdqn.config import Config
from pdqn.conv_dynamics import ConvDynamicsModel
from pdqn.dynamics import (
    CERTAIN_LOGIT,
    DynamicsModel,
    Ensemble,
    ModelBatch,
    Prediction,
    event_scores,
    model_loss,
    model_optimiser,
)
from pdqn.envs import VecEnv
from pdqn.learner import flatten_time, subsample
from pdqn.metrics import LEARNED_MODEL_METRICS, MODEL_LOSS, MODEL_OBS_EXACT_3, MODEL_OBS_EXACT_5, Metric
from pdqn.planning import StepModel, binarise, disagreeing_cells
from pdqn.q_update import sgd_epochs
from pdqn.rollout import Rollout

Metrics = dict[str, Array]


class WorldModel(eqx.Module):
    """Abstract world model; see the module docstring for the protocol."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray) -> Any: ...

    @abc.abstractmethod
    def update(self, state: Any, rollout: Rollout, key: PRNGKeyArray) -> tuple[Any, Metrics]: ...

    @abc.abstractmethod
    def stepper(self, state: Any) -> StepModel: ...

    def start(self, rollout: Rollout, rows: Int[Array, " n"], after: bool = False) -> Any:
        """The carry of imagined rollouts starting at the observation of these rows of the flattened rollout,
        or (``after``) at their next observation (None: the observation is all the model needs)."""
        return None

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The metrics :meth:`update` produces."""
        return ()

    @property
    def reports_disagreement(self) -> bool:
        """Whether its predictions count the cells ensemble members disagree on."""
        return False

    @property
    def needs_env_states(self) -> bool:
        """Whether :meth:`start` reads the real environment states of the rollout."""
        return False


class LearnedState(eqx.Module):
    ensemble: Ensemble
    opt_state: Any


OPEN_LOOP_WINDOWS = 512
"""Windows of real steps per update on which the multi-step exact rates are measured."""


class LearnedModel(WorldModel):
    """An ensemble of dynamics models (the MLP of :mod:`pdqn.dynamics` or the convolutional model of
    :mod:`pdqn.conv_dynamics`) trained on every update's real batch; each imagined step of each rollout uses a
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

    @classmethod
    def from_config(cls, config: Config, env: VecEnv) -> "LearnedModel":
        dyna = config.dyna
        return cls(
            obs_shape=env.obs_shape,
            num_actions=env.num_actions,
            frames=config.frame_stack,
            architecture=dyna.architecture,
            hidden=dyna.model_hidden,
            features=dyna.model_features,
            size=dyna.ensemble_size,
            lr=dyna.model_lr,
            batch_size=config.model_batch_size,
            epochs=dyna.model_epochs,
            minibatches=dyna.model_minibatches,
        )

    def member(self, key: PRNGKeyArray) -> eqx.Module:
        if self.architecture == "conv":
            return ConvDynamicsModel(self.obs_shape, self.num_actions, self.features, key=key, frames=self.frames)
        return DynamicsModel(self.obs_shape, self.num_actions, self.hidden, key=key, frames=self.frames)

    def init(self, key: PRNGKeyArray) -> LearnedState:
        ensemble = Ensemble(self.member, self.size, key=key)
        return LearnedState(ensemble=ensemble, opt_state=model_optimiser().init(eqx.filter(ensemble, eqx.is_array)))

    def update(self, state: LearnedState, rollout: Rollout, key: PRNGKeyArray) -> tuple[LearnedState, Metrics]:
        """Epochs x minibatches of the model loss on (a random share of) the rollout; the multi-step exact rates
        are measured on the rollout first, like every model metric on data the model has not trained on."""
        k_subset, k_epochs, k_open = jax.random.split(key, 3)
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
        if self.batch_size < batch.reward.shape[0]:
            batch = subsample(k_subset, batch, self.batch_size)
        ensemble, opt_state, (loss, metrics) = sgd_epochs(
            model_loss,
            model_optimiser(),
            state.ensemble,
            state.opt_state,
            batch,
            key=k_epochs,
            learning_rate=jnp.asarray(self.lr, jnp.float32),
            num_epochs=self.epochs,
            num_minibatches=self.minibatches,
        )
        new_state = LearnedState(ensemble=ensemble, opt_state=opt_state)
        return new_state, {MODEL_LOSS.name: loss, **event_scores(metrics), **open_loop}

    def stepper(self, state: LearnedState) -> StepModel:
        return ensemble_stepper(state.ensemble)

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
        obs = binarise(key, first(obs, rollout.action[t + i, env]).next_obs_logits, "threshold")
        if i < steps - 1:
            inside = inside & ~ended[t + i, env]  # the next frame after an episode's end is a new episode's
    newest = slice(obs.shape[-1] - ensemble.frame_channels, None)
    exact = jnp.all((obs[..., newest] > 0.5) == (rollout.next_obs[t + steps - 1, env][..., newest] > 0.5), axis=(1, 2, 3))
    return jnp.sum(exact & inside) / jnp.maximum(jnp.sum(inside), 1)


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


class OracleModel(WorldModel):
    """The real game as a model: imagined steps step gymnax from the rollout's real environment states with
    fresh keys, so imagined transitions are exact samples of the environment. A diagnostic: it answers what
    planning would give with a perfect model."""

    env: VecEnv

    @classmethod
    def from_config(cls, config: Config, env: VecEnv) -> "OracleModel":
        return cls(env=env)

    def init(self, key: PRNGKeyArray) -> None:
        return None

    def update(self, state: None, rollout: Rollout, key: PRNGKeyArray) -> tuple[None, Metrics]:
        return None, {}

    def start(self, rollout: Rollout, rows: Int[Array, " n"], after: bool = False) -> Any:
        """The real states of those rows (after a step that ended an episode: the next episode's start, which
        a planner must not continue from)."""
        states = rollout.next_env_state if after else rollout.env_state
        return jax.tree.map(lambda x: flatten_time(x)[rows], states)

    def stepper(self, state: None) -> StepModel:
        def step(obs, env_state, action, key):
            out, env_state = self.env.transition(key, env_state, action)
            certain = lambda flag: jnp.where(flag, CERTAIN_LOGIT, -CERTAIN_LOGIT)  # noqa: E731
            pred = Prediction(
                next_obs_logits=certain(out.final_obs > 0.5),
                reward=out.reward,
                terminated_logit=certain(out.terminated),
                disagreeing_cells=jnp.zeros(action.shape[0], jnp.int32),
                truncated=out.truncated,
            )
            return pred, env_state

        return step

    @property
    def needs_env_states(self) -> bool:
        return True


WORLD_MODELS = {"learned": LearnedModel, "oracle": OracleModel}
"""``--dyna.model`` choices."""
