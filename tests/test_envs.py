"""The vectorised wrapper keeps termination and time-limit truncation apart."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.config import GAMES
from pdqn.envs import StickyState, VecEnv, make_env
from tests.toy_env import Chain, Echo


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


# ---- sticky actions ---------------------------------------------------------------------

STICKY = 0.25
EPISODE = 8  # steps of every Echo episode
ACTIONS = 3


def repeats_and_misses(decided: np.ndarray, executed: np.ndarray, previous: np.ndarray) -> tuple[int, int, int]:
    """Over steps whose decision differs from the previously executed action: how many executed the
    previous action (a sticky repeat), how many the decision, and how many neither (impossible)."""
    differs = decided != previous
    repeated = differs & (executed == previous)
    obeyed = differs & (executed == decided)
    return int(repeated.sum()), int(obeyed.sum()), int((differs & ~repeated & ~obeyed).sum())


def binomial_tolerance(count: int, p: float) -> float:
    """Five standard deviations of a frequency over ``count`` Bernoulli(p) trials."""
    return 5 * float(np.sqrt(p * (1 - p) / count))


def echo_rollout(sticky: float, steps: int, envs: int, seed: int = 0):
    """Random decisions on a frame-stacked Echo env: the decided actions, and for every step the executed
    action and the one executed before it in the episode (-1 at an episode's first step), both read off
    the two stacked frames of the pre-reset observation."""
    game = Echo(num_actions=ACTIONS, length=EPISODE)
    env = VecEnv(env=game, params=game.default_params, num_envs=envs, frames=2, sticky_actions=sticky)
    decided = jax.random.randint(jax.random.PRNGKey(seed), (steps, envs), 0, ACTIONS)

    def step(carry, inputs):
        state, stats = carry
        key, action = inputs
        out, state, stats = env.step(key, state, stats, action)
        return (state, stats), out.final_obs[:, 0, :, :]  # [envs, actions, 2 frames]

    _, reset_state, stats = env.reset(jax.random.PRNGKey(seed + 1))
    keys = jax.random.split(jax.random.PRNGKey(seed + 2), steps)
    _, frames = jax.lax.scan(step, (reset_state, stats), (keys, decided))
    frames = np.asarray(frames)
    shown = lambda f: np.where(frames[..., f].any(-1), frames[..., f].argmax(-1), -1)  # noqa: E731
    return np.asarray(decided), shown(1), shown(0)


class NumpyEcho:
    """The game inside a numpy MinAtar ``Environment``: records the actions it is asked to execute and
    ends every episode after ``EPISODE`` steps."""

    def __init__(self) -> None:
        self.executed: list[int] = []
        self.time = 0

    def act(self, action: int) -> tuple[float, bool]:
        self.executed.append(action)
        self.time += 1
        return 0.0, self.time >= EPISODE

    def reset(self) -> None:
        self.time = 0


def minatar_rollout(sticky: float, decided: np.ndarray, seed: int = 0):
    """numpy MinAtar's own ``Environment.act`` on the Echo game, fed ``decided`` one step at a time with
    the usual loop (reset when an episode ends): the executed actions and the previous executed ones."""
    minatar = pytest.importorskip("minatar")
    env = minatar.Environment("breakout", sticky_action_prob=sticky)
    env.env = NumpyEcho()  # MinAtar's wrapper, whose act() is the rule under test, around the echo game
    env.random = np.random.RandomState(seed)  # its sticky coin only: the echo game draws nothing
    env.reset()
    previous = []
    for action in decided:
        previous.append(env.env.executed[-1] if env.env.time > 0 else -1)
        _, terminal = env.act(int(action))
        if terminal:
            env.reset()
    return np.asarray(env.env.executed), np.asarray(previous)


def test_sticky_actions_repeat_the_previously_executed_action_like_numpy_minatar():
    """Within an episode both implementations execute either the decision or the previously executed
    action (so a repeat can repeat a repeat), the latter with probability ``p``."""
    decided, executed, previous = echo_rollout(STICKY, steps=64, envs=256)
    inside = previous >= 0
    ours = repeats_and_misses(decided[inside], executed[inside], previous[inside])
    theirs_executed, theirs_previous = minatar_rollout(STICKY, decided.T.reshape(-1))
    inside_theirs = theirs_previous >= 0
    theirs = repeats_and_misses(
        decided.T.reshape(-1)[inside_theirs], theirs_executed[inside_theirs], theirs_previous[inside_theirs]
    )
    for repeated, obeyed, impossible in (ours, theirs):
        assert impossible == 0
        trials = repeated + obeyed
        assert abs(repeated / trials - STICKY) < binomial_tolerance(trials, STICKY), (repeated, trials)
    # A repeat of a repeat: the executed action differs from both the decision and the previous decision.
    chained = inside[1:] & (executed[1:] != decided[1:]) & (executed[1:] != decided[:-1])
    assert chained.any()


def test_the_first_step_of_an_episode_is_never_sticky_unlike_numpy_minatars_carry_over():
    decided, executed, previous = echo_rollout(STICKY, steps=64, envs=256)
    first = previous < 0
    assert first.sum() == 64 * 256 // EPISODE
    np.testing.assert_array_equal(executed[first], decided[first])
    # numpy MinAtar keeps its last action across reset(): a new episode's first step can repeat the old one.
    stream = decided.T.reshape(-1)
    theirs_executed, _ = minatar_rollout(STICKY, stream)
    starts = np.arange(EPISODE, len(stream), EPISODE)
    carried = (theirs_executed[starts] == theirs_executed[starts - 1]) & (stream[starts] != theirs_executed[starts - 1])
    assert carried.any()


def test_without_sticky_actions_the_decision_is_executed_and_the_state_is_unchanged():
    decided, executed, _ = echo_rollout(0.0, steps=16, envs=8)
    np.testing.assert_array_equal(executed, decided)
    env = make_env("breakout", 2, frames=1)
    assert not isinstance(env.reset(jax.random.PRNGKey(0))[1], StickyState)


def test_sticky_breakout_steps_with_frame_stacking_and_records_the_setting():
    env = make_env("breakout", 3, frames=2, sticky_actions=0.1)
    obs, state, stats = env.reset(jax.random.PRNGKey(0))
    assert isinstance(state, StickyState) and obs.shape == (3, 10, 10, 8)
    for t in range(3):
        out, state, stats = env.step(jax.random.PRNGKey(t + 1), state, stats, jnp.full(3, 1, jnp.int32))
    assert out.obs.shape == obs.shape and "sticky actions 0.1" in env.card
    with pytest.raises(ValueError, match="sticky_actions"):
        make_env("breakout", 1, sticky_actions=1.0)
