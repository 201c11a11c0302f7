"""The data-reuse control: PQN that also takes gradient steps on its last K rollouts, their Q(lambda) targets
recomputed with the current network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.config import ConfigError, PQNConfig
from pdqn.networks import greedy_value
from pdqn.planners import Clock, Reuse
from pdqn.rollout import collect
from pdqn.targets import batched_q_lambda_targets
from pdqn.train import Trainer
from tests.conftest import tiny_config

CLOCK = Clock(update=jnp.asarray(3), epsilon=jnp.asarray(0.5), lr=jnp.asarray(1e-3))


def reuse_trainer(rollouts: int = 2) -> Trainer:
    return Trainer(tiny_config(alg="pqn", pqn=dict(reuse_rollouts=rollouts, reuse_minibatches=2)))


def rollouts(trainer: Trainer, count: int):
    state = trainer.init(jax.random.PRNGKey(0))
    envs, out = state.envs, []
    for i in range(count):
        envs, rollout = collect(trainer.env, state.learner.q_net, envs, jax.random.PRNGKey(i), epsilon=jnp.asarray(1.0), num_steps=8)
        out.append(rollout)
    return state, out


def test_the_store_keeps_the_last_k_rollouts_and_replaces_the_oldest():
    trainer = reuse_trainer(rollouts=2)
    planner = trainer.planner
    assert isinstance(planner, Reuse)
    state, (first, second, third) = rollouts(trainer, 3)
    store = planner.init(jax.random.PRNGKey(0))
    for rollout in (first, second, third):
        store = planner.store(store, rollout)
    np.testing.assert_array_equal(store.stored.obs[0], third.obs)  # the oldest (first) replaced
    np.testing.assert_array_equal(store.stored.obs[1], second.obs)
    assert int(store.inserted) == 3


def test_reused_targets_are_q_lambda_recomputed_with_the_current_network():
    trainer = reuse_trainer(rollouts=2)
    planner = trainer.planner
    assert isinstance(planner, Reuse)
    state, (first, second) = rollouts(trainer, 2)
    store = planner.store(planner.store(planner.init(jax.random.PRNGKey(0)), first), second)
    q_net = state.learner.q_net
    targets = planner.targets(state.learner, store.stored)
    for k, rollout in enumerate((first, second)):
        q_next_max = greedy_value(q_net(rollout.next_obs.reshape(-1, *rollout.next_obs.shape[2:]))).reshape(rollout.reward.shape)
        expected = batched_q_lambda_targets(
            rollout.reward, rollout.terminated, rollout.truncated, q_next_max, gamma=0.99, td_lambda=0.65
        )
        np.testing.assert_allclose(targets[k], expected, rtol=1e-5, atol=1e-6)


def test_nothing_is_learned_from_an_empty_store_and_rows_come_only_from_filled_slots():
    trainer = reuse_trainer(rollouts=3)
    planner = trainer.planner
    assert isinstance(planner, Reuse)
    state, (first,) = rollouts(trainer, 1)
    empty = planner.init(jax.random.PRNGKey(0))
    learner, after, metrics = planner.step(state.learner, first, empty, jax.random.PRNGKey(1), CLOCK)
    assert float(metrics["reuse_td_loss"]) == 0.0
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), learner.q_net, state.learner.q_net))
    batch = planner.reused_batch(state.learner, after, jax.random.PRNGKey(2))
    assert np.all(np.asarray(batch.weight) == 1.0)
    stored_rows = {row.tobytes() for row in np.asarray(first.obs).reshape(-1, *first.obs.shape[2:])}
    assert all(row.tobytes() in stored_rows for row in np.asarray(batch.obs))


def test_pqn_with_reuse_trains_end_to_end_and_counts_its_gradient_steps():
    trainer = reuse_trainer()
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(3))
    loss = np.asarray(metrics["reuse_td_loss"])[0]
    assert loss[0] == 0.0 and np.all(loss[1:] > 0)
    assert trainer.config.pqn.real_gradient_steps == 1 * 4 + 2


@pytest.mark.parametrize(("rollouts", "minibatches"), [(2, 0), (0, 2), (-1, 2)])
def test_reuse_needs_both_rollouts_and_minibatches(rollouts, minibatches):
    with pytest.raises(ConfigError, match=r"^pqn\.reuse_"):
        PQNConfig(reuse_rollouts=rollouts, reuse_minibatches=minibatches)


def test_reuse_is_a_pqn_control():
    with pytest.raises(ConfigError, match=r"^pqn\.reuse_rollouts=2 is invalid: must be 0 with --alg pdqn"):
        tiny_config(alg="pdqn", pqn=dict(reuse_rollouts=2, reuse_minibatches=2))
