"""Vectorised gymnax MinAtar environments with termination and truncation kept apart."""

from typing import Any

import equinox as eqx
import gymnax
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.config import GAMES

def gymnax_id(game: str) -> str:
    """gymnax's name of a MinAtar game: ``space_invaders`` -> ``SpaceInvaders-MinAtar``."""
    return "".join(word.capitalize() for word in game.split("_")) + "-MinAtar"


class EpisodeStats(eqx.Module):
    """Undiscounted return and length of each environment's current episode."""

    episode_return: Float[Array, " envs"]
    episode_length: Int[Array, " envs"]


class EnvStep(eqx.Module):
    """What one vectorised step returns.

    ``obs`` is already reset where the episode ended; ``final_obs`` is the true next
    observation before any reset, the one to bootstrap from after a truncation.
    ``finished_return``/``finished_length`` hold the completed episode's figures where
    ``terminated | truncated`` and are meaningless elsewhere.
    """

    obs: Float[Array, "envs height width channels"]
    final_obs: Float[Array, "envs height width channels"]
    reward: Float[Array, " envs"]
    terminated: Bool[Array, " envs"]
    truncated: Bool[Array, " envs"]
    finished_return: Float[Array, " envs"]
    finished_length: Int[Array, " envs"]

    @property
    def done(self) -> Bool[Array, " envs"]:
        return jnp.logical_or(self.terminated, self.truncated)


class Outcome(eqx.Module):
    """What one step of a batch of environment states gives (see :class:`EnvStep` for the fields)."""

    obs: Float[Array, "batch height width channels"]
    final_obs: Float[Array, "batch height width channels"]
    reward: Float[Array, " batch"]
    terminated: Bool[Array, " batch"]
    truncated: Bool[Array, " batch"]


def first_stack(frame: Float[Array, "*batch c"], frames: int) -> Float[Array, "*batch channels"]:
    """The stack an episode starts with: ``frames - 1`` frames of zeros, then ``frame``."""
    older = jnp.zeros((*frame.shape[:-1], frame.shape[-1] * (frames - 1)), frame.dtype)
    return jnp.concatenate([older, frame], axis=-1)


def push_frame(stack: Float[Array, "*batch channels"], frame: Float[Array, "*batch c"]) -> Float[Array, "*batch channels"]:
    """Drop the oldest frame of ``stack`` and append ``frame``."""
    return jnp.concatenate([stack[..., frame.shape[-1] :], frame], axis=-1)


class StackedState(eqx.Module):
    """A game's state together with the frame stack it was last observed as."""

    game: Any
    frames: Float[Array, "envs height width channels"]


NO_PREVIOUS_ACTION = -1
""":attr:`StickyState.previous` at an episode's start: there is no action to repeat yet."""


class StickyState(eqx.Module):
    """An environment's state (the game's, or a :class:`StackedState`) with the action it last executed."""

    inner: Any
    previous: Int[Array, " envs"]
    """The action the environment executed at the previous step of this episode (:data:`NO_PREVIOUS_ACTION`
    at the episode's start)."""


class VecEnv(eqx.Module):
    """``num_envs`` copies of one MinAtar game, stepped together with auto-reset.

    With ``frames > 1`` an observation is the last ``frames`` frames stacked along the channel axis,
    oldest first (frames from before the episode's start are zeros): MinAtar's objects move on hidden
    timers that one frame does not show.

    With ``sticky_actions = p > 0`` each step executes, with probability ``p``, the action the environment
    executed at its previous step instead of the one asked for, as numpy MinAtar's ``Environment.act`` does
    ("previous" is what was executed, so a repeat can repeat a repeat). Unlike MinAtar, whose wrapper keeps
    its last action across ``reset()``, the first step of an episode is never sticky: an episode does not
    depend on how the one before it ended. The agent's own action is what the caller records.
    """

    env: Any = eqx.field(static=True)
    params: Any = eqx.field(static=True)
    num_envs: int = eqx.field(static=True)
    frames: int = eqx.field(static=True, default=1)
    sticky_actions: float = eqx.field(static=True, default=0.0)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.env.observation_space(self.params).shape)  # type: ignore[return-value]

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        height, width, channels = self.frame_shape
        return (height, width, channels * self.frames)

    @property
    def num_actions(self) -> int:
        return int(self.env.action_space(self.params).n)

    @property
    def max_episode_steps(self) -> int:
        return int(self.params.max_steps_in_episode)

    @property
    def card(self) -> str:
        """What the agent plays, in one line: the game, observations, actions, stickiness, time limit."""
        height, width, channels = self.obs_shape
        stacked = f" ({self.frames} frames stacked)" if self.frames > 1 else ""
        name = getattr(self.env, "name", type(self.env).__name__)
        return (
            f"{name} (gymnax), {height}x{width}x{channels} observations{stacked}, {self.num_actions} actions, "
            f"sticky actions {self.sticky_actions:g}, episodes cut at {self.max_episode_steps} steps"
        )

    def reset(self, key: PRNGKeyArray) -> tuple[Float[Array, "envs height width channels"], Any, EpisodeStats]:
        obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(
            jax.random.split(key, self.num_envs), self.params
        )
        stats = EpisodeStats(
            episode_return=jnp.zeros(self.num_envs), episode_length=jnp.zeros(self.num_envs, jnp.int32)
        )
        obs = obs.astype(jnp.float32)
        if self.frames > 1:
            obs = first_stack(obs, self.frames)
            state = StackedState(game=state, frames=obs)
        if self.sticky_actions > 0:
            state = StickyState(inner=state, previous=jnp.full(self.num_envs, NO_PREVIOUS_ACTION, jnp.int32))
        return obs, state, stats

    def transition(
        self, key: PRNGKeyArray, state: Any, action: Int[Array, " batch"]
    ) -> tuple["Outcome", Any]:
        """One step of a batch of environment states (of any size), auto-reset where the episode ended."""
        if self.sticky_actions == 0:
            return self._game_step(key, state, action)
        k_sticky, k_game = jax.random.split(key)
        repeat = jax.random.uniform(k_sticky, action.shape) < self.sticky_actions
        repeat = jnp.logical_and(repeat, state.previous != NO_PREVIOUS_ACTION)
        executed = jnp.where(repeat, state.previous, action).astype(action.dtype)
        out, inner = self._game_step(k_game, state.inner, executed)
        previous = jnp.where(jnp.logical_or(out.terminated, out.truncated), NO_PREVIOUS_ACTION, executed)
        return out, StickyState(inner=inner, previous=previous.astype(jnp.int32))

    def _game_step(
        self, key: PRNGKeyArray, state: Any, action: Int[Array, " batch"]
    ) -> tuple["Outcome", Any]:
        """:meth:`transition` without sticky actions: ``action`` is what the game executes."""
        game = state.game if self.frames > 1 else state
        obs, game, reward, terminated, truncated, info = jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(key, action.shape[0]), game, action, self.params
        )
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(jnp.asarray(truncated, bool), ~terminated)
        obs = obs.astype(jnp.float32)
        final_obs = info["final_observation"].astype(jnp.float32)
        if self.frames > 1:
            final_obs = push_frame(state.frames, final_obs)
            ended = jnp.logical_or(terminated, truncated)[:, None, None, None]
            obs = jnp.where(ended, first_stack(obs, self.frames), final_obs)
            state = StackedState(game=game, frames=obs)
        else:
            state = game
        outcome = Outcome(
            obs=obs, final_obs=final_obs, reward=reward.astype(jnp.float32), terminated=terminated, truncated=truncated
        )
        return outcome, state

    def step(
        self, key: PRNGKeyArray, state: Any, stats: EpisodeStats, action: Int[Array, " envs"]
    ) -> tuple[EnvStep, Any, EpisodeStats]:
        """:meth:`transition` of all ``num_envs`` environments, with their episodes' running return and length."""
        out, state = self.transition(key, state, action)
        done = jnp.logical_or(out.terminated, out.truncated)
        episode_return = stats.episode_return + out.reward
        episode_length = stats.episode_length + 1
        step = EnvStep(
            obs=out.obs,
            final_obs=out.final_obs,
            reward=out.reward,
            terminated=out.terminated,
            truncated=out.truncated,
            finished_return=episode_return,
            finished_length=episode_length,
        )
        stats = EpisodeStats(
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        return step, state, stats


def make_env(name: str, num_envs: int, frames: int = 1, *, sticky_actions: float = 0.0) -> VecEnv:
    """A vectorised MinAtar game by its short name (``breakout``, ``space_invaders``, ...)."""
    if name not in GAMES:
        raise ValueError(f"unknown env {name!r}: must be one of {'|'.join(GAMES)}")
    if not 0.0 <= sticky_actions < 1.0:
        raise ValueError(f"sticky_actions={sticky_actions!r} is invalid: must be in [0, 1)")
    env, params = gymnax.make(gymnax_id(name))
    return VecEnv(env=env, params=params, num_envs=num_envs, frames=frames, sticky_actions=sticky_actions)
