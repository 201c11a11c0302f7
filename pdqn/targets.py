"""Q(lambda) targets as small unbatched pure functions (time-major, rlax naming)."""

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


def lambda_returns(
    r_t: Float[Array, " T"],
    discount_t: Float[Array, " T"],
    v_t: Float[Array, " T"],
    lambda_t: Float[Array, " T"],
) -> Float[Array, " T"]:
    """Lambda-returns of one rollout, computed backwards in time.

    Transition ``t`` goes from ``s_t`` to ``s_{t+1}`` with reward ``r_t``;
    ``v_t`` is the bootstrap value of ``s_{t+1}`` (for Q(lambda): ``max_a Q(s_{t+1}, a)``)::

        G_t = r_t + discount_t * ((1 - lambda_t) * v_t + lambda_t * G_{t+1})
        G_T = v_{T-1}      (so the last step bootstraps fully: G_{T-1} = r + discount * v_{T-1})

    ``discount_t`` is zero where ``s_{t+1}`` is terminal; ``lambda_t`` is zero where the
    episode ended at ``t`` (terminated or truncated), so a return never mixes episodes.
    """

    def backward(g_next: Float[Array, ""], step: tuple[Array, Array, Array, Array]):
        r, discount, v, lam = step
        g = r + discount * ((1.0 - lam) * v + lam * g_next)
        return g, g

    _, returns = jax.lax.scan(backward, v_t[-1], (r_t, discount_t, v_t, lambda_t), reverse=True)
    return returns


def q_lambda_targets(
    r_t: Float[Array, " T"],
    terminated_t: Bool[Array, " T"],
    truncated_t: Bool[Array, " T"],
    q_next_max_t: Float[Array, " T"],
    *,
    gamma: float,
    td_lambda: float,
) -> Float[Array, " T"]:
    """Peng's Q(lambda) targets with termination and time-limit truncation kept apart.

    ``q_next_max_t`` is ``max_a Q(s_{t+1}, a)`` where ``s_{t+1}`` is the true next
    observation (the pre-reset final observation when the episode ended at ``t``).
    Termination zeroes the bootstrap; truncation keeps it but cuts the lambda trace.
    """
    discount_t = gamma * (1.0 - terminated_t.astype(r_t.dtype))
    ended = jnp.logical_or(terminated_t, truncated_t)
    lambda_t = td_lambda * (1.0 - ended.astype(r_t.dtype))
    return lambda_returns(r_t, discount_t, q_next_max_t, lambda_t)


def batched_q_lambda_targets(
    r_t: Float[Array, "T envs"],
    terminated_t: Bool[Array, "T envs"],
    truncated_t: Bool[Array, "T envs"],
    q_next_max_t: Float[Array, "T envs"],
    *,
    gamma: float,
    td_lambda: float,
) -> Float[Array, "T envs"]:
    """:func:`q_lambda_targets` over a time-major batch of environments."""
    one_env = functools.partial(q_lambda_targets, gamma=gamma, td_lambda=td_lambda)
    return jax.vmap(one_env, in_axes=1, out_axes=1)(r_t, terminated_t, truncated_t, q_next_max_t)


def one_step_target(
    r_t: Float[Array, ""], p_terminal_t: Float[Array, ""], q_t: Float[Array, " actions"], gamma: float
) -> Float[Array, ""]:
    """The one-step target of a (possibly predicted) transition whose termination is a probability::

        target = r_t + gamma * (1 - p_terminal_t) * max_a q_t[a]

    ``q_t`` is ``Q(s_{t+1}, .)``; with ``p_terminal_t`` 0 or 1 it is the one-step Q-learning target.
    """
    return r_t + gamma * (1.0 - p_terminal_t) * jnp.max(q_t)


def n_step_values(
    r_t: Float[Array, " H"],
    alive_t: Bool[Array, " H"],
    terminated_t: Bool[Array, " H"],
    q_next_max_t: Float[Array, " H"],
    gamma: float,
) -> Float[Array, " H"]:
    """The values of one imagined rollout cut after each of its ``H`` steps (index ``h - 1`` holds horizon ``h``)::

        v_h = sum_{t < h} gamma^t alive_t r_t + gamma^h alive_{h-1} (1 - terminated_{h-1}) q_next_max_{h-1}

    ``alive_t`` is False once the imagined episode ended at an earlier step; ``q_next_max_t`` is
    ``max_a Q(s_{t+1}, a)``.
    """
    discount_t = gamma ** jnp.arange(r_t.shape[0], dtype=r_t.dtype)
    alive = alive_t.astype(r_t.dtype)
    rewards = jnp.cumsum(discount_t * alive * r_t)
    return rewards + gamma * discount_t * alive * (1.0 - terminated_t.astype(r_t.dtype)) * q_next_max_t


def inverse_variance_target(
    g_t: Float[Array, ""], expanded_t: Float[Array, "samples H"], valid: Bool[Array, ""], floor: float
) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
    """A model-free target ``g_t`` and ``H`` expanded ones (``samples`` draws each) combined by inverse variance::

        w_0 = 1 / floor,   w_h = 1 / (var_h + floor)   (0 unless ``valid``),
        target = (w_0 g_t + sum_h w_h mean_h) / (w_0 + sum_h w_h)

    Also the model-free target's normalised weight ``w_0 / sum w`` and the mean over horizons of the expansions'
    standard deviation.
    """
    mean, variance = jnp.mean(expanded_t, axis=0), jnp.var(expanded_t, axis=0)
    weights = jnp.where(valid, 1.0 / (variance + floor), 0.0)
    total = 1.0 / floor + jnp.sum(weights)
    target = (g_t / floor + jnp.sum(weights * mean)) / total
    return target, (1.0 / floor) / total, jnp.mean(jnp.sqrt(variance))
