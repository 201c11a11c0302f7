"""The planners' target math against hand-computed arrays: Q(lambda) (gamma 0.9, lambda 0.5), one-step, n-step
and inverse-variance targets."""

import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.targets import (
    batched_q_lambda_targets,
    inverse_variance_target,
    lambda_returns,
    n_step_values,
    one_step_target,
    q_lambda_targets,
)

R = jnp.array([1.0, 0.0, 2.0, 1.0])
V = jnp.array([10.0, 20.0, 30.0, 40.0])  # max_a Q(s_{t+1}, a)
NO = jnp.zeros(4, bool)


def flags(*indices: int) -> jnp.ndarray:
    return jnp.zeros(4, bool).at[jnp.array(indices)].set(True)


def test_no_episode_end():
    # G3 = 1 + .9*40 = 37; G2 = 2 + .9*(.5*30 + .5*37) = 32.15
    # G1 = .9*(.5*20 + .5*32.15) = 23.4675; G0 = 1 + .9*(.5*10 + .5*23.4675) = 16.060375
    got = q_lambda_targets(R, NO, NO, V, gamma=0.9, td_lambda=0.5)
    np.testing.assert_allclose(got, [16.060375, 23.4675, 32.15, 37.0], rtol=1e-6)


def test_last_two_steps_bootstrap_from_their_own_next_state():
    got = q_lambda_targets(R, NO, NO, V, gamma=0.9, td_lambda=0.5)
    # The last transition bootstraps fully from Q(s_4); the one before mixes Q(s_3) = 30, not 40.
    assert got[3] == pytest.approx(1 + 0.9 * 40)
    assert got[2] == pytest.approx(2 + 0.9 * (0.5 * 30 + 0.5 * 37))
    misplaced = 2 + 0.9 * (0.5 * 40 + 0.5 * 37)  # the PQN reference's bootstrap of step T-2
    assert got[2] != pytest.approx(misplaced)


def test_termination_zeroes_bootstrap_and_cuts_trace():
    got = q_lambda_targets(R, flags(1), NO, V, gamma=0.9, td_lambda=0.5)
    # G1 = r1 = 0; G0 = 1 + .9*(.5*10 + .5*0) = 5.5; later steps unaffected
    np.testing.assert_allclose(got, [5.5, 0.0, 32.15, 37.0], rtol=1e-6)


def test_truncation_bootstraps_from_final_observation_and_cuts_trace():
    got = q_lambda_targets(R, NO, flags(1), V, gamma=0.9, td_lambda=0.5)
    # G1 = 0 + .9*20 = 18 (v_1 is Q of the pre-reset final observation); G0 = 1 + .9*(.5*10 + .5*18)
    np.testing.assert_allclose(got, [13.6, 18.0, 32.15, 37.0], rtol=1e-6)


def test_episode_ends_at_the_last_step():
    terminated = q_lambda_targets(R, flags(3), NO, V, gamma=0.9, td_lambda=0.5)
    np.testing.assert_allclose(terminated[2:], [2 + 0.9 * (0.5 * 30 + 0.5 * 1), 1.0], rtol=1e-6)
    truncated = q_lambda_targets(R, NO, flags(3), V, gamma=0.9, td_lambda=0.5)
    np.testing.assert_allclose(truncated[3], 37.0, rtol=1e-6)


def test_termination_and_truncation_at_the_same_step_is_termination():
    both = q_lambda_targets(R, flags(1), flags(1), V, gamma=0.9, td_lambda=0.5)
    np.testing.assert_allclose(both, q_lambda_targets(R, flags(1), NO, V, gamma=0.9, td_lambda=0.5))


def test_lambda_zero_is_one_step_q_learning():
    got = q_lambda_targets(R, NO, NO, V, gamma=0.9, td_lambda=0.0)
    np.testing.assert_allclose(got, R + 0.9 * V, rtol=1e-6)


def test_lambda_one_is_monte_carlo_with_final_bootstrap():
    got = q_lambda_targets(R, NO, NO, V, gamma=0.9, td_lambda=1.0)
    expected = [1 + 0.9 * (0 + 0.9 * (2 + 0.9 * 37)), 0.9 * (2 + 0.9 * 37), 2 + 0.9 * 37, 37.0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_lambda_returns_matches_recursion_with_varying_discounts():
    r, d, v, lam = jnp.array([1.0, 2.0]), jnp.array([0.5, 0.25]), jnp.array([4.0, 8.0]), jnp.array([0.5, 0.5])
    g1 = 2.0 + 0.25 * 8.0
    g0 = 1.0 + 0.5 * (0.5 * 4.0 + 0.5 * g1)
    np.testing.assert_allclose(lambda_returns(r, d, v, lam), [g0, g1], rtol=1e-6)


def test_batched_targets_treat_each_env_independently():
    r = jnp.stack([R, R[::-1]], axis=1)
    v = jnp.stack([V, V[::-1]], axis=1)
    term = jnp.stack([NO, flags(1)], axis=1)
    trunc = jnp.stack([flags(2), NO], axis=1)
    got = batched_q_lambda_targets(r, term, trunc, v, gamma=0.9, td_lambda=0.5)
    np.testing.assert_allclose(got[:, 0], q_lambda_targets(R, NO, flags(2), V, gamma=0.9, td_lambda=0.5), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], q_lambda_targets(R[::-1], flags(1), NO, V[::-1], gamma=0.9, td_lambda=0.5), rtol=1e-6)


def test_one_step_target_discounts_the_greedy_value_by_the_chance_of_going_on():
    # r + gamma (1 - p) max_a Q(s', a): 1 + 0.5 * 0.75 * 4 = 2.5; a certain termination keeps the reward alone.
    assert float(one_step_target(jnp.float32(1.0), jnp.float32(0.25), jnp.array([4.0, -1.0]), 0.5)) == pytest.approx(2.5)
    assert float(one_step_target(jnp.float32(0.5), jnp.float32(1.0), jnp.array([2.0, 3.0]), 0.5)) == pytest.approx(0.5)


def test_n_step_values_sum_imagined_rewards_then_bootstrap_and_stop_at_a_termination():
    # H = 3 steps: rewards 1, 2, 4; the second step terminates, so the third is past the end (not alive).
    r_t = jnp.array([1.0, 2.0, 4.0])
    alive_t = jnp.array([True, True, False])
    terminated_t = jnp.array([False, True, False])
    q_next_max_t = jnp.array([10.0, 20.0, 30.0])
    gamma = 0.5
    expected = [
        1.0 + gamma * 10.0,  # v_1 = r_0 + gamma q_0
        1.0 + gamma * 2.0,  # v_2 = r_0 + gamma r_1, then nothing: the second step terminated
        1.0 + gamma * 2.0,  # v_3: the third step is past the end
    ]
    np.testing.assert_allclose(n_step_values(r_t, alive_t, terminated_t, q_next_max_t, gamma), expected, rtol=1e-6)
    # Nothing ends: v_3 = 1 + .5*2 + .25*4 + .125*30
    np.testing.assert_allclose(n_step_values(r_t, jnp.ones(3, bool), NO[:3], q_next_max_t, gamma)[2], 6.75, rtol=1e-6)


def test_inverse_variance_target_trusts_agreeing_samples_and_falls_back_where_they_disagree():
    floor = 0.5  # the model-free target's weight is 1 / 0.5 = 2
    # Two samples of one horizon that agree on 3: weight 1 / (0 + 0.5) = 2, so the target is the mean of 1 and 3.
    target, model_free_weight, spread = inverse_variance_target(jnp.float32(1.0), jnp.array([[3.0], [3.0]]), jnp.bool_(True), floor)
    np.testing.assert_allclose([target, model_free_weight, spread], [2.0, 0.5, 0.0], rtol=1e-6)
    # They disagree (2 vs 4: variance 1): weight 1 / 1.5 = 2/3 on their mean 3.
    target, model_free_weight, spread = inverse_variance_target(jnp.float32(1.0), jnp.array([[2.0], [4.0]]), jnp.bool_(True), floor)
    np.testing.assert_allclose(target, (2 * 1 + (2 / 3) * 3) / (2 + 2 / 3), rtol=1e-6)
    np.testing.assert_allclose([model_free_weight, spread], [2 / (2 + 2 / 3), 1.0], rtol=1e-6)
    # Not valid (a time-limit cut): the model-free target alone.
    target, model_free_weight, _ = inverse_variance_target(jnp.float32(1.0), jnp.array([[3.0], [3.0]]), jnp.bool_(False), floor)
    np.testing.assert_allclose([target, model_free_weight], [1.0, 1.0], rtol=1e-6)
