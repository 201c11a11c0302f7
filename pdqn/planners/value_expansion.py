"""Value expansion: real-anchored targets from model rollouts (MVE, Feinberg et al. 2018, arXiv 1803.00101),
weighted by the model's disagreement in value space (STEVE, Buckman et al. 2018, arXiv 1807.01675).

After the real update, the Q-network takes ``minibatches`` more gradient steps on real transitions
``(s, a, r, s')`` drawn from the batch, as the compute-matched control does, but toward expanded targets. From
each real next state ``s'`` (a real frame, never a prediction of it) the model rolls out ``horizon`` greedy
steps, ``samples`` times with fresh draws (ensemble members, or the game's own randomness for the oracle). With
``d`` the real termination, ``d_i`` the imagined ones and ``q_i = max_a Q(s_{i+1}, a)``, horizon ``h`` gives

    T_0 = G^lambda                                                      (the model-free Q(lambda) target)
    T_h = r + gamma (1 - d) [sum_{i<h} gamma^i alive_i r_i + gamma^h alive_h q_{h-1}]        (h = 1..H)

with mean ``mu_h`` and variance ``var_h`` over the samples; the target is ``sum_h w_h mu_h / sum_h w_h`` with
``w_h = 1 / (var_h + floor)`` (``var_0 = 0``). Where the samples agree every horizon counts about equally; where
they disagree in value the expansion drops out and the target falls back to ``G^lambda``. The Q-network is
only ever regressed at real states and their taken actions, toward values of imagined states after the real
next one. Before ``delay`` the targets are ``G^lambda``: the planner is then exactly the compute-matched control.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from pdqn.config import ValueExpansionConfig
from pdqn.learner import Learner, QFit, flatten_time, real_batch
from pdqn.metrics import (
    EXPANDED_MEAN_Q,
    EXPANDED_TD_LOSS,
    EXPANSION_MODEL_FREE_WEIGHT,
    EXPANSION_TARGET_SHIFT,
    EXPANSION_VALUE_STD,
    PLANNING_ACTIVE,
    VALUE_EXPANSION_METRICS,
    Metric,
)
from pdqn.models import WorldModel
from pdqn.planners.base import Clock, Context, Metrics, Planner, PlannerState
from pdqn.planners.imagination import ImaginedStart, Imagination
from pdqn.q_update import QBatch
from pdqn.rollout import Rollout
from pdqn.targets import inverse_variance_target, n_step_values


class ValueExpansion(Planner):
    """Extra gradient steps on real transitions toward model-expanded, disagreement-weighted targets."""

    model: WorldModel
    fit: QFit
    imagination: Imagination
    samples: int = eqx.field(static=True)
    floor: float = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    minibatch_size: int = eqx.field(static=True)
    delay: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    td_lambda: float = eqx.field(static=True)

    @classmethod
    def build(cls, config: ValueExpansionConfig, model: WorldModel, fit: QFit, context: Context) -> "ValueExpansion":
        # Cells are sampled from the model's probabilities, so that even one model's samples spread where it is
        # unsure (a car that may or may not move): that spread is what weights the horizons.
        return cls(
            model=model,
            fit=fit,
            imagination=Imagination(horizon=config.horizon, sample=True),
            samples=config.samples,
            floor=config.variance_floor,
            minibatches=config.minibatches,
            minibatch_size=context.minibatch_size,
            delay=context.delay,
            gamma=context.gamma,
            td_lambda=context.td_lambda,
        )

    def init(self, key: PRNGKeyArray) -> PlannerState:
        return PlannerState(model=self.model.init(key))

    def step(
        self, learner: Learner, rollout: Rollout, state: PlannerState, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, PlannerState, Metrics]:
        k_model, k_rows, k_expand, k_fit = jax.random.split(key, 4)
        model_state, model_metrics = self.model.update(state.model, rollout, k_model)
        count = self.minibatches * self.minibatch_size
        rows = jax.random.permutation(k_rows, rollout.reward.size)[:count]
        real = jax.tree.map(lambda x: x[rows], real_batch(rollout, self.gamma, self.td_lambda))
        expanded = self.expand(learner, model_state, rollout, rows, k_expand)
        # A time-limit cut leaves no real next state to continue from (the environment has reset).
        valid = ~flatten_time(rollout.truncated)[rows]
        combine = jax.vmap(inverse_variance_target, in_axes=(0, 2, 0, None))
        target, model_free_weight, value_std = combine(real.target, expanded, valid, self.floor)
        active = clock.update >= self.delay
        target = jnp.where(active, target, real.target)
        batch = QBatch(obs=real.obs, action=real.action, target=target, weight=real.weight)
        learner, loss, mean_q = self.fit(learner, batch, k_fit, clock.lr, epochs=1, minibatches=self.minibatches)
        metrics = {
            PLANNING_ACTIVE.name: active,
            EXPANDED_TD_LOSS.name: loss,
            EXPANDED_MEAN_Q.name: mean_q,
            EXPANSION_MODEL_FREE_WEIGHT.name: jnp.mean(model_free_weight),
            EXPANSION_TARGET_SHIFT.name: jnp.mean(target - real.target),
            EXPANSION_VALUE_STD.name: jnp.mean(value_std),
        }
        return learner, PlannerState(model=model_state), model_metrics | metrics

    def expand(
        self, learner: Learner, model_state: Any, rollout: Rollout, rows: Array, key: PRNGKeyArray
    ) -> Float[Array, "samples H n"]:
        """``T_h`` for ``h = 1..H`` of every row, once per sample (a row whose real step terminated: its reward)."""
        step_model = self.model.stepper(model_state)
        start = ImaginedStart(
            obs=flatten_time(rollout.next_obs)[rows],
            carry=self.model.start(rollout, rows, after=True),
            first_action=flatten_time(rollout.greedy_next_action)[rows],  # greedy at s', known from the real step
        )
        reward = flatten_time(rollout.reward)[rows]
        terminated: Bool[Array, " n"] = flatten_time(rollout.terminated)[rows]
        greedy = jnp.asarray(0.0, jnp.float32)

        def sample(key: PRNGKeyArray) -> Float[Array, "H n"]:
            imagined = self.imagination.rollout(step_model, learner.q_net, start, key, greedy)
            values = jax.vmap(n_step_values, in_axes=(1, 1, 1, 1, None), out_axes=1)(
                imagined.reward, imagined.alive, imagined.terminated, imagined.q_next_max, self.gamma
            )
            return reward + self.gamma * (1.0 - terminated.astype(jnp.float32)) * values

        return jax.vmap(sample)(jax.random.split(key, self.samples))

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self.model.metrics + VALUE_EXPANSION_METRICS

    @property
    def needs_env_states(self) -> bool:
        return self.model.needs_env_states
