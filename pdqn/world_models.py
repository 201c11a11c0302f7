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
from pdqn.dynamics import CERTAIN_LOGIT, Ensemble, ModelBatch, Prediction, model_loss, model_optimiser, termination_scores
from pdqn.envs import VecEnv
from pdqn.learner import flatten_time, subsample
from pdqn.metrics import LEARNED_MODEL_METRICS, MODEL_LOSS, Metric
from pdqn.planning import StepModel, disagreeing_cells
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

    def start(self, rollout: Rollout, rows: Int[Array, " n"]) -> Any:
        """The carry of imagined rollouts starting at these rows of the flattened rollout (None: the
        observation is all the model needs)."""
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


class LearnedModel(WorldModel):
    """An ensemble of MLP dynamics models (:mod:`pdqn.dynamics`) trained on every update's real batch; each
    imagined step of each rollout uses a randomly drawn member."""

    obs_shape: tuple[int, int, int] = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    frames: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
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
            hidden=dyna.model_hidden,
            size=dyna.ensemble_size,
            lr=dyna.model_lr,
            batch_size=config.model_batch_size,
            epochs=dyna.model_epochs,
            minibatches=dyna.model_minibatches,
        )

    def init(self, key: PRNGKeyArray) -> LearnedState:
        ensemble = Ensemble(self.obs_shape, self.num_actions, self.hidden, self.size, key=key, frames=self.frames)
        return LearnedState(ensemble=ensemble, opt_state=model_optimiser().init(eqx.filter(ensemble, eqx.is_array)))

    def update(self, state: LearnedState, rollout: Rollout, key: PRNGKeyArray) -> tuple[LearnedState, Metrics]:
        """Epochs x minibatches of the model loss on (a random share of) the rollout."""
        k_subset, k_epochs = jax.random.split(key)
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
        return LearnedState(ensemble=ensemble, opt_state=opt_state), {MODEL_LOSS.name: loss, **termination_scores(metrics)}

    def stepper(self, state: LearnedState) -> StepModel:
        return ensemble_stepper(state.ensemble)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return LEARNED_MODEL_METRICS

    @property
    def reports_disagreement(self) -> bool:
        return self.size > 1


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

    def start(self, rollout: Rollout, rows: Int[Array, " n"]) -> Any:
        return jax.tree.map(lambda x: flatten_time(x)[rows], rollout.env_state)

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
