"""The planners beside Dyna: value expansion (hand-computed targets), counterfactual first actions, and the
counterfactual planner."""

from dataclasses import replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.planners.counterfactual import Counterfactual, Outcome, anchored, one_step_target, reproduces, untaken_actions
from pdqn.planners.dyna import Dyna
from pdqn.planners.value_expansion import horizon_values, weighted_target
from pdqn.planning import ImaginedRollout
from pdqn.train import Trainer
from pdqn.world_models import WorldModel
from tests.conftest import tiny_config
from tests.test_pdqn import CHAIN, greedy_chain_rollout


def model_of(trainer: Trainer) -> WorldModel:
    """The world model of a trainer's planner."""
    assert isinstance(trainer.planner, (Dyna, Counterfactual))
    return trainer.planner.model


def counterfactual_planner(trainer: Trainer) -> Counterfactual:
    assert isinstance(trainer.planner, Counterfactual)
    return trainer.planner


def column(*values):
    return jnp.asarray(values)[:, None]


def test_horizon_values_sum_imagined_rewards_then_bootstrap_and_stop_at_a_termination():
    # H = 3 steps of one rollout: rewards 1, 2, 4; the second step terminates.
    imagined = ImaginedRollout(
        obs=jnp.zeros((3, 1, 2, 2, 1)),
        action=jnp.zeros((3, 1), jnp.int32),
        reward=column(1.0, 2.0, 4.0),
        terminated=column(False, True, False),
        alive=column(True, True, False),
        trusted=column(True, True, True),
        disagreeing_cells=column(0, 0, 0),
        uncertain_cells=column(0, 0, 0),
        q_next_max=column(10.0, 20.0, 30.0),
    )
    gamma = 0.5
    expected = [
        1.0 + gamma * 10.0,  # V_1 = r_0 + gamma q_0
        1.0 + gamma * 2.0,  # V_2 = r_0 + gamma r_1, then nothing: the second step terminated
        1.0 + gamma * 2.0,  # V_3: the third step is past the end
    ]
    np.testing.assert_allclose(horizon_values(imagined, gamma)[:, 0], expected, rtol=1e-6)


def test_weighted_target_trusts_agreeing_samples_and_falls_back_where_they_disagree():
    model_free = jnp.asarray([1.0, 1.0, 1.0])
    # Two samples x one horizon x three transitions: the first agree on 3, the second disagree (2 vs 4, variance 1),
    # the third agree but are not valid (a time-limit cut).
    expanded = jnp.asarray([[[3.0, 2.0, 3.0]], [[3.0, 4.0, 3.0]]])
    valid = jnp.asarray([True, True, False])
    target, model_free_weight, spread = weighted_target(model_free, expanded, valid, floor=0.5)
    # weights: model-free 1 / 0.5 = 2; horizon 1 / (0 + 0.5) = 2 (agree), 1 / (1 + 0.5) = 2/3 (disagree), 0 (invalid)
    np.testing.assert_allclose(target, [(2 * 1 + 2 * 3) / 4, (2 * 1 + (2 / 3) * 3) / (2 + 2 / 3), 1.0], rtol=1e-6)
    np.testing.assert_allclose(model_free_weight, [0.5, 2 / (2 + 2 / 3), 1.0], rtol=1e-6)
    np.testing.assert_allclose(spread, [0.0, 1.0, 0.0], rtol=1e-6)


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


def test_one_step_target_discounts_the_greedy_value_by_the_chance_of_going_on():
    # r + gamma (1 - p) max_a Q(s', a): 1 + 0.5 * 0.75 * 4, and a certain termination keeps the reward alone.
    q_next = jnp.asarray([[4.0, -1.0], [2.0, 3.0]])
    target = one_step_target(jnp.asarray([1.0, 0.5]), jnp.asarray([0.25, 1.0]), q_next, gamma=0.5)
    np.testing.assert_allclose(target, [2.5, 0.5], rtol=1e-6)


def test_with_the_oracle_counterfactual_rows_are_real_states_with_the_untaken_action_and_its_real_outcome():
    # A greedy forward-only rollout on the chain: the one untaken action is "quit", which ends the episode at once
    # with the quit reward, so every counterfactual target is exactly that reward.
    config, trainer, q_net, rollout = greedy_chain_rollout()
    planner = Counterfactual.from_config(config, trainer.env, model_of(trainer), trainer.real_update.fit)
    learner = trainer.real_update.fit.init(q_net)
    batch, metrics = planner.imagine(learner, None, rollout, jax.random.PRNGKey(5))
    assert batch.target.shape == (config.dyna.plan_minibatches * config.counterfactual_rows_per_minibatch,)
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
    ungated = dict(planner="counterfactual", model=model, counterfactual_max_wrong_cells=None)
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


@pytest.mark.parametrize("anchor", [True, False])
def test_the_gate_checks_a_learned_model_anchored_or_not_and_never_the_oracle(anchor):
    # An untrained model reproduces almost no real step of the chain, so the gate drops most of its rows; the
    # oracle draws its own randomness, so it is never checked against the real step.
    _, trainer, q_net, rollout = greedy_chain_rollout(model="learned")
    learner = trainer.real_update.fit.init(q_net)
    trusted = {}
    for gate in (None, 0):
        dyna = dict(counterfactual_anchor=anchor, counterfactual_max_wrong_cells=gate)
        config = replace(trainer.config, dyna=replace(trainer.config.dyna, **dyna))
        planner = Counterfactual.from_config(config, trainer.env, model_of(trainer), trainer.real_update.fit)
        model_state = planner.model.init(jax.random.PRNGKey(3))
        batch, metrics = planner.imagine(learner, model_state, rollout, jax.random.PRNGKey(5))
        trusted[gate] = float(metrics["counterfactual_trusted_fraction"])
        assert float(jnp.mean(batch.weight)) == pytest.approx(trusted[gate])  # a dropped row weighs nothing
    assert trusted[None] == 1.0 and trusted[0] < 0.5
    config, trainer, _, _ = greedy_chain_rollout(model="oracle")
    oracle = Counterfactual.from_config(config, trainer.env, model_of(trainer), trainer.real_update.fit)
    assert config.dyna.counterfactual_max_wrong_cells == 0 and oracle.max_wrong_cells is None


def test_counterfactual_rows_replace_real_rows_or_come_on_top_of_full_minibatches():
    # minibatches of 4 with a share of 0.25: one counterfactual row each, in place of a real one or added to four
    def config(rows):
        dyna = dict(planner="counterfactual", plan_minibatches=2, counterfactual_share=0.25, counterfactual_rows=rows)
        return tiny_config(alg="pdqn", log_every=2, pqn=dict(num_envs=4, num_steps=2, num_minibatches=2), dyna=dyna)

    assert (config("add").pqn.minibatch_size, config("add").counterfactual_rows_per_minibatch) == (4, 1)
    assert counterfactual_planner(Trainer(config("replace"))).real_rows == 2 * 3
    trainer = Trainer(config("add"))
    assert counterfactual_planner(trainer).real_rows == 2 * 4
    _, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))  # minibatches of 5 rows train
    assert np.all(np.isfinite(np.asarray(metrics["counterfactual_td_loss"])))
