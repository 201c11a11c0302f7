import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.schedules import epsilon_greedy, linear_epsilon


def test_epsilon_decays_linearly_then_stays():
    assert linear_epsilon(0, 1.0, 0.05, 10) == pytest.approx(1.0)
    assert linear_epsilon(5, 1.0, 0.05, 10) == pytest.approx(0.525)
    assert linear_epsilon(10, 1.0, 0.05, 10) == pytest.approx(0.05)
    assert linear_epsilon(1000, 1.0, 0.05, 10) == pytest.approx(0.05)


def test_zero_decay_means_final_epsilon_from_the_start():
    assert linear_epsilon(0, 1.0, 0.05, 0) == pytest.approx(0.05)


def test_epsilon_greedy_is_greedy_at_zero_and_uniform_at_one():
    q = jnp.tile(jnp.array([[0.0, 3.0, 1.0]]), (4000, 1))
    key = jax.random.PRNGKey(0)
    assert jnp.all(epsilon_greedy(key, q, 0.0) == 1)
    counts = np.bincount(np.asarray(epsilon_greedy(key, q, 1.0)), minlength=3) / 4000
    np.testing.assert_allclose(counts, [1 / 3] * 3, atol=0.03)
    # epsilon 0.3: greedy 0.7 + 0.3/3
    greedy_share = float(jnp.mean(epsilon_greedy(key, q, 0.3) == 1))
    assert greedy_share == pytest.approx(0.8, abs=0.03)
