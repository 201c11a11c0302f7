"""Collect: a scan over time of epsilon-greedy steps in the vectorised environments."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from pdqn.envs import VecEnv
from pdqn.networks import QNetwork, greedy_value
from pdqn.schedules import epsilon_greedy
from pdqn.state import TrainState


class Rollout(eqx.Module):
    """``num_steps`` x ``num_envs`` real transitions, time-major."""

    obs: Float[Array, "T envs height width channels"]
    action: Int[Array, "T envs"]
    reward: Float[Array, "T envs"]
    terminated: Bool[Array, "T envs"]
    truncated: Bool[Array, "T envs"]
    next_obs: Float[Array, "T envs height width channels"]
    """The true next observation (pre-reset where the episode ended)."""
    q_next_max: Float[Array, "T envs"]
    """max_a Q(next_obs, a) under the behaviour network, the Q(lambda) bootstrap."""
    finished_return: Float[Array, "T envs"]
    finished_length: Int[Array, "T envs"]


class Transition(eqx.Module):
    """One step of ``num_envs`` transitions; a scan over time stacks them into a :class:`Rollout`."""

    obs: Float[Array, "envs height width channels"]
    action: Int[Array, " envs"]
    reward: Float[Array, " envs"]
    terminated: Bool[Array, " envs"]
    truncated: Bool[Array, " envs"]
    next_obs: Float[Array, "envs height width channels"]
    q_next_max: Float[Array, " envs"]
    finished_return: Float[Array, " envs"]
    finished_length: Int[Array, " envs"]


def collect(env: VecEnv, state: TrainState, epsilon: Float[Array, ""], num_steps: int) -> tuple[TrainState, Rollout]:
    """Run ``num_steps`` vectorised steps with the current Q-network."""
    key, rollout_key = jax.random.split(state.key)
    q_net = state.q_net

    def step(carry, key):
        env_state, stats, obs, q = carry
        k_act, k_env = jax.random.split(key)
        action = epsilon_greedy(k_act, q, epsilon)
        out, env_state, stats = env.step(k_env, env_state, stats, action)
        q_next = q_net(out.obs)
        # Only a truncated step needs Q of its pre-reset observation; skip that pass when none did
        # (under a vmap over seeds the predicate is batched and both branches run).
        q_final = jax.lax.cond(
            jnp.any(out.truncated), lambda: q_net(out.final_obs), lambda: q_next
        )
        q_boot = jnp.where(out.truncated[:, None], q_final, q_next)
        transition = Transition(
            obs=obs,
            action=action,
            reward=out.reward,
            terminated=out.terminated,
            truncated=out.truncated,
            next_obs=out.final_obs,
            q_next_max=greedy_value(q_boot),
            finished_return=out.finished_return,
            finished_length=out.finished_length,
        )
        return (env_state, stats, out.obs, q_next), transition

    init = (state.env_state, state.env_stats, state.obs, q_net(state.obs))
    (env_state, stats, obs, _), steps = jax.lax.scan(step, init, jax.random.split(rollout_key, num_steps))
    rollout = Rollout(**vars(steps))
    state = eqx.tree_at(
        lambda s: (s.env_state, s.env_stats, s.obs, s.key), state, (env_state, stats, obs, key)
    )
    return state, rollout


def episode_metrics(rollout: Rollout) -> dict[str, Array]:
    """Mean undiscounted return and length of the episodes that ended in this rollout (NaN if none)."""
    done = jnp.logical_or(rollout.terminated, rollout.truncated)
    count = jnp.sum(done)
    mean_return = jnp.sum(jnp.where(done, rollout.finished_return, 0.0)) / count
    mean_length = jnp.sum(jnp.where(done, rollout.finished_length, 0)) / count
    nan = jnp.asarray(jnp.nan, jnp.float32)
    return {
        "behaviour_return": jnp.where(count > 0, mean_return, nan),
        "behaviour_length": jnp.where(count > 0, mean_length, nan),
        "episodes": count,
    }
