"""Imagine: scan the dynamics model over a horizon, acting epsilon-greedily with the Q-network."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.dynamics import Prediction
from pdqn.networks import QNetwork, greedy_value
from pdqn.q_update import QBatch
from pdqn.schedules import epsilon_greedy
from pdqn.targets import batched_q_lambda_targets

# A model maps (obs, action, key) to one sampled prediction per row; the learned
# ensemble and the true environment (in tests) both fit this signature.
StepModel = Callable[
    [Float[Array, "batch height width channels"], Int[Array, " batch"], PRNGKeyArray], Prediction
]


class ImaginedRollout(eqx.Module):
    """``horizon`` x ``num_rollouts`` imagined transitions, time-major."""

    obs: Float[Array, "H rollouts height width channels"]
    action: Int[Array, "H rollouts"]
    reward: Float[Array, "H rollouts"]
    terminated: Bool[Array, "H rollouts"]
    alive: Bool[Array, "H rollouts"]
    """False once the imagined episode has ended at an earlier step."""
    q_next_max: Float[Array, "H rollouts"]


class ImaginedStep(eqx.Module):
    """One imagined step of every rollout; a scan over the horizon stacks them."""

    obs: Float[Array, "rollouts height width channels"]
    action: Int[Array, " rollouts"]
    reward: Float[Array, " rollouts"]
    terminated: Bool[Array, " rollouts"]
    alive: Bool[Array, " rollouts"]
    q_next_max: Float[Array, " rollouts"]


def binarise(
    key: PRNGKeyArray, logits: Float[Array, "*shape"], mode: str
) -> Float[Array, "*shape"]:
    """Turn predicted cell logits into a binary observation, by threshold or by sampling."""
    if mode == "sample":
        return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(jnp.float32)
    return (logits > 0).astype(jnp.float32)


def imagine(
    step_model: StepModel,
    q_net: QNetwork,
    start_obs: Float[Array, "rollouts height width channels"],
    key: PRNGKeyArray,
    epsilon: Float[Array, ""],
    horizon: int,
    binarize: str,
) -> ImaginedRollout:
    """Roll the model forward from ``start_obs``; an imagined episode that ends stays ended."""

    def step(carry, key):
        obs, q, alive = carry
        k_act, k_model, k_obs, k_term = jax.random.split(key, 4)
        action = epsilon_greedy(k_act, q, epsilon)
        pred = step_model(obs, action, k_model)
        next_obs = binarise(k_obs, pred.next_obs_logits, binarize)
        terminated = jax.random.bernoulli(k_term, jax.nn.sigmoid(pred.terminated_logit))
        q_next = q_net(next_obs)
        transition = ImaginedStep(
            obs=obs,
            action=action,
            reward=pred.reward,
            terminated=terminated,
            alive=alive,
            q_next_max=greedy_value(q_next),
        )
        return (next_obs, q_next, alive & ~terminated), transition

    init = (start_obs, q_net(start_obs), jnp.ones(start_obs.shape[0], bool))
    _, steps = jax.lax.scan(step, init, jax.random.split(key, horizon))
    return ImaginedRollout(**vars(steps))


def imagined_batch(rollout: ImaginedRollout, gamma: float, td_lambda: float) -> QBatch:
    """Q(lambda) targets over imagined rollouts (no truncation), flattened for minibatching."""
    targets = batched_q_lambda_targets(
        rollout.reward,
        rollout.terminated,
        jnp.zeros_like(rollout.terminated),
        rollout.q_next_max,
        gamma,
        td_lambda,
    )
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    return QBatch(
        obs=flat(rollout.obs),
        action=flat(rollout.action),
        target=flat(targets),
        weight=flat(rollout.alive).astype(jnp.float32),
    )


def ensemble_step_model(ensemble) -> StepModel:
    """Sample one ensemble member per row at each step."""

    def step_model(obs, action, key):
        preds = ensemble(obs, action)
        member = jax.random.randint(key, (obs.shape[0],), 0, ensemble.size)
        rows = jnp.arange(obs.shape[0])
        return jax.tree.map(lambda x: x[member, rows], preds)

    return step_model
