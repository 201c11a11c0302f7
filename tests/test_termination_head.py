"""The Q-network's termination head: every action's logit that the step ends the episode, from the conv features the
greedy step computes anyway (behind a stop-gradient) and conv channels of its own (``--pqn.termination-head-channels``),
trained beside PQN's loss without changing the Q-network's gradient, and read by the veto as the model ``q_head``."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.acting import Veto
from pdqn.config import ConfigError, PQNConfig
from pdqn.learner import TerminationHeadLoss
from pdqn.models import QHeadModel
from pdqn.networks import QNetwork
from pdqn.q_update import QBatch, td_loss
from pdqn.rollout import every_action_terminated
from pdqn.train import Trainer
from tests.conftest import tiny_config
from tests.test_cli import run_main

OBS_SHAPE = (5, 5, 2)
HEAD_VETO = dict(planner="none", model="q_head", veto=dict(threshold=0.5))
"""The veto on the Q-network's head, in training and evaluation."""


def network_with_constant_head(logits) -> QNetwork:
    """A Q-network whose head gives action a the termination logit ``logits[a]`` at every state (zero weights into
    the head's outputs, every cell's logit far below, the logits as the global path's bias)."""
    net = QNetwork(OBS_SHAPE, len(logits), key=jax.random.PRNGKey(0), termination_channels=4)
    zero = lambda d: eqx.tree_at(lambda d: d.weight, d, jnp.zeros_like(d.weight))  # noqa: E731
    head = net.termination
    assert head is not None
    head = eqx.tree_at(lambda h: h.cell_out, head, zero(head.cell_out))
    head = eqx.tree_at(lambda h: h.cell_out.bias, head, jnp.full((len(logits),), -100.0))
    head = eqx.tree_at(lambda h: h.global_out, head, zero(head.global_out))
    head = eqx.tree_at(lambda h: h.global_out.bias, head, jnp.asarray(logits, jnp.float32))
    return eqx.tree_at(lambda n: n.termination, net, head)


def observations(n: int, seed: int = 1) -> jax.Array:
    return jax.random.bernoulli(jax.random.PRNGKey(seed), 0.3, (n, *OBS_SHAPE)).astype(jnp.float32)


def test_the_head_leaves_the_q_values_and_their_initialisation_as_without_it():
    plain = QNetwork(OBS_SHAPE, 3, key=jax.random.PRNGKey(4))
    headed = QNetwork(OBS_SHAPE, 3, key=jax.random.PRNGKey(4), termination_channels=4)
    obs, action = observations(6), jnp.array([0, 1, 2, 2, 1, 0])
    q, taken = headed.q_and_taken_termination_logit(obs, action)
    np.testing.assert_array_equal(q, plain(obs))
    np.testing.assert_array_equal(headed(obs), plain(obs))
    logits = headed.termination_logits(obs)
    assert logits.shape == (6, 3)
    np.testing.assert_allclose(taken, logits[jnp.arange(6), action], rtol=1e-6)  # the loss's shortcut is the same logit
    with pytest.raises(ValueError, match="no termination head"):
        plain.termination_logits(obs)


def test_the_loss_is_the_td_loss_plus_the_weighted_cross_entropy_of_the_taken_actions_logits():
    net = network_with_constant_head([0.0, 2.0])
    batch = QBatch(
        obs=observations(3),
        action=jnp.array([0, 1, 1]),
        target=jnp.array([0.5, -1.0, 2.0]),
        weight=jnp.ones(3),
        terminated=jnp.array([1.0, 0.0, 1.0]),
    )
    loss, (mean_q, metrics) = TerminationHeadLoss(positive_weight=10.0)(net, batch)
    td, td_mean_q = td_loss(net, batch)
    # Row 0: logit 0, ends: 10 log 2. Row 1: logit 2, safe: log(1 + e^2). Row 2: logit 2, ends: 10 log(1 + e^-2).
    head = (10 * np.log(2.0) + np.log1p(np.exp(2.0)) + 10 * np.log1p(np.exp(-2.0))) / 3
    np.testing.assert_allclose(float(loss), float(td) + head, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["termination_head_loss"]), head, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["td_loss"]), float(td), rtol=1e-6)
    np.testing.assert_allclose(float(mean_q), float(td_mean_q), rtol=1e-6)
    # Predicted (logit > 0): rows 1 and 2; actual: rows 0 and 2; both: row 2.
    rates = {k: round(float(v), 4) for k, v in metrics.items() if k.startswith("term_")}
    assert rates == {"term_true_positive": round(1 / 3, 4), "term_predicted": round(2 / 3, 4), "term_actual": round(2 / 3, 4)}


def test_the_heads_loss_trains_the_head_alone_and_the_q_network_gets_pqns_gradient():
    """The head reads the Q-network's conv features behind a stop-gradient: the Q-network's gradient under the
    combined loss is the TD loss's, to the bit, and the head's own conv channels get the head's loss."""
    net = QNetwork(OBS_SHAPE, 3, key=jax.random.PRNGKey(2), termination_channels=4)
    batch = QBatch(
        obs=observations(8, seed=3),
        action=jnp.arange(8) % 3,
        target=jnp.linspace(-1.0, 1.0, 8),
        weight=jnp.ones(8),
        terminated=(jnp.arange(8) % 4 == 0).astype(jnp.float32),
    )
    grad = lambda loss: eqx.filter_grad(lambda n: loss(n, batch)[0])(net)  # noqa: E731
    with_head, td_only = grad(TerminationHeadLoss()), grad(td_loss)
    q_part = lambda g: eqx.tree_at(lambda n: n.termination, g, None)  # noqa: E731
    for got, want in zip(jax.tree.leaves(q_part(with_head)), jax.tree.leaves(q_part(td_only)), strict=True):
        np.testing.assert_array_equal(got, want)
    assert with_head.termination is not None
    assert np.max(np.abs(np.asarray(with_head.termination.own_conv.weight))) > 1e-6
    assert np.max(np.abs(np.asarray(with_head.termination.cell_out.weight))) > 1e-6


def test_the_veto_reads_the_acting_q_networks_head():
    """Action 1's head says it ends the episode: vetoed though its Q is the highest; all fatal falls back to greedy."""
    veto = Veto(model=QHeadModel(), threshold=0.5, num_actions=3)
    q = jnp.array([[0.0, 5.0, 1.0]])
    obs = observations(1)
    vetoed, changed = veto(None, q, obs, None, jax.random.PRNGKey(0), q_net=network_with_constant_head([-9.0, 9.0, -9.0]))
    assert int(jnp.argmax(vetoed[0])) == 2 and vetoed[0, 1] == -jnp.inf and bool(changed[0])
    vetoed, changed = veto(None, q, obs, None, jax.random.PRNGKey(0), q_net=network_with_constant_head([9.0, 9.0, 9.0]))
    np.testing.assert_array_equal(vetoed, q)
    assert not bool(changed[0])
    with pytest.raises(ValueError, match="pass q_net"):
        veto(None, q, obs, None, jax.random.PRNGKey(0))


def test_a_run_with_it_trains_the_head_vetoes_and_reports_the_heads_termination():
    trainer = Trainer(tiny_config(alg="pdqn", log_every=2, pqn=dict(termination_head_channels=4), dyna=HEAD_VETO))
    names = [m.name for m in trainer.metrics]
    assert {"termination_head_loss", "model_term_precision", "model_term_recall", "vetoed_action_rate"} <= set(names)
    assert len(names) == len(set(names)) and "model_loss" not in names
    initial = trainer.init_seeds()
    states, metrics = jax.jit(trainer.run_chunk)(initial, jnp.asarray(2))
    assert np.all(np.isfinite(np.asarray(metrics["termination_head_loss"])))
    head = lambda s: s.learner.q_net.termination.global_out.weight  # noqa: E731
    assert np.max(np.abs(np.asarray(head(states)) - np.asarray(head(initial)))) > 0  # the head did train
    assert np.asarray(trainer.evaluate(states, jax.random.PRNGKey(0))).shape == (1, 4)


def test_pqn_with_the_head_learns_as_pqn():
    """--alg pqn with the head: the same Q-networks as PQN's, and the head's metrics beside them."""
    config = tiny_config(alg="pqn", log_every=2)
    headed = Trainer(dataclasses.replace(config, pqn=dataclasses.replace(config.pqn, termination_head_channels=4)))
    plain = Trainer(config)
    assert headed.acting is None and "termination_head_loss" in {m.name for m in headed.metrics}
    (states, metrics), (plain_states, _) = (jax.jit(t.run_chunk)(t.init_seeds(), jnp.asarray(2)) for t in (headed, plain))
    assert np.all(np.isfinite(np.asarray(metrics["termination_head_loss"])))
    q_net = eqx.tree_at(lambda n: n.termination, states.learner.q_net, None)
    for got, want in zip(jax.tree.leaves(q_net), jax.tree.leaves(plain_states.learner.q_net), strict=True):
        np.testing.assert_array_equal(got, want)


def test_bad_settings_are_refused_with_one_error_line():
    for channels in (0, -3):
        with pytest.raises(ConfigError, match=rf"^pqn\.termination_head_channels={channels} is invalid"):
            PQNConfig(termination_head_channels=channels)
    with pytest.raises(ConfigError, match=r"^pqn\.termination_head_channels=None is invalid: .*--dyna\.model q_head"):
        tiny_config(alg="pdqn", dyna=HEAD_VETO)
    with pytest.raises(ConfigError, match=r"^pqn\.termination_head_channels=4 is invalid: .*unless --dyna\.model q_head"):
        tiny_config(alg="pdqn", pqn=dict(termination_head_channels=4))
    with pytest.raises(ConfigError, match=r"^dyna\.model='q_head' is invalid: .*--dyna\.planner none"):
        tiny_config(alg="pdqn", pqn=dict(termination_head_channels=4), dyna=dict(model="q_head"))
    for args in (
        ("--alg", "pdqn", "--dyna.planner", "none", "--dyna.model", "q_head", "--dyna.veto.threshold", "0.5"),
        ("--pqn.termination-head-channels", "0"),
    ):
        code, _, err = run_main(*args)
        assert code == 2 and err.strip().startswith("error: pqn.termination_head_channels") and len(err.strip().splitlines()) == 1


def test_every_actions_loss_is_the_weighted_cross_entropy_over_every_row_and_action():
    net = network_with_constant_head([0.0, 2.0])
    batch = QBatch(
        obs=observations(2),
        action=jnp.array([0, 1]),
        target=jnp.array([0.5, -1.0]),
        weight=jnp.ones(2),
        terminated=jnp.array([0.0, 0.0]),
        terminated_every=jnp.array([[0.0, 1.0], [1.0, 0.0]]),
    )
    loss, (_, metrics) = TerminationHeadLoss(positive_weight=10.0)(net, batch)
    # Row 0: action 0 (logit 0) safe: log 2; action 1 (logit 2) ends: 10 log(1 + e^-2).
    # Row 1: action 0 (logit 0) ends: 10 log 2; action 1 (logit 2) safe: log(1 + e^2).
    head = (np.log(2.0) + 10 * np.log1p(np.exp(-2.0)) + 10 * np.log(2.0) + np.log1p(np.exp(2.0))) / 4
    np.testing.assert_allclose(float(metrics["termination_head_loss"]), head, rtol=1e-5)
    np.testing.assert_allclose(float(loss), float(td_loss(net, batch)[0]) + head, rtol=1e-5)
    # The rates stay the taken actions': row 1's taken action (logit 2) is predicted, neither taken action ended.
    assert float(metrics["term_predicted"]) == 0.5 and float(metrics["term_actual"]) == 0.0
    # An unlabelled entry (-1) counts for nothing: row 1's action 0 left out.
    unlabelled = dataclasses.replace(batch, terminated_every=jnp.array([[0.0, 1.0], [-1.0, 0.0]]))
    _, (_, metrics) = TerminationHeadLoss(positive_weight=10.0)(net, unlabelled)
    head = (np.log(2.0) + 10 * np.log1p(np.exp(-2.0)) + np.log1p(np.exp(2.0))) / 3
    np.testing.assert_allclose(float(metrics["termination_head_loss"]), head, rtol=1e-5)


def test_every_action_labels_come_from_copies_and_the_taken_actions_from_the_real_step():
    """Each action's label is a step of a copy of the state; the taken action's is the real outcome."""
    trainer = Trainer(tiny_config(alg="pqn"))
    env, state = trainer.env, trainer.init_seeds()
    envs = jax.tree.map(lambda x: x[0], state.envs)
    action = jnp.zeros(envs.obs.shape[0], jnp.int32)
    real = jnp.arange(envs.obs.shape[0]) % 2 == 0  # made-up real outcomes: they win over the copies' step
    labels = every_action_terminated(env, jax.random.PRNGKey(3), envs.state, action, real, trainer.env.num_actions)
    assert labels.shape == (envs.obs.shape[0], trainer.env.num_actions)
    np.testing.assert_array_equal(labels[:, 0], real)
    out, _ = env.transition(jax.random.PRNGKey(3), jax.tree.map(lambda x: jnp.repeat(x, trainer.env.num_actions, 0), envs.state),
                            jnp.tile(jnp.arange(trainer.env.num_actions, dtype=jnp.int32), envs.obs.shape[0]))
    np.testing.assert_array_equal(labels[:, 1:], out.terminated.reshape(-1, trainer.env.num_actions)[:, 1:])
    # Only the first two environments labelled: the others keep their taken action's outcome, -1 elsewhere.
    some = every_action_terminated(env, jax.random.PRNGKey(3), envs.state, action, real, trainer.env.num_actions, 2)
    np.testing.assert_array_equal(some[:2], labels[:2])
    np.testing.assert_array_equal(some[2:, 0], real[2:])
    assert np.all(np.asarray(some[2:, 1:]) == -1.0)


def test_with_every_action_labelled_pqn_still_learns_as_pqn_and_the_head_learns_otherwise():
    config = tiny_config(alg="pqn", log_every=2)
    with_head = lambda labels: Trainer(  # noqa: E731
        dataclasses.replace(config, pqn=dataclasses.replace(config.pqn, termination_head_channels=4, termination_head_labels=labels))
    )
    (every, _), (taken, _) = (jax.jit(t.run_chunk)(t.init_seeds(), jnp.asarray(2)) for t in (with_head("every"), with_head("taken")))
    q_part = lambda s: eqx.tree_at(lambda n: n.termination, s.learner.q_net, None)  # noqa: E731
    for got, want in zip(jax.tree.leaves(q_part(every)), jax.tree.leaves(q_part(taken)), strict=True):
        np.testing.assert_array_equal(got, want)
    head = lambda s: s.learner.q_net.termination.global_out.weight  # noqa: E731
    assert np.max(np.abs(np.asarray(head(every)) - np.asarray(head(taken)))) > 0
    with pytest.raises(ConfigError, match=r"^pqn\.termination_head_labels='every' is invalid"):
        PQNConfig(termination_head_labels="every")
    for bad in (dict(termination_head_labelled_envs=4), dict(termination_head_labels="every", termination_head_labelled_envs=0)):
        with pytest.raises(ConfigError, match=r"^pqn\.termination_head_labelled_envs="):
            PQNConfig(termination_head_channels=4, **bad)
