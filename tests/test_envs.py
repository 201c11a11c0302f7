"""The vectorised wrapper keeps termination and time-limit truncation apart."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.config import GAMES
from pdqn.envs import VecEnv, make_env
from tests.toy_env import Chain


@pytest.mark.parametrize("game", GAMES)
def test_every_game_resets_and_steps(game):
    env = make_env(game, 3)
    obs, state, stats = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (3, *env.obs_shape) and obs.dtype == jnp.float32
    out, state, stats = env.step(jax.random.PRNGKey(1), state, stats, jnp.zeros(3, jnp.int32))
    assert out.obs.shape == obs.shape and out.reward.shape == (3,)
    assert set(np.unique(np.asarray(out.obs))) <= {0.0, 1.0}


def test_time_limit_is_truncation_with_the_pre_reset_final_observation():
    game = make_env("breakout", 2)
    env = VecEnv(env=game.env, params=game.params.replace(max_steps_in_episode=3), num_envs=2)
    obs, state, stats = env.reset(jax.random.PRNGKey(0))
    observed = []
    for t in range(3):
        out, state, stats = env.step(jax.random.PRNGKey(t + 1), state, stats, jnp.zeros(2, jnp.int32))
        observed.append(out)
    first, last = observed[0], observed[-1]
    assert not jnp.any(first.truncated) and not jnp.any(first.terminated)
    assert jnp.all(last.truncated) and not jnp.any(last.terminated)
    np.testing.assert_array_equal(last.finished_length, [3, 3])
    # The ball keeps falling: the final observation is the third step's, not the reset one.
    assert not jnp.array_equal(last.final_obs, last.obs)
    np.testing.assert_array_equal(first.final_obs, first.obs)
    assert jnp.all(stats.episode_length == 0) and jnp.all(stats.episode_return == 0)


def test_termination_is_not_truncation_and_records_the_return():
    env = VecEnv(env=Chain(length=3, quit_reward=0.25), params=Chain().default_params, num_envs=2)
    obs, state, stats = env.reset(jax.random.PRNGKey(0))
    out, state, stats = env.step(jax.random.PRNGKey(1), state, stats, jnp.array([1, 0]))
    np.testing.assert_array_equal(out.terminated, [True, False])
    np.testing.assert_array_equal(out.truncated, [False, False])
    assert out.finished_return[0] == pytest.approx(0.25) and out.finished_length[0] == 1
    # env 0 was reset; env 1 moved on and keeps counting its episode
    np.testing.assert_array_equal(out.obs[0], Chain().all_observations()[0])
    np.testing.assert_array_equal(out.obs[1], Chain().all_observations()[1])
    np.testing.assert_array_equal(stats.episode_length, [0, 1])


def test_unknown_game_is_rejected():
    with pytest.raises(ValueError, match="unknown env"):
        make_env("pong", 1)


def test_frame_stack_shifts_in_each_frame_and_starts_over_with_zeros_after_an_episode_ends():
    chain = Chain(length=3)  # one-hot position on a 3x3 grid; action 0 moves right, action 1 quits
    env = VecEnv(env=chain, params=chain.default_params, num_envs=1, frames=3)
    assert env.obs_shape == (3, 3, 3)
    position = lambda obs, frame: int(np.argmax(np.asarray(obs)[0, :, :, frame]))  # noqa: E731
    obs, state, stats = env.reset(jax.random.PRNGKey(0))
    assert not np.asarray(obs)[..., :2].any() and position(obs, 2) == 0  # older frames are zeros
    out, state, stats = env.step(jax.random.PRNGKey(1), state, stats, jnp.zeros(1, jnp.int32))
    assert not np.asarray(out.obs)[..., 0].any() and [position(out.obs, f) for f in (1, 2)] == [0, 1]
    np.testing.assert_array_equal(out.final_obs, out.obs)
    before = out.obs
    out, state, stats = env.step(jax.random.PRNGKey(2), state, stats, jnp.ones(1, jnp.int32))
    assert bool(out.terminated[0])  # quit: the final stack ends the episode, the next one starts over
    np.testing.assert_array_equal(np.asarray(out.final_obs)[..., :2], np.asarray(before)[..., 1:])
    assert position(out.final_obs, 2) == 1
    assert not np.asarray(out.obs)[..., :2].any() and position(out.obs, 2) == 0
