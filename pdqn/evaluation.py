"""Greedy ("target") policy evaluation on separate environments."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.envs import VecEnv
from pdqn.networks import QNetwork
from pdqn.rollout import ActingQ


def evaluate_episodes(
    env: VecEnv, q_net: QNetwork, key: PRNGKeyArray, acting_q: ActingQ | None = None
) -> tuple[Float[Array, " envs"], Int[Array, " envs"]]:
    """Undiscounted return and length of one complete greedy episode in each of ``env.num_envs`` environments
    (greedy over ``acting_q``'s values, if given); a length of ``env.max_episode_steps`` is an episode the time limit
    cut."""
    k_reset, k_run = jax.random.split(key)
    obs, env_state, stats = env.reset(k_reset)
    finished = jnp.zeros(env.num_envs, bool)
    returns = jnp.zeros(env.num_envs)
    lengths = jnp.zeros(env.num_envs, jnp.int32)

    def running(carry):
        *_, finished, t = carry
        return jnp.logical_and(~jnp.all(finished), t <= env.max_episode_steps)

    def step(carry):
        key, obs, env_state, stats, returns, lengths, finished, t = carry
        key, k_env = jax.random.split(key)
        q = q_net(obs)
        if acting_q is not None:
            q, _ = acting_q(q_net, q, obs, env_state, jax.random.fold_in(k_env, 1))
        action = jnp.argmax(q, axis=-1)
        out, env_state, stats = env.step(k_env, env_state, stats, action)
        ends = ~finished & out.done
        returns = jnp.where(ends, out.finished_return, returns)
        lengths = jnp.where(ends, out.finished_length, lengths)
        return key, out.obs, env_state, stats, returns, lengths, finished | out.done, t + 1

    carry = (k_run, obs, env_state, stats, returns, lengths, finished, jnp.asarray(0))
    carry = jax.lax.while_loop(running, step, carry)
    return carry[4], carry[5]


def evaluate_greedy(env: VecEnv, q_net: QNetwork, key: PRNGKeyArray, acting_q: ActingQ | None = None) -> Float[Array, " envs"]:
    """Undiscounted return of one complete greedy episode in each of ``env.num_envs`` environments (greedy over
    ``acting_q``'s values, if given)."""
    return evaluate_episodes(env, q_net, key, acting_q)[0]
