"""The planners beside Dyna: value expansion and the counterfactual planner (their target math is in
test_targets.py)."""

from dataclasses import replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.config import Config
from pdqn.planners.counterfactual import Counterfactual, Outcome, anchored, reproduces, untaken_actions
from pdqn.train import Trainer, make_planner
from tests.conftest import tiny_config
from tests.test_pdqn import CHAIN, greedy_chain_rollout


def counterfactual_planner(trainer: Trainer, config: Config | None = None) -> Counterfactual:
    """The counterfactual planner of ``trainer``, or the one ``config``'s planning group describes (with its world
    model) in ``trainer``'s environment."""
    if config is not None:
        config = replace(config, dyna=replace(config.dyna, planner="counterfactual"))
    planner = trainer.planner if config is None else make_planner(config, trainer.env, trainer.real_update.fit)
    assert isinstance(planner, Counterfactual)
    return planner


@pytest.mark.parametrize("model", ["learned", "oracle"])
def test_value_expansion_is_the_compute_matched_update_until_planning_starts(model):
    config = tiny_config(alg="pdqn", log_every=3, dyna=dict(planner="value_expansion", model=model, planning_delay=2))
    trainer = Trainer(config)
    _, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(3))
    shift = np.asarray(metrics["expansion_target_shift"])[0]
    np.testing.assert_array_equal(np.asarray(metrics["planning_active"])[0], [0, 0, 1])
    np.testing.assert_array_equal(shift[:2], 0.0)  # before the delay: the model-free targets exactly
    assert shift[2] != 0.0
    weight = np.asarray(metrics["expansion_model_free_weight"])[0]
    assert np.all((weight > 0) & (weight <= 1))
    assert np.all(np.isfinite(np.asarray(metrics["expanded_td_loss"])))


def test_untaken_actions_are_never_the_taken_one_and_cover_all_the_others():
    taken = jnp.asarray([0, 1, 2, 3, 4] * 400)
    other = np.asarray(untaken_actions(jax.random.PRNGKey(0), taken, 5))
    assert np.all(other != np.asarray(taken)) and np.all((other >= 0) & (other < 5))
    for action in range(5):
        assert set(other[np.asarray(taken) == action]) == set(range(5)) - {action}


def test_with_the_oracle_counterfactual_rows_are_real_states_with_the_untaken_action_and_its_real_outcome():
    # A greedy forward-only rollout on the chain: the one untaken action is "quit", which ends the episode at once
    # with the quit reward, so every counterfactual target is exactly that reward.
    config, trainer, q_net, rollout = greedy_chain_rollout()
    planner = counterfactual_planner(trainer, config)
    learner = trainer.real_update.fit.init(q_net)
    batch, metrics = planner.imagine(learner, None, rollout, jax.random.PRNGKey(5))
    counterfactual = config.dyna.counterfactual
    assert batch.target.shape == (counterfactual.minibatches * counterfactual.rows_per_minibatch(config.pqn.minibatch_size),)
    np.testing.assert_array_equal(batch.action, 1)
    np.testing.assert_allclose(batch.target, CHAIN.quit_reward, rtol=1e-6)
    real_states = {tuple(np.asarray(o).ravel()) for o in rollout.obs.reshape(-1, *rollout.obs.shape[2:])}
    assert all(tuple(np.asarray(o).ravel()) in real_states for o in batch.obs)
    assert float(metrics["counterfactual_termination_rate"]) == pytest.approx(1.0)
    # The gap says how far Q(s, quit) was from the truth before any step: the targets minus the network's values.
    q_quit = q_net(batch.obs)[:, 1]
    assert float(metrics["counterfactual_target_gap"]) == pytest.approx(float(jnp.mean(CHAIN.quit_reward - q_quit)), rel=1e-5)


@pytest.mark.parametrize("model", ["learned", "oracle"])
def test_counterfactual_rows_weigh_nothing_until_planning_starts(model):
    # every row counts (no gate), so that the rows' effect after the delay does not wait for an accurate model
    ungated = dict(planner="counterfactual", model=model, counterfactual=dict(max_wrong_cells=None))
    config = tiny_config(alg="pdqn", log_every=3, dyna=ungated | dict(planning_delay=2))
    matched = tiny_config(alg="pdqn", log_every=3, dyna=ungated | dict(planning_delay=9))
    losses = {}
    for name, cfg in (("planning", config), ("delayed", matched)):
        trainer = Trainer(cfg)
        _, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(3))
        losses[name] = np.asarray(metrics["counterfactual_td_loss"])[0]
        if name == "planning":
            np.testing.assert_array_equal(np.asarray(metrics["planning_active"])[0], [0, 0, 1])
    # The same run until the delay, then the counterfactual rows change the steps.
    np.testing.assert_array_equal(losses["planning"][:2], losses["delayed"][:2])
    assert losses["planning"][2] != losses["delayed"][2]


def test_an_anchored_outcome_is_the_real_one_changed_only_where_the_model_says_the_actions_differ():
    frame = lambda *cells: jnp.asarray(cells, jnp.float32).reshape(1, 2, 2, 1)  # noqa: E731
    # The real step lit cells 0 and 2; the model sees the taken action light cell 0 and the untaken one cell 1
    # (and misses cell 2, a spawn it cannot know): the untaken action's frame is the real one with 0 and 1 swapped.
    real = Outcome(next_obs=frame(1, 0, 1, 0), reward=jnp.asarray([1.0]), terminated=jnp.asarray([0.0]))
    taken = Outcome(next_obs=frame(1, 0, 0, 0), reward=jnp.asarray([0.5]), terminated=jnp.asarray([0.1]))
    untaken = Outcome(next_obs=frame(0, 1, 0, 0), reward=jnp.asarray([0.2]), terminated=jnp.asarray([0.3]))
    out = anchored(real, taken, untaken)
    np.testing.assert_array_equal(out.next_obs, frame(0, 1, 1, 0))
    np.testing.assert_allclose(out.reward, [0.7], rtol=1e-6)
    np.testing.assert_allclose(out.terminated, [0.2], rtol=1e-6)
    # A probability stays one: a real termination the model thinks likelier still is certain.
    certain = anchored(eqx.tree_at(lambda o: o.terminated, real, jnp.asarray([1.0])), taken, untaken)
    np.testing.assert_allclose(certain.terminated, [1.0])
    # A model that predicts the same for both actions leaves the real outcome as it is.
    same = anchored(real, untaken, untaken)
    np.testing.assert_array_equal(same.next_obs, real.next_obs)
    np.testing.assert_allclose(same.reward, real.reward)


def test_a_prediction_reproduces_the_real_outcome_within_the_wrong_cells_with_reward_and_termination_right():
    frames = jnp.asarray([[1, 0, 1, 0]] * 4, jnp.float32).reshape(4, 2, 2, 1)
    real = Outcome(next_obs=frames, reward=jnp.ones(4), terminated=jnp.asarray([0.0, 0.0, 0.0, 1.0]))
    # Row 0 exact; row 1 one wrong cell; row 2 exact but a missed reward; row 3 exact but a missed termination.
    predicted = Outcome(
        next_obs=frames.at[1, 0, 1, 0].set(1.0),
        reward=jnp.asarray([0.9, 1.0, 0.2, 1.0]),
        terminated=jnp.asarray([0.1, 0.0, 0.0, 0.4]),
    )
    np.testing.assert_array_equal(reproduces(real, predicted, max_wrong_cells=0), [True, False, False, False])
    np.testing.assert_array_equal(reproduces(real, predicted, max_wrong_cells=1), [True, True, False, False])


def test_the_gate_checks_a_learned_model_and_never_the_oracle():
    # An untrained model reproduces almost no real step of the chain, so the gate drops most of its rows; the
    # oracle draws its own randomness, so it is never checked against the real step (nor anchored on it).
    _, trainer, q_net, rollout = greedy_chain_rollout(model="learned")
    learner = trainer.real_update.fit.init(q_net)
    trusted = {}
    for gate in (None, 0):
        dyna = trainer.config.dyna
        config = replace(trainer.config, dyna=replace(dyna, counterfactual=replace(dyna.counterfactual, max_wrong_cells=gate)))
        planner = counterfactual_planner(trainer, config)
        assert planner.anchor
        model_state = planner.model.init(jax.random.PRNGKey(3))
        batch, metrics = planner.imagine(learner, model_state, rollout, jax.random.PRNGKey(5))
        trusted[gate] = float(metrics["counterfactual_trusted_fraction"])
        assert float(jnp.mean(batch.weight)) == pytest.approx(trusted[gate])  # a dropped row weighs nothing
    assert trusted[None] == 1.0 and trusted[0] < 0.5
    config, trainer, _, _ = greedy_chain_rollout(model="oracle")
    oracle = counterfactual_planner(trainer, config)
    assert config.dyna.counterfactual.max_wrong_cells == 0 and oracle.max_wrong_cells is None and not oracle.anchor


def test_counterfactual_rows_come_on_top_of_full_real_minibatches():
    # minibatches of 4 with a share of 0.25: one counterfactual row added to each four real ones
    dyna = dict(planner="counterfactual", counterfactual=dict(minibatches=2, share=0.25))
    config = tiny_config(alg="pdqn", log_every=2, pqn=dict(num_envs=4, num_steps=2, num_minibatches=2), dyna=dyna)
    assert (config.pqn.minibatch_size, config.dyna.counterfactual.rows_per_minibatch(config.pqn.minibatch_size)) == (4, 1)
    trainer = Trainer(config)
    assert counterfactual_planner(trainer).real_rows == 2 * 4  # the compute-matched control's rows
    _, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))  # minibatches of 5 rows train
    assert np.all(np.isfinite(np.asarray(metrics["counterfactual_td_loss"])))
