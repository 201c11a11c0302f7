"""PDQN: the dynamics model, imagination, the imagined update and the planning schedule."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import TypeCheckError

from pdqn.config import Config, ConfigError, DynaConfig, PQNConfig
from pdqn.dynamics import DynamicsModel, Ensemble, Prediction
from pdqn.networks import QNetwork
from pdqn.planning import bootstrap_gap, imagine, imagined_batch
from pdqn.rollout import collect
from pdqn.train import Trainer
from tests.conftest import tiny_config
from tests.toy_env import Chain, ChainState

CHAIN = Chain(length=4, quit_reward=0.25)


def chain_config(**dyna) -> Config:
    pqn = PQNConfig(num_envs=16, num_steps=8, num_minibatches=4, num_epochs=1, hidden_size=32, conv_features=8)
    base = dict(horizon=2, num_rollouts=16, plan_minibatches=2, model_minibatches=4, model_fraction=1.0,
                model_hidden=64, model_lr=3e-3, planning_delay=0)
    base.update(dyna)
    return Config(alg="pdqn", total_timesteps=128 * 150, pqn=pqn, dyna=DynaConfig(**base), eval_envs=4, log_every=150)


def true_chain_model(obs, action, key) -> Prediction:
    """The chain's real dynamics, shaped as a confident model prediction."""
    position = jnp.argmax(obs.reshape(obs.shape[0], -1), axis=-1)
    step = jax.vmap(lambda p, a: CHAIN.step_env(key, ChainState(position=p, time=0), a, CHAIN.default_params))
    next_obs, _, reward, terminated, _ = step(position, action)
    return Prediction(
        next_obs_logits=20.0 * (2.0 * next_obs - 1.0),
        reward=reward,
        terminated_logit=jnp.where(terminated, 30.0, -30.0),
    )


@pytest.mark.parametrize("frames", [1, 2])
def test_model_learns_a_deterministic_environment(frames):
    trainer = Trainer(dataclasses.replace(chain_config(), frame_stack=frames), env=CHAIN)
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(150))
    model = jax.tree.map(lambda x: x[0], states.model)
    frame = jnp.repeat(CHAIN.all_observations(), 2, axis=0)
    action = jnp.tile(jnp.array([0, 1]), CHAIN.length)
    truth = true_chain_model(frame, action, jax.random.PRNGKey(0))
    # With a stack, the previous frame is the position before (zeros at the start of the chain).
    previous = jnp.concatenate([jnp.zeros_like(frame[:2]), frame[:-2]])
    obs = frame if frames == 1 else jnp.concatenate([previous, frame], axis=-1)
    pred = jax.tree.map(lambda x: x[0], model(obs, action))
    if frames == 2:  # the older frame of the next stack is the current frame, copied with certainty
        np.testing.assert_array_equal(pred.next_obs_logits[..., 0] > 0, frame[..., 0] > 0)
        assert float(jnp.min(jnp.abs(pred.next_obs_logits[..., 0]))) >= 30.0
        pred = eqx.tree_at(lambda p: p.next_obs_logits, pred, pred.next_obs_logits[..., 1:])
    np.testing.assert_array_equal(pred.next_obs_logits > 0, truth.next_obs_logits > 0)
    # Each distinct stack is seen less often than each frame was, so in 150 updates the regressed reward of
    # the rare quit action is looser with a stack (the thresholded cells and terminations are exact either way).
    np.testing.assert_allclose(pred.reward, truth.reward, atol=0.05 if frames == 1 else 0.15)
    np.testing.assert_array_equal(pred.terminated_logit > 0, truth.terminated_logit > 0)
    # The logged accuracy (measured before each step's gradient update) reaches 1 as well.
    assert float(metrics["model_cell_accuracy"][0, -1]) == 1.0
    assert float(metrics["model_term_precision"][0, -1]) == 1.0
    assert float(metrics["model_term_recall"][0, -1]) == 1.0
    # Imagining with the learnt model from real states, under the behaviour policy, rewards and ends episodes
    # about as often as the real batch does (over the last 50 updates; imagination starts anywhere in the
    # batch and runs 2 steps, so the rates differ a little).
    late = lambda name: float(jnp.mean(metrics[name][0, -50:]))  # noqa: E731
    assert late("reward_rate") > 0.2 and late("termination_rate") > 0.2
    assert abs(late("imagined_reward_rate") - late("reward_rate")) < 0.05
    assert abs(late("imagined_termination_rate") - late("termination_rate")) < 0.05


def forward_biased_q_net(key):
    """A random Q-network whose greedy action is always 'forward', with values varying by state."""
    trainer = Trainer(chain_config(), env=CHAIN)
    q_net = trainer.init(key).q_net
    return eqx.tree_at(lambda q: q.head.bias, q_net, q_net.head.bias + jnp.array([10.0, 0.0]))


def test_true_environment_as_model_gives_the_real_targets():
    config = chain_config()
    trainer = Trainer(config, env=CHAIN)
    state = eqx.tree_at(lambda s: s.q_net, trainer.init(jax.random.PRNGKey(0)), forward_biased_q_net(jax.random.PRNGKey(1)))
    # Greedy real rollout: every env walks the chain and terminates at step L-1.
    state, rollout = collect(trainer.env, state, jnp.asarray(0.0), CHAIN.length)
    real = trainer.real_batch(rollout).target.reshape(CHAIN.length, -1)[:, 0]
    imagined = imagine(true_chain_model, state.q_net, rollout.obs[0, :1], jax.random.PRNGKey(2),
                       jnp.asarray(0.0), CHAIN.length + 2, "threshold")
    np.testing.assert_array_equal(imagined.obs[: CHAIN.length, 0], rollout.obs[:, 0])
    batch = imagined_batch(imagined, config.pqn.gamma, config.pqn.td_lambda)
    np.testing.assert_allclose(batch.target[: CHAIN.length], real, rtol=1e-6)
    # After the imagined episode terminates it stays ended: later steps carry no weight.
    np.testing.assert_array_equal(batch.weight, [1, 1, 1, 1, 0, 0])
    # The true model's prediction of where each real step led is valued as the real next observation is.
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    gap_args = (flat(rollout.obs), flat(rollout.action), flat(rollout.next_obs), flat(rollout.terminated))
    assert float(bootstrap_gap(true_chain_model, state.q_net, *gap_args, jax.random.PRNGKey(3), "threshold")) == 0.0
    # A model that predicts the start of the chain again undervalues steps that really moved forward.
    stuck = lambda obs, action, key: eqx.tree_at(  # noqa: E731
        lambda p: p.next_obs_logits, true_chain_model(obs, action, key), 20.0 * (2.0 * obs - 1.0)
    )
    expected = jnp.mean(jnp.max(state.q_net(flat(rollout.obs)[:-16]), -1) - jnp.max(state.q_net(flat(rollout.next_obs)[:-16]), -1))
    assert float(bootstrap_gap(stuck, state.q_net, *gap_args, jax.random.PRNGKey(3), "threshold")) == pytest.approx(float(expected), rel=1e-5)


def test_planning_delay_really_delays():
    delay = 3
    pdqn = tiny_config(alg="pdqn", dyna=dict(planning_delay=delay), log_every=5)
    pqn = dataclasses.replace(pdqn, alg="pqn")
    runs = {}
    for config in (pdqn, pqn):
        trainer = Trainer(config)
        chunk = jax.jit(trainer.run_chunk)
        states = trainer.init_seeds()
        states_before, metrics = chunk(states, jnp.asarray(delay))
        states_after, _ = chunk(states_before, jnp.asarray(1))
        runs[config.alg] = (states_before.q_net, states_after.q_net, metrics)
    same = lambda a, b: all(jnp.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    # Until the delay has passed, PDQN's Q-network is bitwise PQN's (the model trains on the side) ...
    assert same(runs["pdqn"][0], runs["pqn"][0])
    np.testing.assert_array_equal(runs["pdqn"][2]["planning_active"][0, :delay], [0, 0, 0])
    # ... and the first planning update changes it.
    assert not same(runs["pdqn"][1], runs["pqn"][1])


def test_pdqn_chunk_compiles_once_for_any_chunk_length():
    trainer = Trainer(tiny_config(alg="pdqn", log_every=4))
    chunk = jax.jit(trainer.run_chunk)
    states = trainer.init_seeds()
    for n in (1, 3, 4, 2):
        states, metrics = chunk(states, jnp.asarray(n))
    assert chunk._cache_size() == 1
    assert np.isnan(np.asarray(metrics["td_loss"])[:, 2:]).all()  # rows past n are left empty


def test_ensemble_members_differ_and_shapes_are_checked():
    ensemble = Ensemble((10, 10, 4), 3, hidden=16, size=3, key=jax.random.PRNGKey(0))
    pred = ensemble(jnp.zeros((5, 10, 10, 4)), jnp.zeros(5, jnp.int32))
    assert pred.next_obs_logits.shape == (3, 5, 10, 10, 4) and pred.reward.shape == (3, 5)
    assert not jnp.allclose(pred.reward[0], pred.reward[1])
    model = DynamicsModel((10, 10, 4), 3, 16, key=jax.random.PRNGKey(0))
    with pytest.raises(TypeCheckError):
        model(jnp.zeros((5, 10, 10, 4)), jnp.zeros(5))  # float actions


def test_untrusted_imagined_steps_carry_no_weight_and_cut_the_trace():
    from pdqn.planning import ImaginedRollout

    col = lambda *v: jnp.asarray(v)[:, None]  # noqa: E731  (H=3 steps, 1 rollout)
    rollout = ImaginedRollout(
        obs=jnp.zeros((3, 1, 3, 3, 1)),
        action=jnp.zeros((3, 1), jnp.int32),
        reward=col(1.0, 1.0, 1.0),
        terminated=col(False, False, False),
        alive=col(True, True, True),
        trusted=col(True, True, False),
        disagreeing_cells=col(0, 0, 0),
        uncertain_cells=col(0, 0, 0),
        q_next_max=col(10.0, 20.0, 30.0),
    )
    batch = imagined_batch(rollout, gamma=0.9, td_lambda=0.5)
    g1 = 1 + 0.9 * 20.0  # bootstraps from its own (trusted) prediction; no trace into step 2
    g0 = 1 + 0.9 * (0.5 * 10.0 + 0.5 * g1)
    np.testing.assert_allclose(batch.target[:2], [g0, g1], rtol=1e-6)
    np.testing.assert_array_equal(batch.weight, [1.0, 1.0, 0.0])


def test_ensemble_sampled_binarisation_planning_epsilon_and_batch_mean_loss_run():
    config = tiny_config(
        alg="pdqn",
        log_every=2,
        dyna=dict(ensemble_size=2, binarize="sample", use_plan_eps=True, plan_eps_start=0.5, max_cell_uncertainty=0.4,
                  max_uncertain_cells=50, max_disagreeing_cells=3, imagined_loss_mean="batch"),
    )
    trainer = Trainer(config)
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))
    assert jax.tree.leaves(states.model)[0].shape[:2] == (1, 2)  # seeds x members
    for name in ("td_loss", "model_loss", "imagined_td_loss", "imagined_trusted_fraction", "imagined_disagreeing_cells",
                 "imagined_uncertain_cells"):
        assert np.all(np.isfinite(np.asarray(metrics[name]))), name
    assert float(trainer.plan_epsilon(jnp.asarray(0))) == 0.5


def two_member_ensemble_model():
    """A fake two-member ensemble over the first row of a 3x4 grid: both members move every set cell one to the right;
    the second member also flips the last cell whenever the first cell is off (every step but the first)."""
    from pdqn.planning import ensemble_step_model

    class Fake(eqx.Module):
        size: int = eqx.field(static=True, default=2)

        def __call__(self, obs, action):
            moved = jnp.roll(obs, 1, axis=2)
            first_off = (obs[:, 0, 0, 0] == 0.0)[:, None]
            flipped = moved.at[:, 0, 3, 0].set(jnp.where(first_off[:, 0], 1.0 - moved[:, 0, 3, 0], moved[:, 0, 3, 0]))
            zeros = jnp.zeros(obs.shape[0])
            members = [
                Prediction(next_obs_logits=20.0 * (2.0 * nxt - 1.0), reward=zeros + 1.0, terminated_logit=zeros - 30.0)
                for nxt in (moved, flipped)
            ]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *members)

    return ensemble_step_model(Fake())


@pytest.mark.parametrize("bound, trusted", [(None, [1, 1, 1]), (1, [1, 1, 1]), (0, [1, 0, 0])])
def test_ensemble_disagreement_gate_distrusts_a_step_and_its_successors(bound, trusted):
    start = jnp.zeros((2, 3, 4, 1)).at[:, 0, 0, 0].set(1.0)
    q_net = QNetwork((3, 4, 1), 2, hidden_size=8, conv_features=2, key=jax.random.PRNGKey(0))
    rollout = imagine(
        two_member_ensemble_model(), q_net, start, jax.random.PRNGKey(1), jnp.asarray(0.0),
        horizon=3, binarize="threshold", max_disagreeing_cells=bound,
    )  # fmt: skip
    np.testing.assert_array_equal(rollout.disagreeing_cells[:, 0], [0, 1, 1])  # the last cell, from step 1 on
    np.testing.assert_array_equal(rollout.trusted[:, 0], np.asarray(trusted, bool))
    weights = imagined_batch(rollout, gamma=0.9, td_lambda=0.5).weight.reshape(3, 2)[:, 0]
    np.testing.assert_array_equal(weights, np.asarray(trusted, np.float32))


def test_disagreement_gate_needs_an_ensemble():
    with pytest.raises(ConfigError, match="dyna.max_disagreeing_cells=2 is invalid: must be None unless dyna.ensemble_size >= 2"):
        DynaConfig(ensemble_size=1, max_disagreeing_cells=2)
    with pytest.raises(ConfigError, match="dyna.max_disagreeing_cells=-1"):
        DynaConfig(ensemble_size=3, max_disagreeing_cells=-1)


def hesitant_model(obs, action, key) -> Prediction:
    """Keeps the grid as it is, but from the second step on (when the first cell is off) is unsure about
    the last two cells of the first row: p = 0.3 and p = 0.9."""
    first_off = obs[:, 0, 0, 0] == 0.0
    logits = 20.0 * (2.0 * jnp.roll(obs, 1, axis=2) - 1.0)
    unsure = jnp.log(jnp.asarray([0.3, 0.9]) / (1.0 - jnp.asarray([0.3, 0.9])))
    logits = logits.at[:, 0, 2:, 0].set(jnp.where(first_off[:, None], unsure, logits[:, 0, 2:, 0]))
    zeros = jnp.zeros(obs.shape[0])
    return Prediction(next_obs_logits=logits, reward=zeros + 1.0, terminated_logit=zeros - 30.0)


@pytest.mark.parametrize(
    "bound, count, uncertain, trusted",
    [
        (0.5, 0, [0, 0, 0], [1, 1, 1]),  # 0.5: no cell is ever uncertain
        (0.05, 0, [0, 2, 2], [1, 0, 0]),  # both unsure cells count; none allowed
        (0.05, 1, [0, 2, 2], [1, 0, 0]),
        (0.05, 2, [0, 2, 2], [1, 1, 1]),
        (0.2, 1, [0, 1, 1], [1, 1, 1]),  # min(p, 1-p) = 0.1 is within the bound, 0.3 is not
        (0.2, 0, [0, 1, 1], [1, 0, 0]),
    ],
)
def test_uncertain_cell_gate_counts_unsure_cells_and_distrusts_successors(bound, count, uncertain, trusted):
    start = jnp.zeros((2, 3, 4, 1)).at[:, 0, 0, 0].set(1.0)
    q_net = QNetwork((3, 4, 1), 2, hidden_size=8, conv_features=2, key=jax.random.PRNGKey(0))
    rollout = imagine(
        hesitant_model, q_net, start, jax.random.PRNGKey(1), jnp.asarray(0.0),
        horizon=3, binarize="threshold", max_cell_uncertainty=bound, max_uncertain_cells=count,
    )  # fmt: skip
    np.testing.assert_array_equal(rollout.uncertain_cells[:, 0], uncertain)
    np.testing.assert_array_equal(rollout.trusted[:, 0], np.asarray(trusted, bool))


@pytest.mark.parametrize("on_threshold, first_row", [(0.5, [0, 0, 0, 1]), (0.25, [0, 0, 1, 1]), (0.95, [0, 0, 0, 0])])
def test_imagined_cells_are_on_above_the_on_threshold(on_threshold, first_row):
    start = jnp.zeros((2, 3, 4, 1)).at[:, 0, 0, 0].set(1.0)
    q_net = QNetwork((3, 4, 1), 2, hidden_size=8, conv_features=2, key=jax.random.PRNGKey(0))
    rollout = imagine(
        hesitant_model, q_net, start, jax.random.PRNGKey(1), jnp.asarray(0.0),
        horizon=3, binarize="threshold", on_threshold=on_threshold,
    )  # fmt: skip
    # Step 1 moved the first cell on; from there the model says p = 0.3 and p = 0.9 for the last two cells.
    np.testing.assert_array_equal(rollout.obs[2, 0, 0, :, 0], first_row)
    with pytest.raises(ConfigError, match=r"dyna.on_threshold=1.0 is invalid: must be in \(0, 1\)"):
        DynaConfig(on_threshold=1.0)


def test_uncertain_cell_count_must_be_a_non_negative_integer():
    with pytest.raises(ConfigError, match="dyna.max_uncertain_cells=-1 is invalid: must be a non-negative integer"):
        DynaConfig(max_uncertain_cells=-1)
