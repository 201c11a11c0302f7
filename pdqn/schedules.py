"""Exploration schedules and the epsilon-greedy policy."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


def linear_epsilon(
    update: Int[Array, ""] | int, start: float | int, finish: float | int, decay_updates: float | int
) -> Float[Array, ""]:
    """Epsilon decayed linearly from ``start`` to ``finish`` over ``decay_updates`` updates."""
    if decay_updates <= 0:
        return jnp.asarray(finish, jnp.float32)
    frac = jnp.clip(jnp.asarray(update, jnp.float32) / decay_updates, 0.0, 1.0)
    return start + frac * (finish - start)


def epsilon_greedy(
    key: PRNGKeyArray, q: Float[Array, "batch actions"], epsilon: Float[Array, ""] | float
) -> Int[Array, " batch"]:
    """Greedy action per row, replaced by a uniform one with probability ``epsilon``."""
    k_explore, k_action = jax.random.split(key)
    greedy = jnp.argmax(q, axis=-1)
    random = jax.random.randint(k_action, greedy.shape, 0, q.shape[-1])
    explore = jax.random.uniform(k_explore, greedy.shape) < epsilon
    return jnp.where(explore, random, greedy)
