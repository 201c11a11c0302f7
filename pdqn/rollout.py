"""Collect: a scan over time of epsilon-greedy steps in the vectorised environments."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.envs import EpisodeStats, VecEnv
from pdqn.metrics import BEHAVIOUR_LENGTH, BEHAVIOUR_RETURN, EPISODES, REWARD_RATE, TERMINATION_RATE
from pdqn.networks import QNetwork, greedy_value
from pdqn.schedules import epsilon_greedy


class EnvCarry(eqx.Module):
    """Where the training environments are between updates."""

    state: Any
    """The environments' states (gymnax's, or a frame stack around them)."""
    stats: EpisodeStats
    obs: Float[Array, "envs height width channels"]


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
    greedy_next_action: Int[Array, "T envs"]
    """argmax_a Q(next_obs, a): where a planner acting greedily from the real next state starts."""
    finished_return: Float[Array, "T envs"]
    finished_length: Int[Array, "T envs"]
    env_state: Any = None
    """The environment state each ``obs`` was observed in (``[T, envs]`` leaves), kept only for a planner
    that steps the real game from real states (the oracle model); None otherwise."""
    next_env_state: Any = None
    """The state after each step (a new episode's where the step ended one), kept with ``env_state``."""
    changed: Bool[Array, "T envs"] | None = None
    """Where acting with a world model (the veto, or search) changed the greedy action (None: acting with the
    Q-network alone)."""
    terminated_every: Float[Array, "T envs actions"] | None = None
    """1 where each action would have ended the episode, 0 where not, -1 where not labelled: the taken action's real
    outcome, the others' from a step of a copy of the state (None: not labelled)."""


ActingQ = Callable[
    [QNetwork, Float[Array, "envs actions"], Float[Array, "envs height width channels"], Any, PRNGKeyArray],
    tuple[Float[Array, "envs actions"], Bool[Array, " envs"]],
]
"""``(q_net, q, obs, env_state, key) -> (values to act on, where their greedy action differs from q's)``: acting with
more than the Q-network's values ``q = q_net(obs)`` (the termination veto of :mod:`pdqn.acting`, search of
:mod:`pdqn.search`)."""


class Transition(eqx.Module):
    """One step of ``num_envs`` transitions; a scan over time stacks them into a :class:`Rollout`."""

    obs: Float[Array, "envs height width channels"]
    action: Int[Array, " envs"]
    reward: Float[Array, " envs"]
    terminated: Bool[Array, " envs"]
    truncated: Bool[Array, " envs"]
    next_obs: Float[Array, "envs height width channels"]
    q_next_max: Float[Array, " envs"]
    greedy_next_action: Int[Array, " envs"]
    finished_return: Float[Array, " envs"]
    finished_length: Int[Array, " envs"]
    env_state: Any = None
    next_env_state: Any = None
    changed: Bool[Array, " envs"] | None = None
    terminated_every: Float[Array, "envs actions"] | None = None


def every_action_terminated(
    env: VecEnv,
    key: PRNGKeyArray,
    state: Any,
    action: Int[Array, " envs"],
    terminated: Bool[Array, " envs"],
    num_actions: int,
    labelled: int | None = None,
) -> Float[Array, "envs actions"]:
    """Whether each action ends the episode (1 or 0), from a step of a copy of each state per action, in the first
    ``labelled`` environments (None: all); the taken action's entry is its real outcome (the game is stochastic: a
    copy's step is a sample, the real one is what happened), and the other environments' untaken actions are -1 (not
    labelled)."""
    envs = action.shape[0]
    labelled = envs if labelled is None else labelled
    repeat = lambda x: jnp.repeat(x[:labelled], num_actions, axis=0)  # noqa: E731
    actions = jnp.tile(jnp.arange(num_actions, dtype=jnp.int32), labelled)
    out, _ = env.transition(key, jax.tree.map(repeat, state), actions)
    every = jnp.full((envs, num_actions), -1.0).at[:labelled].set(out.terminated.reshape(labelled, num_actions))
    taken = jax.nn.one_hot(action, num_actions, dtype=jnp.bool_)
    return jnp.where(taken, terminated[:, None].astype(jnp.float32), every)


def collect(
    env: VecEnv,
    q_net: QNetwork,
    carry: EnvCarry,
    key: PRNGKeyArray,
    *,
    epsilon: Float[Array, ""],
    num_steps: int,
    keep_env_states: bool = False,
    acting_q: ActingQ | None = None,
    label_every_action: bool = False,
    labelled_envs: int | None = None,
) -> tuple[EnvCarry, Rollout]:
    """Run ``num_steps`` vectorised epsilon-greedy steps with ``q_net`` (over ``acting_q``'s values, if given;
    ``label_every_action``: also every action's termination in ``labelled_envs`` of them, :func:`every_action_terminated`)."""

    def step(carry: tuple[EnvCarry, Array], key: PRNGKeyArray):
        envs, q = carry
        k_act, k_env = jax.random.split(key)
        changed = None
        if acting_q is not None:
            q, changed = acting_q(q_net, q, envs.obs, envs.state, jax.random.fold_in(k_act, 1))
        action = epsilon_greedy(k_act, q, epsilon)
        out, env_state, stats = env.step(k_env, envs.state, envs.stats, action)
        terminated_every = None
        if label_every_action:
            # A key folded from the env's, so the rollout's own stream is what it is without the labels.
            k_label = jax.random.fold_in(k_env, 1)
            terminated_every = every_action_terminated(
                env, k_label, envs.state, action, out.terminated, q.shape[-1], labelled_envs
            )
        q_next = q_net(out.obs)
        # Only a truncated step needs Q of its pre-reset observation; skip that pass when none did
        # (under a vmap over seeds the predicate is batched and both branches run).
        q_final = jax.lax.cond(jnp.any(out.truncated), lambda: q_net(out.final_obs), lambda: q_next)
        q_boot = jnp.where(out.truncated[:, None], q_final, q_next)
        transition = Transition(
            obs=envs.obs,
            action=action,
            reward=out.reward,
            terminated=out.terminated,
            truncated=out.truncated,
            next_obs=out.final_obs,
            q_next_max=greedy_value(q_boot),
            greedy_next_action=jnp.argmax(q_boot, axis=-1),
            finished_return=out.finished_return,
            finished_length=out.finished_length,
            env_state=envs.state if keep_env_states else None,
            next_env_state=env_state if keep_env_states else None,
            changed=changed,
            terminated_every=terminated_every,
        )
        return (EnvCarry(state=env_state, stats=stats, obs=out.obs), q_next), transition

    (carry, _), steps = jax.lax.scan(step, (carry, q_net(carry.obs)), jax.random.split(key, num_steps))
    return carry, Rollout(**vars(steps))


def episode_metrics(rollout: Rollout) -> dict[str, Array]:
    """Mean undiscounted return and length of the episodes that ended in this rollout (NaN if none), and the
    batch's reward and termination rates."""
    done = jnp.logical_or(rollout.terminated, rollout.truncated)
    count = jnp.sum(done)
    mean_return = jnp.sum(jnp.where(done, rollout.finished_return, 0.0)) / count
    mean_length = jnp.sum(jnp.where(done, rollout.finished_length, 0)) / count
    nan = jnp.asarray(jnp.nan, jnp.float32)
    return {
        BEHAVIOUR_RETURN.name: jnp.where(count > 0, mean_return, nan),
        BEHAVIOUR_LENGTH.name: jnp.where(count > 0, mean_length, nan),
        EPISODES.name: count,
        REWARD_RATE.name: jnp.mean(rollout.reward),
        TERMINATION_RATE.name: jnp.mean(rollout.terminated),
    }
