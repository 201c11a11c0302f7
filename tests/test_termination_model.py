"""The termination model: every action's probability of ending the episode and nothing else, trained on the taken
actions, used by the veto while the Q-network learns as PQN's (the planner "none")."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.config import ConfigError, TerminationModelConfig
from pdqn.models import ConvDynamicsModel, TerminationModel
from pdqn.models.termination import TerminationBatch, TerminationNetwork, taken_termination_loss
from pdqn.termination import sample_terminations
from pdqn.train import Trainer
from tests.test_cli import run_main
from tests.conftest import tiny_config

OBS_SHAPE = (4, 4, 2)

VETO_ONLY = dict(planner="none", model="termination", veto=dict(threshold=0.5), termination=dict(minibatches=2))
"""The termination model and the planner none, vetoing in training and evaluation."""


def constant_network(logits) -> TerminationNetwork:
    """A network whose logit for action a is ``logits[a]`` at every state (zero weights into the head's output, the
    logits as its global path's bias, every cell's logit far below)."""
    net = TerminationNetwork(OBS_SHAPE, len(logits), 4, key=jax.random.PRNGKey(0))
    zero = lambda d: eqx.tree_at(lambda d: d.weight, d, jnp.zeros_like(d.weight))  # noqa: E731
    head = net.head
    head = eqx.tree_at(lambda h: h.cell_out, head, zero(head.cell_out))
    head = eqx.tree_at(lambda h: h.cell_out.bias, head, jnp.full((len(logits),), -100.0))
    head = eqx.tree_at(lambda h: h.global_out, head, zero(head.global_out))
    head = eqx.tree_at(lambda h: h.global_out.bias, head, jnp.asarray(logits, jnp.float32))
    return eqx.tree_at(lambda n: n.head, net, head)


def test_the_loss_is_the_weighted_cross_entropy_of_the_taken_actions_logits():
    net = constant_network([0.0, 2.0])
    batch = TerminationBatch(
        obs=jnp.zeros((3, *OBS_SHAPE)), action=jnp.array([0, 1, 1]), terminated=jnp.array([1.0, 0.0, 1.0])
    )  # fmt: skip
    loss, rates = taken_termination_loss(net, batch, termination_weight=10.0)
    # Row 0: logit 0, ends: 10 * log 2. Row 1: logit 2, safe: log(1 + e^2). Row 2: logit 2, ends: 10 * log(1 + e^-2).
    expected = (10 * np.log(2.0) + np.log1p(np.exp(2.0)) + 10 * np.log1p(np.exp(-2.0))) / 3
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Predicted (logit > 0): rows 1 and 2; actual: rows 0 and 2; both: row 2.
    assert {k: round(float(v), 4) for k, v in rates.items()} == {
        "term_true_positive": round(1 / 3, 4), "term_predicted": round(2 / 3, 4), "term_actual": round(2 / 3, 4)
    }  # fmt: skip


def test_it_answers_every_action_in_one_pass_like_the_structured_models_cells_head():
    """The same first layer and head as the structured model's, with the action's weights left out."""
    conv = ConvDynamicsModel(OBS_SHAPE, 3, 8, key=jax.random.PRNGKey(1), termination_head="cells")
    net = TerminationNetwork(OBS_SHAPE, 3, 8, key=jax.random.PRNGKey(2))
    net = eqx.tree_at(lambda n: n.local.weight, net, conv.local.weight[:-3])
    net = eqx.tree_at(lambda n: (n.local.bias, n.local_norm, n.head), net, (conv.local.bias, conv.local_norm, conv.cells_termination))
    obs = jax.random.bernoulli(jax.random.PRNGKey(3), 0.3, (5, *OBS_SHAPE)).astype(jnp.float32)
    np.testing.assert_allclose(net(obs), conv.terminated_logits(obs), rtol=1e-5, atol=1e-5)
    model = TerminationModel.build(TerminationModelConfig(features=8), OBS_SHAPE, 3, real_batch_size=64)
    state = model.init(jax.random.PRNGKey(4))
    p = model.termination_probabilities(state, obs, None, jax.random.PRNGKey(5), 3)
    np.testing.assert_allclose(p, jax.nn.sigmoid(state.network(obs)))
    assert not model.imagines
    with pytest.raises(TypeError, match="cannot imagine"):
        model.stepper(state)


def test_the_planner_none_leaves_the_q_network_exactly_as_pqns():
    """Vetoing only in evaluation, the Q-network sees PQN's data and PQN's updates: the same parameters, bit for bit."""
    pqn = Trainer(tiny_config(alg="pqn", log_every=2))
    veto = Trainer(tiny_config(alg="pdqn", log_every=2, dyna=VETO_ONLY | dict(veto=dict(threshold=0.5, training=False))))
    states = [jax.jit(t.run_chunk)(t.init_seeds(), jnp.asarray(3))[0] for t in (pqn, veto)]
    leaves = [jax.tree.leaves(eqx.filter(s.learner.q_net, eqx.is_array)) for s in states]
    for a, b in zip(*leaves):
        np.testing.assert_array_equal(a, b)
    model = lambda s: s.planner.model.network.head.global_out.weight  # noqa: E731
    initial = veto.init_seeds()
    assert np.max(np.abs(np.asarray(model(states[1])) - np.asarray(model(initial)))) > 0  # the model did train


def test_a_run_with_it_trains_vetoes_and_reports_the_models_termination():
    trainer = Trainer(tiny_config(alg="pdqn", log_every=2, dyna=VETO_ONLY))
    names = {m.name for m in trainer.metrics}
    assert {"model_loss", "model_term_precision", "model_term_recall", "vetoed_action_rate"} <= names
    assert "model_obs_loss" not in names and "counterfactual_td_loss" not in names
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))
    assert np.all(np.isfinite(np.asarray(metrics["model_loss"])))
    assert np.asarray(trainer.evaluate(states, jax.random.PRNGKey(0))).shape == (1, 4)


def test_the_termination_diagnostic_reads_it_without_frames():
    trainer = Trainer(tiny_config(alg="pdqn", dyna=VETO_ONLY))
    state = trainer.init(jax.random.PRNGKey(0))
    model = trainer.planner.model  # type: ignore[attr-defined]  (the planner none's model)
    sample = sample_terminations(trainer.env, state.learner.q_net, model, state.planner.model, jax.random.PRNGKey(1), num_steps=3)
    assert sample.predicted.shape == (3, trainer.env.num_envs, trainer.env.num_actions)
    assert sample.wrong_cells is None


def test_it_is_refused_with_a_planner_that_imagines_and_the_planner_none_without_a_veto():
    with pytest.raises(ConfigError, match=r"^dyna\.model='termination' is invalid: .*--dyna\.planner none"):
        tiny_config(alg="pdqn", dyna=dict(model="termination"))
    with pytest.raises(ConfigError, match=r"^dyna\.planner='none' is invalid: .*--dyna\.veto\.threshold"):
        tiny_config(alg="pdqn", dyna=dict(planner="none"))
    with pytest.raises(ConfigError, match=r"^dyna\.termination\.termination_weight=0\.5 is invalid"):
        TerminationModelConfig(termination_weight=0.5)
    code, _, err = run_main("--alg", "pdqn", "--dyna.model", "termination")
    assert code == 2 and err.strip().startswith("error: dyna.model='termination'") and len(err.strip().splitlines()) == 1
