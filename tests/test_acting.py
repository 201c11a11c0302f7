"""Acting with a world model: the termination veto chooses greedily among the actions that do not end the episode."""

import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.acting import vetoed_q
from pdqn.config import ConfigError, LearnedModelConfig, VetoConfig
from pdqn.evaluation import evaluate_greedy
from pdqn.rollout import collect
from pdqn.train import Trainer
from tests.conftest import tiny_config
from tests.test_pdqn import CHAIN, chain_config

Q = jnp.array([3.0, 2.0, 1.0])


def test_vetoed_q_keeps_the_actions_below_the_threshold_and_all_of_them_when_none_is():
    np.testing.assert_array_equal(vetoed_q(Q, jnp.array([0.9, 0.1, 0.0]), 0.5), [-jnp.inf, 2.0, 1.0])
    np.testing.assert_array_equal(vetoed_q(Q, jnp.array([0.9, 0.6, 0.2]), 0.5), [-jnp.inf, -jnp.inf, 1.0])
    np.testing.assert_array_equal(vetoed_q(Q, jnp.array([0.9, 0.6, 0.7]), 0.5), Q)  # all fatal: greedy
    np.testing.assert_array_equal(vetoed_q(Q, jnp.array([0.5, 0.5, 0.5]), 0.5), Q)  # at the threshold: allowed
    assert int(jnp.argmax(vetoed_q(Q, jnp.array([0.9, 0.1, 0.0]), 0.5))) == 1


def quit_biased_chain(threshold: float | None):
    """The chain with the real game as model and a Q-network whose greedy action is always "quit" (which ends the
    episode at once; "forward" ends it only from the last state)."""
    config = chain_config(model="oracle", veto=dict(threshold=threshold))
    trainer = Trainer(config, env=CHAIN)
    state = trainer.init(jax.random.PRNGKey(0))
    q_net = state.learner.q_net
    q_net = eqx.tree_at(lambda q: q.head.bias, q_net, q_net.head.bias + jnp.array([0.0, 10.0]))
    return trainer, state, q_net


def test_the_veto_never_takes_an_action_that_ends_the_episode_when_a_safe_one_exists():
    trainer, state, q_net = quit_biased_chain(threshold=0.5)
    acting_q = trainer.acting_q(state.planner, evaluation=False)
    _, rollout = collect(
        trainer.env, q_net, state.envs, jax.random.PRNGKey(4), epsilon=jnp.asarray(0.0), num_steps=CHAIN.length,
        acting_q=acting_q,
    )  # fmt: skip
    # Forward while quitting is fatal and forward is not; at the last state both are fatal: greedy, so quit.
    np.testing.assert_array_equal(rollout.action[:, 0], [0, 0, 0, 1])
    assert rollout.changed is not None
    np.testing.assert_array_equal(rollout.changed[:, 0], [True, True, True, False])
    np.testing.assert_allclose(rollout.reward[:, 0], [0.0, 0.0, 0.0, CHAIN.quit_reward])
    # Greedy evaluation with the veto walks the chain too; without it, quits at once.
    returns = evaluate_greedy(trainer.eval_env, q_net, jax.random.PRNGKey(5), trainer.acting_q(state.planner, evaluation=True))
    np.testing.assert_allclose(returns, CHAIN.quit_reward)  # the last step's quit, after walking
    unvetoed, _, _ = quit_biased_chain(threshold=None)
    assert unvetoed.acting_q(state.planner, evaluation=False) is None


def test_pdqn_trains_and_evaluates_with_the_veto_over_either_model():
    for model in ("oracle", "learned"):
        trainer = Trainer(tiny_config(alg="pdqn", log_every=2, dyna=dict(model=model, veto=dict(threshold=0.5))))
        states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))
        rate = np.asarray(metrics["vetoed_action_rate"])
        assert np.all((rate >= 0) & (rate <= 1))
        assert np.asarray(trainer.evaluate(states, jax.random.PRNGKey(0))).shape == (1, 4)
    no_training = tiny_config(alg="pdqn", dyna=dict(veto=dict(threshold=0.5, training=False)))
    assert "vetoed_action_rate" not in {m.name for m in Trainer(no_training).metrics}


def test_the_cells_termination_head_trains_and_the_veto_acts_on_it():
    learned = dict(architecture="conv", termination_head="cells", termination_weight=10.0)
    trainer = Trainer(tiny_config(alg="pdqn", log_every=2, dyna=dict(veto=dict(threshold=0.5), learned=learned)))
    initial = trainer.init_seeds()
    states, metrics = jax.jit(trainer.run_chunk)(initial, jnp.asarray(2))
    assert np.all(np.isfinite(np.asarray(metrics["vetoed_action_rate"])))
    head = lambda s: s.planner.model.ensemble.members.cells_termination.global_out.weight  # noqa: E731
    assert np.max(np.abs(np.asarray(head(states)) - np.asarray(head(initial)))) > 0  # the termination loss reaches it


def test_the_cells_termination_head_needs_the_conv_model():
    with pytest.raises(ConfigError, match=r'^dyna\.learned\.termination_head=.cells. is invalid: must be "summary" unless'):
        LearnedModelConfig(termination_head="cells")
    assert LearnedModelConfig(architecture="conv", termination_head="cells").termination_head == "cells"


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_a_threshold_outside_the_unit_interval_is_refused(threshold):
    with pytest.raises(ConfigError, match=r"^dyna\.veto\.threshold=.* is invalid: must be in \(0, 1\) or None"):
        VetoConfig(threshold=threshold)
    with pytest.raises(ConfigError, match=r"used neither in training nor in evaluation"):
        VetoConfig(threshold=0.5, training=False, evaluation=False)


@pytest.mark.parametrize("script", ["veto.py", "seaquest_deaths.py"])
def test_the_veto_scripts_refuse_a_threshold_outside_the_unit_interval_before_reading_a_run(script, tmp_path):
    flag = "--thresholds" if script == "veto.py" else "--threshold"
    command = [sys.executable, f"experiments/decision-time/{script}", str(tmp_path / "no-run"), flag, "1.5", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert result.returncode == 2
    assert f"error: argument {flag}: 1.5 is not a probability strictly between 0 and 1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("architecture, head", [("mlp", "summary"), ("conv", "summary"), ("conv", "cells")])
@pytest.mark.parametrize("ensemble_size", [1, 2])
def test_termination_probabilities_are_a_members_prediction_for_each_row_and_action(architecture, head, ensemble_size):
    learned = dict(architecture=architecture, ensemble_size=ensemble_size, termination_head=head)
    trainer = Trainer(tiny_config(alg="pdqn", dyna=dict(veto=dict(threshold=0.5), learned=learned)))
    model = trainer.planner.model  # type: ignore[attr-defined]  (the counterfactual planner's learned model)
    state = model.init(jax.random.PRNGKey(0))
    obs = jax.random.bernoulli(jax.random.PRNGKey(1), 0.1, (5, *trainer.env.obs_shape)).astype(jnp.float32)
    actions = trainer.env.num_actions
    p = np.asarray(model.termination_probabilities(state, obs, None, jax.random.PRNGKey(2), actions))
    assert p.shape == (5, actions)
    members = [jax.tree.map(lambda x, i=i: x[i], state.ensemble.members) for i in range(ensemble_size)]
    for a in range(actions):
        expected = np.stack([jax.nn.sigmoid(m(obs, jnp.full(5, a, jnp.int32)).terminated_logit) for m in members])
        assert np.all(np.min(np.abs(expected - p[:, a]), axis=0) < 1e-5), (a, expected, p[:, a])
    if ensemble_size > 1:  # the members differ, and each pair takes one of them
        assert np.max(np.abs(expected[0] - expected[1])) > 1e-3


def reprint_veto_table(tmp_path: Path, returns: list[tuple[int, float, float]]) -> tuple[list[str], str]:
    """``veto.py --out`` on a table of one run whose seeds return 10 greedily and (real game, learned model) with the
    veto: the learned policy's printed row as cells, and what it wrote to stderr."""
    rows = ["run,game,seed,policy,return,se"]
    for seed, real, learned in returns:
        rows += [f"r,asterix,{seed},greedy,10,1", f'r,asterix,{seed},"veto, real game",{real},1']
        rows += [f'r,asterix,{seed},"veto, learned model, 0.5",{learned},1']
    (tmp_path / "veto.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "termination.csv").write_text("run,game,seed,recall\nr,asterix,0,0.5\n")
    command = [sys.executable, "experiments/decision-time/veto.py", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1], check=True)
    learned_row = next(line for line in result.stdout.splitlines() if "learned model, 0.5" in line)
    return [cell.strip() for cell in learned_row.strip("|").split("|")], result.stderr


def test_veto_py_gives_each_policys_gain_as_a_share_of_the_real_games(tmp_path):
    """Learned gains (1, 2, 3) against the real game's (2, 4, 6) on the same seeds: a share of one half on every
    bootstrap resample of the seeds, so its s.e. is 0."""
    cells, _ = reprint_veto_table(tmp_path, [(0, 12, 11), (1, 14, 12), (2, 16, 13)])
    assert cells[2:] == ["12.0", "0.58", "2.0", "0.58", "0.5", "0.0"]


def test_veto_py_gives_no_share_where_the_real_games_veto_gains_nothing(tmp_path):
    """Where the policies have no avoidable deaths (SpaceInvaders, Breakout) the real game's veto returns what greedy
    does on every seed, so there is no gain to take a share of: veto.py says NaN, without numpy's division warnings."""
    cells, stderr = reprint_veto_table(tmp_path, [(0, 10, 10), (1, 10, 11), (2, 10, 12)])
    assert cells[4:] == ["1.0", "0.58", "NaN", "NaN"]
    assert "Warning" not in stderr


def test_label_ceiling_py_gives_each_vetos_paired_gain_and_its_share_of_the_real_games(tmp_path):
    """Greedy 10 on two seeds, the real game's veto 12 and 14, a labelled network's 11 and 11: paired gains 1 and 1,
    mean 1 ± 0, and a share of (1 + 1) / (2 + 4) of the real game's gain. Without a table: one error line."""
    rows = ["run,game,seed,policy,return,se"]
    for seed, real, labelled in ((0, 12, 11), (1, 14, 11)):
        rows += [f"r,seaquest,{seed},greedy,10,1", f'r,seaquest,{seed},"veto, real game",{real},1']
        rows += [f'r,seaquest,{seed},"veto, labelled",{labelled},1']
    (tmp_path / "ceiling.csv").write_text("\n".join(rows) + "\n")
    script = "experiments/decision-time/label_ceiling.py"
    result = subprocess.run([sys.executable, script, "--out", str(tmp_path)], capture_output=True, text=True,
                            cwd=Path(__file__).parents[1], check=True)  # fmt: skip
    row = next(line for line in result.stdout.splitlines() if "labelled" in line)
    assert [cell.strip() for cell in row.strip("|").split("|")][2:] == ["11.0", "0.0", "1.0", "0.0", "0.333"]
    missing = subprocess.run([sys.executable, script, "--out", str(tmp_path / "none")], capture_output=True, text=True,
                             cwd=Path(__file__).parents[1])  # fmt: skip
    assert missing.returncode != 0 and missing.stderr.strip() == f"error: no ceiling.csv in {tmp_path / 'none'} (give RUN_DIRs to measure)"
