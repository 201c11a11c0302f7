"""Counterfactual actions: real-data steps with a share of one-step model transitions for the actions the
behaviour policy did not take (MAD-TD, Voelcker et al. 2024, arXiv 2410.08896).

After the real update, the Q-network takes ``minibatches`` more gradient steps, as the compute-matched control
does, on full minibatches of the update's real transitions with their Q(lambda) targets, and each minibatch also
carries a ``share`` of counterfactual rows (shuffled in with the real ones): at a real state ``s_t`` of the batch,
an action ``a'`` other than the taken ``a_t`` (uniformly among the others), and the model's one-step prediction
of its outcome,

    target(s_t, a') = r'_t + gamma * (1 - p'_t) * max_a Q(s'_{t+1}, a)

with ``r'_t`` the predicted reward, ``p'_t`` the predicted probability of termination and ``s'_{t+1}`` the
predicted next frame (thresholded). A learned model's outcome is anchored: the real next step changed only where
the model says the two actions differ,

    s'_{t+1} = s_{t+1} xor (m(s_t, a') xor m(s_t, a_t)),   r'_t = r_t + m_r(s_t, a') - m_r(s_t, a_t),
    p'_t = clip(d_t + m_p(s_t, a') - m_p(s_t, a_t), 0, 1),

so what the action does not change (a spawn, an enemy on a hidden timer), which a one-frame model cannot know,
comes from the real step; under a perfect model that shares the real step's randomness it is the same outcome
(unanchored rows were rejected: experiments/planner-screen). The oracle draws its own randomness, so its outcome
is used as it is, unchecked. With ``max_wrong_cells`` a row of a learned model counts only where the model
reproduces the real outcome of the taken action at that state (a check of the model where it is used). The Q-network is regressed only at real states; the counterfactual rows
carry what more updates on real data cannot: the outcome of actions the data never shows at that state.
Targets are fixed once per update with the Q-network the planner receives, as the real targets are fixed
with the behaviour network. Before ``delay`` the counterfactual rows carry no weight.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.config import CounterfactualConfig
from pdqn.learner import Learner, QFit, flatten_time, real_batch, subsample
from pdqn.metrics import (
    COUNTERFACTUAL_METRICS,
    COUNTERFACTUAL_MEAN_Q,
    COUNTERFACTUAL_REWARD_RATE,
    COUNTERFACTUAL_TARGET_GAP,
    COUNTERFACTUAL_TD_LOSS,
    COUNTERFACTUAL_TERMINATION_RATE,
    COUNTERFACTUAL_TRUSTED_FRACTION,
    PLANNING_ACTIVE,
    Metric,
)
from pdqn.models import Prediction, WorldModel, threshold_cells
from pdqn.planners.base import Clock, Context, Metrics, Planner, PlannerState
from pdqn.q_update import QBatch
from pdqn.rollout import Rollout
from pdqn.targets import one_step_target


def untaken_actions(key: PRNGKeyArray, taken: Int[Array, " n"], num_actions: int) -> Int[Array, " n"]:
    """For each row, an action drawn uniformly among the ``num_actions - 1`` that differ from ``taken``."""
    return (taken + jax.random.randint(key, taken.shape, 1, num_actions)) % num_actions


class Outcome(eqx.Module):
    """A one-step outcome: next frame, reward and probability of termination."""

    next_obs: Float[Array, "n height width channels"]
    reward: Float[Array, " n"]
    terminated: Float[Array, " n"]


def predicted_outcome(pred: Prediction) -> Outcome:
    """A model's prediction as an outcome: cells thresholded at 0.5, termination as a probability."""
    next_obs = threshold_cells(pred.next_obs_logits)
    return Outcome(next_obs=next_obs, reward=pred.reward, terminated=jax.nn.sigmoid(pred.terminated_logit))


def anchored(real: Outcome, taken: Outcome, untaken: Outcome) -> Outcome:
    """The real outcome of the taken action, changed by the model's difference between the untaken and the taken
    one: cells flipped where the two predicted frames differ, reward and termination shifted by their difference."""
    flip = jnp.abs(untaken.next_obs - taken.next_obs)
    return Outcome(
        next_obs=jnp.abs(real.next_obs - flip),
        reward=real.reward + untaken.reward - taken.reward,
        terminated=jnp.clip(real.terminated + untaken.terminated - taken.terminated, 0.0, 1.0),
    )


def reproduces(real: Outcome, predicted: Outcome, max_wrong_cells: int) -> Bool[Array, " n"]:
    """Whether a prediction matches the real outcome: at most ``max_wrong_cells`` wrong cells, the reward within
    0.5 and the termination on the right side of one half."""
    wrong = jnp.sum(jnp.abs(predicted.next_obs - real.next_obs), axis=(1, 2, 3))
    reward_right = jnp.abs(predicted.reward - real.reward) < 0.5
    return (wrong <= max_wrong_cells) & reward_right & ((predicted.terminated > 0.5) == (real.terminated > 0.5))


class Counterfactual(Planner):
    """Extra real-data gradient steps whose minibatches carry a share of counterfactual one-step transitions."""

    model: WorldModel
    fit: QFit
    minibatches: int = eqx.field(static=True)
    minibatch_size: int = eqx.field(static=True)
    rows_per_minibatch: int = eqx.field(static=True)
    """Counterfactual rows added to each minibatch of ``minibatch_size`` real rows."""
    delay: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    td_lambda: float = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    anchor: bool = eqx.field(static=True)
    """Anchor the counterfactual outcome on the real next step (a learned model; see the module docstring)."""
    max_wrong_cells: int | None = eqx.field(static=True)
    """Rows count only where the model's outcome of the taken action is this close to the real one (None: all)."""

    @classmethod
    def build(cls, config: CounterfactualConfig, model: WorldModel, fit: QFit, context: Context) -> "Counterfactual":
        # The oracle draws its own randomness: neither anchored on nor checked against the real step.
        learned = not model.needs_env_states
        return cls(
            model=model,
            fit=fit,
            minibatches=config.minibatches,
            minibatch_size=context.minibatch_size,
            rows_per_minibatch=config.rows_per_minibatch(context.minibatch_size),
            delay=context.delay,
            gamma=context.gamma,
            td_lambda=context.td_lambda,
            num_actions=context.num_actions,
            anchor=learned,
            max_wrong_cells=config.max_wrong_cells if learned else None,
        )

    def init(self, key: PRNGKeyArray) -> PlannerState:
        return PlannerState(model=self.model.init(key))

    def step(
        self, learner: Learner, rollout: Rollout, state: PlannerState, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, PlannerState, Metrics]:
        k_model, k_real, k_imagine, k_fit = jax.random.split(key, 4)
        model_state, model_metrics = self.model.update(state.model, rollout, k_model)
        real = subsample(k_real, real_batch(rollout, self.gamma, self.td_lambda), self.real_rows)
        imagined, metrics = self.imagine(learner, model_state, rollout, k_imagine)
        # Before the delay the counterfactual rows weigh nothing: the steps are the compute-matched control's.
        active = clock.update >= self.delay
        imagined = eqx.tree_at(lambda b: b.weight, imagined, imagined.weight * active)
        batch = jax.tree.map(lambda r, i: jnp.concatenate([r, i]), real, imagined)
        learner, loss, mean_q = self.fit(learner, batch, k_fit, clock.lr, epochs=1, minibatches=self.minibatches)
        metrics |= {PLANNING_ACTIVE.name: active, COUNTERFACTUAL_TD_LOSS.name: loss, COUNTERFACTUAL_MEAN_Q.name: mean_q}
        return learner, PlannerState(model=model_state), model_metrics | metrics

    @property
    def real_rows(self) -> int:
        """Real rows over the planner's minibatches: full minibatches, as the compute-matched control's."""
        return self.minibatches * self.minibatch_size

    def imagine(
        self, learner: Learner, model_state: Any, rollout: Rollout, key: PRNGKeyArray
    ) -> tuple[QBatch, Metrics]:
        """The counterfactual rows of every minibatch, at real states drawn from the whole batch, with their
        one-step targets; and how they compare with what the Q-network believed."""
        k_rows, k_action, k_model = jax.random.split(key, 3)
        count = self.minibatches * self.rows_per_minibatch
        rows = jax.random.randint(k_rows, (count,), 0, rollout.reward.size)
        obs = flatten_time(rollout.obs)[rows]
        taken = flatten_time(rollout.action)[rows]
        action = untaken_actions(k_action, taken, self.num_actions)
        outcome, trusted = self.outcome(model_state, rollout, rows, action, k_model)
        q_next = learner.q_net(outcome.next_obs)
        target = jax.vmap(one_step_target, in_axes=(0, 0, 0, None))(outcome.reward, outcome.terminated, q_next, self.gamma)
        q_sa = jnp.take_along_axis(learner.q_net(obs), action[:, None], axis=-1)[:, 0]
        metrics = {
            COUNTERFACTUAL_TARGET_GAP.name: jnp.mean(target - q_sa),
            COUNTERFACTUAL_REWARD_RATE.name: jnp.mean(outcome.reward),
            COUNTERFACTUAL_TERMINATION_RATE.name: jnp.mean(outcome.terminated),
            COUNTERFACTUAL_TRUSTED_FRACTION.name: jnp.mean(trusted),
        }
        return QBatch(obs=obs, action=action, target=target, weight=trusted.astype(jnp.float32)), metrics

    def outcome(
        self, model_state: Any, rollout: Rollout, rows: Int[Array, " n"], action: Int[Array, " n"], key: PRNGKeyArray
    ) -> tuple[Outcome, Bool[Array, " n"]]:
        """The outcome of ``action`` at these rows: the model's (the oracle), or the real one shifted by it
        (``anchor``); and which rows to trust."""
        step, obs, carry = self.model.stepper(model_state), flatten_time(rollout.obs)[rows], self.model.start(rollout, rows)
        if not self.anchor and self.max_wrong_cells is None:  # the taken action's outcome is not needed
            return predicted_outcome(step(obs, carry, action, key)[0]), jnp.ones(rows.shape, bool)
        taken = flatten_time(rollout.action)[rows]
        both = predicted_outcome(step(jnp.concatenate([obs, obs]), carry, jnp.concatenate([action, taken]), key)[0])
        untaken, taken_outcome = (jax.tree.map(lambda x: x[i * rows.size : (i + 1) * rows.size], both) for i in (0, 1))
        real = Outcome(
            next_obs=flatten_time(rollout.next_obs)[rows],
            reward=flatten_time(rollout.reward)[rows],
            terminated=flatten_time(rollout.terminated)[rows].astype(jnp.float32),
        )
        trusted = jnp.ones(rows.shape, bool)
        if self.max_wrong_cells is not None:
            trusted = reproduces(real, taken_outcome, self.max_wrong_cells)
        return (anchored(real, taken_outcome, untaken) if self.anchor else untaken), trusted

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self.model.metrics + COUNTERFACTUAL_METRICS

    @property
    def needs_env_states(self) -> bool:
        return self.model.needs_env_states
