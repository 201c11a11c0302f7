"""Imagine: scan a world model over a horizon, acting epsilon-greedily with the Q-network, and turn the
imagined rollouts into Q(lambda) targets (the same target function as real data). Used by the Dyna and
value-expansion planners."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.models import Prediction, StepModel, sample_cells, threshold_cells
from pdqn.networks import QNetwork, greedy_value
from pdqn.q_update import QBatch
from pdqn.schedules import epsilon_greedy
from pdqn.targets import batched_q_lambda_targets


class ImaginedStart(eqx.Module):
    """Where imagined rollouts start: real observations and the model's carry for them."""

    obs: Float[Array, "rollouts height width channels"]
    carry: Any = None
    first_action: Int[Array, " rollouts"] | None = None
    """The first imagined action of each rollout (None: the epsilon-greedy one, like every later action)."""


class RealSteps(eqx.Module):
    """Real transitions, as the bootstrap-gap diagnostic reads them."""

    start: ImaginedStart
    action: Int[Array, " batch"]
    next_obs: Float[Array, "batch height width channels"]
    terminated: Bool[Array, " batch"]


class ImaginedRollout(eqx.Module):
    """``horizon`` x ``num_rollouts`` imagined transitions, time-major."""

    obs: Float[Array, "H rollouts height width channels"]
    action: Int[Array, "H rollouts"]
    reward: Float[Array, "H rollouts"]
    terminated: Bool[Array, "H rollouts"]
    alive: Bool[Array, "H rollouts"]
    """False once the imagined episode has ended (or hit the game's time limit) at an earlier step."""
    trusted: Bool[Array, "H rollouts"]
    """False from the first step on which the ensemble members disagreed too much."""
    disagreeing_cells: Int[Array, "H rollouts"]
    """Cells the ensemble members disagreed on (0 for a single model)."""
    q_next_max: Float[Array, "H rollouts"]


class ImaginedStep(eqx.Module):
    """One imagined step of every rollout; a scan over the horizon stacks them."""

    obs: Float[Array, "rollouts height width channels"]
    action: Int[Array, " rollouts"]
    reward: Float[Array, " rollouts"]
    terminated: Bool[Array, " rollouts"]
    alive: Bool[Array, " rollouts"]
    trusted: Bool[Array, " rollouts"]
    disagreeing_cells: Int[Array, " rollouts"]
    q_next_max: Float[Array, " rollouts"]


class Imagination(eqx.Module):
    """How imagined rollouts are made: their length, how predicted cells become a binary frame (thresholded at one
    half, or drawn with their probabilities), and the ensemble gate: given a bound, a step is trusted while the
    ensemble members disagreed on at most ``max_disagreeing_cells`` cells at every step so far."""

    horizon: int = eqx.field(static=True)
    sample: bool = eqx.field(static=True, default=False)
    max_disagreeing_cells: int | None = eqx.field(static=True, default=None)

    def frame(self, key: PRNGKeyArray, logits: Float[Array, "batch h w c"]) -> Float[Array, "batch h w c"]:
        return sample_cells(key, logits) if self.sample else threshold_cells(logits)

    def trust(self, pred: Prediction) -> tuple[Bool[Array, " batch"], Int[Array, " batch"]]:
        """Whether each prediction passes the gate; its disagreeing cell counts."""
        batch = pred.reward.shape[0]
        disagreeing = jnp.zeros(batch, jnp.int32) if pred.disagreeing_cells is None else pred.disagreeing_cells
        if self.max_disagreeing_cells is None:
            return jnp.ones(batch, bool), disagreeing
        if pred.disagreeing_cells is None:
            raise ValueError("max_disagreeing_cells needs a model that reports ensemble disagreement")
        return disagreeing <= self.max_disagreeing_cells, disagreeing

    def rollout(
        self,
        step_model: StepModel,
        q_net: QNetwork,
        start: ImaginedStart,
        key: PRNGKeyArray,
        epsilon: Float[Array, ""],
    ) -> ImaginedRollout:
        """Roll the model forward from ``start``; an imagined episode that ends stays ended."""

        def step(carry, inputs):
            obs, model_carry, q, alive, trusted = carry
            key, first = inputs
            k_act, k_model, k_obs, k_term = jax.random.split(key, 4)
            action = epsilon_greedy(k_act, q, epsilon)
            if start.first_action is not None:
                action = jnp.where(first, start.first_action, action)
            pred, model_carry = step_model(obs, model_carry, action, k_model)
            next_obs = self.frame(k_obs, pred.next_obs_logits)
            step_trusted, disagreeing = self.trust(pred)
            trusted = trusted & step_trusted
            terminated = jax.random.bernoulli(k_term, jax.nn.sigmoid(pred.terminated_logit))
            ended = terminated if pred.truncated is None else terminated | pred.truncated
            q_next = q_net(next_obs)
            transition = ImaginedStep(
                obs=obs,
                action=action,
                reward=pred.reward,
                terminated=terminated,
                alive=alive,
                trusted=trusted,
                disagreeing_cells=disagreeing,
                q_next_max=greedy_value(q_next),
            )
            return (next_obs, model_carry, q_next, alive & ~ended, trusted), transition

        ones = jnp.ones(start.obs.shape[0], bool)
        # Given first actions, Q of the start is not needed (the first action is not chosen from it).
        q_start = q_net(start.obs) if start.first_action is None else jnp.zeros(jax.eval_shape(q_net, start.obs).shape)
        init = (start.obs, start.carry, q_start, ones, ones)
        firsts = jnp.arange(self.horizon) == 0
        _, steps = jax.lax.scan(step, init, (jax.random.split(key, self.horizon), firsts))
        return ImaginedRollout(**vars(steps))

    def bootstrap_gap(
        self, step_model: StepModel, q_net: QNetwork, real: RealSteps, key: PRNGKeyArray
    ) -> Float[Array, ""]:
        """Mean of ``max_a Q(predicted next_obs, a) - max_a Q(next_obs, a)`` over real transitions that did not
        terminate: how much the imagined bootstrap over- (or under-) values where the real step led."""
        k_model, k_obs = jax.random.split(key)
        pred, _ = step_model(real.start.obs, real.start.carry, real.action, k_model)
        predicted = self.frame(k_obs, pred.next_obs_logits)
        gap = greedy_value(q_net(predicted)) - greedy_value(q_net(real.next_obs))
        live = (~real.terminated).astype(jnp.float32)
        return jnp.sum(gap * live) / jnp.maximum(jnp.sum(live), 1.0)


def imagined_batch(rollout: ImaginedRollout, gamma: float, td_lambda: float) -> QBatch:
    """Q(lambda) targets over imagined rollouts, flattened for minibatching.

    Only steps of a live, trusted rollout carry weight. Before the first untrusted (or ended) step the
    trace is cut as at a truncation: that step bootstraps from Q of its own prediction.
    """
    valid = rollout.alive & rollout.trusted
    cut = jnp.concatenate([~valid[1:], jnp.zeros_like(valid[:1])], axis=0)
    targets = batched_q_lambda_targets(
        rollout.reward, rollout.terminated, cut & ~rollout.terminated, rollout.q_next_max, gamma=gamma, td_lambda=td_lambda
    )
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    return QBatch(
        obs=flat(rollout.obs),
        action=flat(rollout.action),
        target=flat(targets),
        weight=flat(valid).astype(jnp.float32),
    )
