"""The termination diagnostic: hand-checkable scores, and the real game as model scores perfectly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pdqn.models import OracleModel
from pdqn.termination import (
    TerminationSample,
    frame_scores,
    overall_auc,
    pairwise_auc,
    sample_terminations,
    termination_scores,
)
from tests.test_acting import quit_biased_chain


def test_scores_of_a_hand_made_sample():
    # Two states of three actions. State 0: action 2 is fatal, the model ranks it first (0.7 > 0.2, 0.1).
    # State 1: action 0 is fatal, the model ranks it last (0.05 < 0.3 = 0.3).
    predicted = jnp.array([[[0.2, 0.1, 0.7]], [[0.05, 0.3, 0.3]]])  # [T=2, envs=1, actions=3]
    real = jnp.array([[[False, False, True]], [[True, False, False]]])
    greedy = jnp.array([[2], [1]])
    scores = termination_scores(TerminationSample(predicted=predicted, real=real, greedy=greedy), threshold=0.5)
    assert scores["terminating_pairs"] == pytest.approx(2 / 6)
    assert (scores["precision"], scores["recall"]) == (1.0, 0.5)  # 0.7 said and right; 0.05 missed
    assert scores["pairwise_auc"] == pytest.approx(2 / 4)  # state 0: both pairs right; state 1: both wrong
    # overall: the positives 0.7 and 0.05 against the negatives 0.2, 0.1, 0.3, 0.3: 4 + 0 pairs of 8 right
    assert scores["auc"] == pytest.approx(4 / 8)
    assert (scores["greedy_terminating"], scores["greedy_precision"], scores["greedy_recall"]) == (0.5, 1.0, 1.0)
    assert (scores["avoidable_greedy_deaths"], scores["avoidable_vetoed"]) == (1.0, 1.0)


def test_auc_counts_ties_as_one_half():
    assert pairwise_auc(np.array([[0.5, 0.5]]), np.array([[True, False]])) == 0.5
    assert overall_auc(np.array([0.5, 0.5, 0.9]), np.array([True, False, False])) == pytest.approx(0.25)
    assert np.isnan(pairwise_auc(np.array([[0.5, 0.5]]), np.array([[True, True]])))


def test_the_real_game_as_model_scores_perfectly_on_the_chain():
    trainer, state, q_net = quit_biased_chain(threshold=None)
    oracle = trainer.planner.model
    assert isinstance(oracle, OracleModel)
    sample = sample_terminations(trainer.env, q_net, oracle, None, jax.random.PRNGKey(0), num_steps=6)
    scores = termination_scores(sample, threshold=0.5)
    # Every state: quit ends the episode; forward too from the last state (never reached: greedy quits at once).
    np.testing.assert_array_equal(np.asarray(sample.real)[..., 1], True)
    assert (scores["precision"], scores["recall"], scores["pairwise_auc"]) == (1.0, 1.0, 1.0)
    assert scores["avoidable_greedy_deaths"] == scores["avoidable_vetoed"] == np.asarray(sample.greedy).size
    # Its next frames are the game's: nothing wrong, every cell kept.
    frames = frame_scores(sample)
    assert (frames["wrong_cells"], frames["exact_frames"]) == (0.0, 1.0)
    assert all(frames[name] == 1.0 for name in frames if name.startswith("kept_") and not np.isnan(frames[name]))


def test_frame_scores_of_a_hand_made_sample():
    # One state, two actions, two channels. Action 0: the prediction has 3 wrong cells and keeps the one cell of
    # channel 0 and one of channel 1's two. Action 1: exact, one cell of channel 1.
    sample = TerminationSample(
        predicted=jnp.zeros((1, 1, 2)),
        real=jnp.zeros((1, 1, 2), bool),
        greedy=jnp.zeros((1, 1), int),
        wrong_cells=jnp.array([[[3, 0]]]),
        real_cells=jnp.array([[[[1, 2], [0, 1]]]]),
        kept_cells=jnp.array([[[[1, 1], [0, 1]]]]),
    )
    assert frame_scores(sample) == {"wrong_cells": 1.5, "exact_frames": 0.5, "kept_0": 1.0, "kept_1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="no frames"):
        frame_scores(TerminationSample(predicted=sample.predicted, real=sample.real, greedy=sample.greedy))


def test_the_termination_loss_weighs_a_terminating_step_more():
    from pdqn.models.learned import termination_loss

    logits = jnp.zeros(4)  # p = 0.5 everywhere: every step's BCE is log 2
    terminated = jnp.array([1.0, 0.0, 0.0, 0.0])
    assert float(termination_loss(logits, terminated, 1.0)) == pytest.approx(np.log(2.0))
    assert float(termination_loss(logits, terminated, 3.0)) == pytest.approx((3 + 1 + 1 + 1) / 4 * np.log(2.0))
    # Logits of +-8: a right answer costs log(1 + e^-8), a wrong one 8 + log(1 + e^-8).
    small = float(np.log1p(np.exp(-8.0)))
    right = jnp.array([8.0, -8.0, -8.0, -8.0])
    assert float(termination_loss(right, terminated, 10.0)) == pytest.approx((10 + 3) / 4 * small, rel=1e-4)
    missed = jnp.array([-8.0, -8.0, -8.0, -8.0])  # the terminating step missed: it weighs ten times
    assert float(termination_loss(missed, terminated, 10.0)) == pytest.approx((10 * (8 + small) + 3 * small) / 4, rel=1e-4)


def test_a_termination_weight_below_one_is_refused():
    from pdqn.config import ConfigError, LearnedModelConfig

    with pytest.raises(ConfigError, match=r"^dyna\.learned\.termination_weight=0\.5 is invalid: must be a finite number >= 1"):
        LearnedModelConfig(termination_weight=0.5)
