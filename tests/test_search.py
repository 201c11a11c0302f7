"""Search over a world model: the root's values are backed-up model steps, acting takes their argmax, and the search
planner regresses Q toward them at real states."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.config import ConfigError, SearchConfig
from pdqn.evaluation import evaluate_greedy
from pdqn.models import OracleModel
from pdqn.planners import Clock, SearchPlanner
from pdqn.rollout import collect
from pdqn.search import root_values
from pdqn.train import Trainer
from tests.conftest import tiny_config, tiny_planning
from tests.test_pdqn import CHAIN, chain_config
from tests.toy_env import ChainState

GAMMA = 0.99


def quit_biased_chain(**search):
    """The chain with the real game as model and a Q-network whose greedy action is always "quit" (which ends the
    episode at once with 0.25; "forward" gives 1 at the last state)."""
    config = chain_config(planner="search", model="oracle", planning_delay=0, search=search)
    trainer = Trainer(config, env=CHAIN)
    state = trainer.init(jax.random.PRNGKey(0))
    q_net = state.learner.q_net
    q_net = eqx.tree_at(lambda q: q.head.bias, q_net, q_net.head.bias + jnp.array([0.0, 10.0]))
    return trainer, state, q_net


def chain_states() -> ChainState:
    return ChainState(position=jnp.arange(CHAIN.length), time=jnp.zeros(CHAIN.length, jnp.int32))


def test_one_step_search_values_are_reward_plus_discounted_max_q_of_the_next_state():
    trainer, _, q_net = quit_biased_chain()
    step = OracleModel(env=trainer.env).stepper(None)
    obs = CHAIN.all_observations()
    values, visited = root_values(
        step, q_net, obs, chain_states(), jax.random.PRNGKey(1), gamma=GAMMA, simulations=CHAIN.num_actions,
        temperature=1.0,
    )  # fmt: skip
    assert bool(jnp.all(visited))  # as many simulations as actions: each root action once
    q_next = q_net(jnp.roll(obs, -1, axis=0))  # forward from position p leads to p + 1
    forward = jnp.concatenate([GAMMA * jnp.max(q_next[:-1], axis=-1), jnp.ones(1)])  # the last step ends with 1
    np.testing.assert_allclose(values[:, 0], forward, rtol=1e-5)
    np.testing.assert_allclose(values[:, 1], CHAIN.quit_reward)  # quitting ends the episode: nothing after it
    # Greedy Q quits everywhere; search goes forward everywhere (worth more than 0.25 by one step of lookahead).
    assert np.all(np.argmax(q_net(obs), axis=-1) == 1)
    assert np.all(np.argmax(values, axis=-1) == 0)


def test_fewer_simulations_than_actions_leave_an_action_at_its_q_value():
    trainer, _, q_net = quit_biased_chain()
    step = OracleModel(env=trainer.env).stepper(None)
    obs = CHAIN.all_observations()
    values, visited = root_values(step, q_net, obs, chain_states(), jax.random.PRNGKey(1), gamma=GAMMA, simulations=1, temperature=1.0)
    np.testing.assert_array_equal(jnp.sum(visited, axis=-1), 1)
    q = q_net(obs)
    np.testing.assert_allclose(jnp.where(visited, 0.0, values), jnp.where(visited, 0.0, q))


def test_acting_by_search_walks_the_chain_that_greedy_q_quits():
    trainer, state, q_net = quit_biased_chain(simulations=2)
    acting_q = trainer.acting_q(state.planner, evaluation=False)
    _, rollout = collect(
        trainer.env, q_net, state.envs, jax.random.PRNGKey(4), epsilon=jnp.asarray(0.0), num_steps=CHAIN.length,
        acting_q=acting_q,
    )  # fmt: skip
    np.testing.assert_array_equal(rollout.action[:, 0], [0, 0, 0, 0])
    assert rollout.changed is not None and bool(jnp.all(rollout.changed[:, 0]))
    np.testing.assert_allclose(rollout.reward[:, 0], [0.0, 0.0, 0.0, 1.0])
    searched = evaluate_greedy(trainer.eval_env, q_net, jax.random.PRNGKey(5), trainer.acting_q(state.planner, evaluation=True))
    np.testing.assert_allclose(searched, 1.0)
    np.testing.assert_allclose(evaluate_greedy(trainer.eval_env, q_net, jax.random.PRNGKey(5)), CHAIN.quit_reward)


def test_search_targets_are_the_root_values_of_every_visited_action_at_real_states():
    trainer, state, q_net = quit_biased_chain(simulations=2, minibatches=2)
    planner = trainer.planner
    assert isinstance(planner, SearchPlanner)
    _, rollout = collect(trainer.env, q_net, state.envs, jax.random.PRNGKey(4), epsilon=jnp.asarray(1.0), num_steps=8, keep_env_states=True)
    learner = eqx.tree_at(lambda learner: learner.q_net, state.learner, q_net)
    batch, gap = planner.targets(learner, None, rollout, jax.random.PRNGKey(6))
    states = planner.minibatches * planner.states_per_minibatch
    assert batch.obs.shape[0] == states * CHAIN.num_actions
    np.testing.assert_array_equal(batch.weight, 1.0)
    np.testing.assert_array_equal(batch.action, np.tile([0, 1], states))
    position = np.argmax(np.asarray(batch.obs).reshape(len(batch.obs), -1), axis=-1)
    q_next = q_net(CHAIN.all_observations())
    forward = np.where(position == CHAIN.length - 1, 1.0, GAMMA * np.max(q_next, axis=-1)[np.minimum(position + 1, 3)])
    expected = np.where(np.asarray(batch.action) == 0, forward, CHAIN.quit_reward)
    np.testing.assert_allclose(batch.target, expected, rtol=1e-5)
    q_sa = np.take_along_axis(np.asarray(q_net(batch.obs)), np.asarray(batch.action)[:, None], axis=-1)[:, 0]
    np.testing.assert_allclose(gap, np.mean(expected - q_sa), rtol=1e-4)
    # Training toward them moves Q(s, forward) up and Q(s, quit) down: the greedy action becomes forward.
    trained, _, metrics = planner.step(learner, rollout, state.planner, jax.random.PRNGKey(7), Clock(jnp.asarray(5), jnp.asarray(0.0), jnp.asarray(3e-3)))
    assert set(metrics) == {m.name for m in planner.metrics}
    q_before, q_after = q_net(CHAIN.all_observations()), trained.q_net(CHAIN.all_observations())
    assert np.all(np.diff(np.asarray(q_after), axis=-1) < np.diff(np.asarray(q_before), axis=-1))


@pytest.mark.parametrize("model", ["oracle", "learned"])
def test_pdqn_trains_and_evaluates_with_search_over_either_model(model):
    search = dict(simulations=4, minibatches=2)
    trainer = Trainer(tiny_config(alg="pdqn", log_every=2, dyna=dict(planner="search", model=model, planning_delay=0, search=search)))
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))
    rate = np.asarray(metrics["search_changed_action_rate"])
    assert np.all((rate >= 0) & (rate <= 1))
    assert np.all(np.isfinite(np.asarray(metrics["search_td_loss"])))
    assert np.asarray(trainer.evaluate(states, jax.random.PRNGKey(0))).shape == (1, 4)


def test_search_that_only_acts_or_only_trains_declares_only_what_it_produces():
    acting_only = Trainer(tiny_config(alg="pdqn", dyna=dict(planner="search", search=dict(minibatches=0))))
    names = {m.name for m in acting_only.metrics}
    assert "search_changed_action_rate" in names and "search_td_loss" not in names
    training_only = Trainer(tiny_config(alg="pdqn", dyna=dict(planner="search", search=dict(training=False, evaluation=False))))
    names = {m.name for m in training_only.metrics}
    assert "search_changed_action_rate" not in names and "search_td_loss" in names
    assert training_only.acting_q(None, evaluation=True) is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("simulations", 0, "a positive integer"),
        ("minibatches", -1, "a non-negative integer"),
        ("temperature", 0.0, "a finite number > 0"),
        ("temperature", float("inf"), "a finite number > 0"),
    ],
)
def test_bad_search_knobs_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=rf"^dyna\.search\.{field}=.* is invalid: must be {message}"):
        SearchConfig(**{field: value})


def test_search_that_neither_acts_nor_trains_and_a_veto_beside_search_are_refused():
    with pytest.raises(ConfigError, match=r"^dyna\.search\.minibatches=0 is invalid"):
        SearchConfig(training=False, evaluation=False, minibatches=0)
    with pytest.raises(ConfigError, match=r"^dyna\.veto\.threshold=0\.5 is invalid: must be None with --dyna.planner search"):
        tiny_planning(dict(planner="search", veto=dict(threshold=0.5)))
