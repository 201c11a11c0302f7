"""Dyna: imagined rollouts from real states of the update's batch, and Q(lambda) updates on them.

step = world-model update on the real rollout -> imagine ``num_rollouts`` rollouts of ``horizon`` steps from
states drawn across the whole real batch -> trust gates -> Q(lambda) targets -> epochs x minibatches of TD
steps with the same code, optimiser state and learning rate as the real update (from ``planning_delay`` on).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from pdqn.config import DynaConfig
from pdqn.learner import Learner, QFit, flatten_time
from pdqn.metrics import (
    DYNA_METRICS,
    IMAGINED_ALIVE_FRACTION,
    IMAGINED_BOOTSTRAP_GAP,
    IMAGINED_DISAGREEING_CELLS,
    IMAGINED_MEAN_Q,
    IMAGINED_REWARD_RATE,
    IMAGINED_TD_LOSS,
    IMAGINED_TERMINATION_RATE,
    IMAGINED_TRUSTED_FRACTION,
    PLANNING_ACTIVE,
    Metric,
)
from pdqn.models import WorldModel
from pdqn.planners.base import Clock, Context, Metrics, Planner, PlannerState
from pdqn.planners.imagination import ImaginedRollout, ImaginedStart, Imagination, RealSteps, imagined_batch
from pdqn.q_update import batch_mean_td_loss
from pdqn.rollout import Rollout


class Dyna(Planner):
    """Imagined Q(lambda) updates from a world model. An imagined minibatch's TD loss is the mean over all its rows,
    so a minibatch that is mostly untrusted or past termination moves the network proportionally less (the mean
    over its trusted rows alone was rejected: experiments/pdqn-ablations)."""

    model: WorldModel
    fit: QFit
    imagination: Imagination
    num_rollouts: int = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    delay: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    td_lambda: float = eqx.field(static=True)

    @classmethod
    def build(cls, config: DynaConfig, model: WorldModel, fit: QFit, context: Context) -> "Dyna":
        return cls(
            model=model,
            fit=fit,
            imagination=Imagination(horizon=config.horizon, max_disagreeing_cells=config.max_disagreeing_cells),
            num_rollouts=config.num_rollouts,
            epochs=config.epochs,
            minibatches=config.minibatches,
            delay=context.delay,
            gamma=context.gamma,
            td_lambda=context.td_lambda,
        )

    def init(self, key: PRNGKeyArray) -> PlannerState:
        return PlannerState(model=self.model.init(key))

    def step(
        self, learner: Learner, rollout: Rollout, state: PlannerState, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, PlannerState, Metrics]:
        k_model, k_start, k_imagine, k_gap, k_update = jax.random.split(key, 5)
        model_state, model_metrics = self.model.update(state.model, rollout, k_model)
        step_model = self.model.stepper(model_state)
        rows = jax.random.randint(k_start, (self.num_rollouts,), 0, rollout.reward.size)
        imagined = self.imagination.rollout(step_model, learner.q_net, self.start(rollout, rows), k_imagine, clock.epsilon)
        gap = self.imagination.bootstrap_gap(step_model, learner.q_net, self.real_steps(rollout, k_gap), k_gap)
        batch = imagined_batch(imagined, self.gamma, self.td_lambda)
        planned, imagined_loss, mean_q = self.fit(
            learner, batch, k_update, clock.lr, epochs=self.epochs, minibatches=self.minibatches, loss=batch_mean_td_loss
        )
        active = clock.update >= self.delay
        learner = jax.tree.map(lambda new, old: jnp.where(active, new, old), planned, learner)
        nan = jnp.asarray(jnp.nan, jnp.float32)
        metrics = {
            PLANNING_ACTIVE.name: active,
            IMAGINED_TD_LOSS.name: jnp.where(active, imagined_loss, nan),
            IMAGINED_MEAN_Q.name: jnp.where(active, mean_q, nan),
            IMAGINED_BOOTSTRAP_GAP.name: gap,
        }
        return learner, PlannerState(model=model_state), model_metrics | metrics | self.rollout_metrics(imagined)

    def start(self, rollout: Rollout, rows: Int[Array, " rollouts"]) -> ImaginedStart:
        """Imagined rollouts (or real steps) from these rows of the flattened real batch."""
        return ImaginedStart(obs=flatten_time(rollout.obs)[rows], carry=self.model.start(rollout, rows))

    def real_steps(self, rollout: Rollout, key: PRNGKeyArray) -> RealSteps:
        """``num_rollouts`` real transitions, for the bootstrap-gap diagnostic."""
        rows = jax.random.randint(key, (self.num_rollouts,), 0, rollout.reward.size)
        return RealSteps(
            start=self.start(rollout, rows),
            action=flatten_time(rollout.action)[rows],
            next_obs=flatten_time(rollout.next_obs)[rows],
            terminated=flatten_time(rollout.terminated)[rows],
        )

    def rollout_metrics(self, imagined: ImaginedRollout) -> Metrics:
        """Rates of the imagined rollouts; beside the real batch's, a gap is a hallucinated reward or death."""
        live = imagined.alive.astype(jnp.float32)
        live_mean = lambda x: jnp.sum(x * live) / jnp.maximum(jnp.sum(live), 1.0)  # noqa: E731
        metrics = {
            IMAGINED_REWARD_RATE.name: live_mean(imagined.reward),
            IMAGINED_TERMINATION_RATE.name: jnp.mean(imagined.terminated & imagined.alive),
            IMAGINED_ALIVE_FRACTION.name: jnp.mean(imagined.alive),
            IMAGINED_TRUSTED_FRACTION.name: jnp.mean(imagined.alive & imagined.trusted),
        }
        if self.model.reports_disagreement:
            metrics[IMAGINED_DISAGREEING_CELLS.name] = live_mean(imagined.disagreeing_cells)
        return metrics

    @property
    def metrics(self) -> tuple[Metric, ...]:
        gates = (IMAGINED_DISAGREEING_CELLS,) if self.model.reports_disagreement else ()
        return self.model.metrics + DYNA_METRICS + gates

    @property
    def needs_env_states(self) -> bool:
        return self.model.needs_env_states
