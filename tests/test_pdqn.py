"""PDQN: the dynamics model, imagination, the imagined update and the planning schedule."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import TypeCheckError

from pdqn.config import Config, ConfigError, DynaConfig, PlanningConfig, PQNConfig
from pdqn.learner import real_batch
from pdqn.models import DynamicsModel, Ensemble, OracleModel, Prediction, ensemble_stepper
from pdqn.networks import QNetwork
from pdqn.planners.imagination import ImaginedRollout, ImaginedStart, Imagination, RealSteps, imagined_batch
from pdqn.rollout import collect
from pdqn.train import Trainer
from tests.conftest import tiny_config, tiny_planning
from tests.toy_env import Chain, ChainState

CHAIN = Chain(length=4, quit_reward=0.25)


def stateless(model):
    """A ``(obs, action, key) -> Prediction`` model as imagination's step model (no carry)."""
    return lambda obs, carry, action, key: (model(obs, action, key), carry)


def imagine(model, q_net, start_obs, key, horizon: int, **gates):
    """Greedy imagined rollouts of a carry-free model from ``start_obs``."""
    imagination = Imagination(horizon=horizon, **gates)
    return imagination.rollout(stateless(model), q_net, ImaginedStart(obs=start_obs), key, jnp.asarray(0.0))


def chain_config(horizon: int = 2, **planning) -> Config:
    """Dyna with a learned model on the chain (``planning`` overrides options of the planning group)."""
    pqn = PQNConfig(num_envs=16, num_steps=8, num_minibatches=4, num_epochs=1, hidden_size=32, conv_features=8)
    base = dict(
        planner="dyna",
        dyna=dict(horizon=horizon, num_rollouts=16, minibatches=2),
        learned=dict(minibatches=4, fraction=1.0, hidden=64, lr=3e-3),
    )
    dyna = tiny_planning(base | planning)
    return Config(alg="pdqn", total_timesteps=128 * 150, pqn=pqn, dyna=dyna, eval_envs=4, log_every=150)


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
    # One imagined step per rollout: its (state, action) pairs are drawn as the real batch's are. Epsilon stays at 0.2,
    # so that the quit action, which the learnt policy never takes, is in every batch at every position: what the
    # model can learn then does not hang on the random stream.
    config = chain_config(horizon=1)
    config = dataclasses.replace(config, frame_stack=frames, pqn=dataclasses.replace(config.pqn, eps_finish=0.2))
    trainer = Trainer(config, env=CHAIN)
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(150))
    model = jax.tree.map(lambda x: x[0], states.planner.model.ensemble)
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
    # The regressed reward of the quit action (taken only when epsilon explores) is the loosest figure after 150
    # updates, looser still with a stack, whose distinct inputs are each seen less often; it is still far from the
    # other rewards (0 and 1). The thresholded cells and terminations are exact either way.
    np.testing.assert_allclose(pred.reward, truth.reward, atol=0.1 if frames == 1 else 0.15)
    np.testing.assert_array_equal(pred.terminated_logit > 0, truth.terminated_logit > 0)
    # The logged accuracy (measured before each step's gradient update) reaches 1 as well.
    assert float(metrics["model_cell_accuracy"][0, -1]) == 1.0
    assert float(metrics["model_term_precision"][0, -1]) == 1.0
    assert float(metrics["model_term_recall"][0, -1]) == 1.0
    # One step imagined with the learnt model from real states, under the behaviour policy, rewards and ends
    # episodes as often as the real batch does, up to sampling noise (50 updates x 16 rollouts: a standard
    # error of about 0.015 at these rates).
    late = lambda name: float(jnp.mean(metrics[name][0, -50:]))  # noqa: E731
    assert late("reward_rate") > 0.2 and late("termination_rate") > 0.2
    assert abs(late("imagined_reward_rate") - late("reward_rate")) < 0.05
    assert abs(late("imagined_termination_rate") - late("termination_rate")) < 0.05


def forward_biased_q_net(key):
    """A random Q-network whose greedy action is always 'forward', with values varying by state."""
    trainer = Trainer(chain_config(), env=CHAIN)
    q_net = trainer.init(key).learner.q_net
    return eqx.tree_at(lambda q: q.head.bias, q_net, q_net.head.bias + jnp.array([10.0, 0.0]))


def greedy_chain_rollout(model: str = "oracle"):
    """A greedy real rollout of L steps on the chain (every env walks it and terminates at step L-1)."""
    config = chain_config(model=model)
    trainer = Trainer(config, env=CHAIN)
    state = trainer.init(jax.random.PRNGKey(0))
    q_net = forward_biased_q_net(jax.random.PRNGKey(1))
    _, rollout = collect(
        trainer.env, q_net, state.envs, jax.random.PRNGKey(4), epsilon=jnp.asarray(0.0), num_steps=CHAIN.length,
        keep_env_states=trainer.planner.needs_env_states,
    )  # fmt: skip
    return config, trainer, q_net, rollout


def test_the_oracle_model_imagines_exactly_the_real_transitions():
    config, trainer, q_net, rollout = greedy_chain_rollout()
    oracle = trainer.planner.model
    assert isinstance(oracle, OracleModel) and trainer.planner.needs_env_states
    real = real_batch(rollout, config.pqn.gamma, config.pqn.td_lambda).target.reshape(CHAIN.length, -1)[:, 0]
    start = ImaginedStart(obs=rollout.obs[0, :1], carry=oracle.start(rollout, jnp.asarray([0])))
    imagination = Imagination(horizon=CHAIN.length + 2)
    imagined = imagination.rollout(oracle.stepper(None), q_net, start, jax.random.PRNGKey(2), jnp.asarray(0.0))
    np.testing.assert_array_equal(imagined.obs[: CHAIN.length, 0], rollout.obs[:, 0])
    batch = imagined_batch(imagined, config.pqn.gamma, config.pqn.td_lambda)
    np.testing.assert_allclose(batch.target[: CHAIN.length], real, rtol=1e-6)
    # After the imagined episode terminates it stays ended: later steps carry no weight.
    np.testing.assert_array_equal(batch.weight, [1, 1, 1, 1, 0, 0])


def real_steps(rollout, carry=None) -> RealSteps:
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    start = ImaginedStart(obs=flat(rollout.obs), carry=carry)
    return RealSteps(start=start, action=flat(rollout.action), next_obs=flat(rollout.next_obs), terminated=flat(rollout.terminated))


def test_bootstrap_gap_is_zero_for_the_oracle_and_exact_for_a_stuck_model():
    _, trainer, q_net, rollout = greedy_chain_rollout()
    oracle, imagination = trainer.planner.model, trainer.planner.imagination
    rows = jnp.arange(rollout.reward.size)
    gap = imagination.bootstrap_gap(oracle.stepper(None), q_net, real_steps(rollout, oracle.start(rollout, rows)), jax.random.PRNGKey(3))
    assert float(gap) == 0.0
    # A model that predicts no movement undervalues steps that really moved forward, by the hand-computed gap.
    stuck = lambda obs, action, key: eqx.tree_at(  # noqa: E731
        lambda p: p.next_obs_logits, true_chain_model(obs, action, key), 20.0 * (2.0 * obs - 1.0)
    )
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    live = slice(None, -16)  # the last step of every env terminates
    expected = jnp.mean(jnp.max(q_net(flat(rollout.obs)[live]), -1) - jnp.max(q_net(flat(rollout.next_obs)[live]), -1))
    gap = imagination.bootstrap_gap(stateless(stuck), q_net, real_steps(rollout), jax.random.PRNGKey(3))
    assert float(gap) == pytest.approx(float(expected), rel=1e-5)


def test_with_the_oracle_imagined_rewards_and_terminations_match_the_real_rates():
    """One-step imagination from states drawn across the real batch, under the behaviour policy, samples the
    same transition distribution as the batch: with the real game as the model the rates agree up to
    sampling noise, and (Breakout being deterministic given its state) the bootstrap gap is exactly 0."""
    pqn = PQNConfig(num_envs=64, num_steps=16, num_minibatches=2, num_epochs=1, hidden_size=16, conv_features=4)
    dyna = PlanningConfig(planner="dyna", model="oracle", planning_delay=0, dyna=DynaConfig(horizon=1, num_rollouts=4096, minibatches=2))
    config = Config(alg="pdqn", env="breakout", total_timesteps=1024 * 20, pqn=pqn, dyna=dyna, eval_envs=4, log_every=20)
    trainer = Trainer(config)
    _, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(20))
    mean = lambda name: float(jnp.mean(metrics[name][0]))  # noqa: E731
    assert "model_loss" not in metrics  # a perfect model has nothing to learn: no model metrics by declaration
    assert mean("reward_rate") > 0.02 and mean("termination_rate") > 0.05
    # 20 updates of 1,024 real and 4,096 imagined steps: standard errors of the difference about 0.0016
    # (rewards) and 0.0022 (terminations); the bounds are about 4 of them.
    assert abs(mean("imagined_reward_rate") - mean("reward_rate")) < 0.006
    assert abs(mean("imagined_termination_rate") - mean("termination_rate")) < 0.009
    np.testing.assert_array_equal(metrics["imagined_bootstrap_gap"], 0.0)
    np.testing.assert_array_equal(metrics["imagined_trusted_fraction"], metrics["imagined_alive_fraction"])


def test_planning_delay_really_delays():
    delay = 3
    pdqn = tiny_config(alg="pdqn", dyna=dict(planner="dyna", planning_delay=delay), log_every=5)
    pqn = dataclasses.replace(pdqn, alg="pqn")
    runs = {}
    for config in (pdqn, pqn):
        trainer = Trainer(config)
        chunk = jax.jit(trainer.run_chunk)
        states = trainer.init_seeds()
        states_before, metrics = chunk(states, jnp.asarray(delay))
        states_after, _ = chunk(states_before, jnp.asarray(1))
        runs[config.alg] = (states_before.learner.q_net, states_after.learner.q_net, metrics)
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
    ensemble = Ensemble(lambda k: DynamicsModel((10, 10, 4), 3, 16, key=k), 3, key=jax.random.PRNGKey(0))
    pred = ensemble(jnp.zeros((5, 10, 10, 4)), jnp.zeros(5, jnp.int32))
    assert pred.next_obs_logits.shape == (3, 5, 10, 10, 4) and pred.reward.shape == (3, 5)
    assert not jnp.allclose(pred.reward[0], pred.reward[1])
    model = DynamicsModel((10, 10, 4), 3, 16, key=jax.random.PRNGKey(0))
    with pytest.raises(TypeCheckError):
        model(jnp.zeros((5, 10, 10, 4)), jnp.zeros(5))  # float actions


def test_untrusted_imagined_steps_carry_no_weight_and_cut_the_trace():
    col = lambda *v: jnp.asarray(v)[:, None]  # noqa: E731  (H=3 steps, 1 rollout)
    rollout = ImaginedRollout(
        obs=jnp.zeros((3, 1, 3, 3, 1)),
        action=jnp.zeros((3, 1), jnp.int32),
        reward=col(1.0, 1.0, 1.0),
        terminated=col(False, False, False),
        alive=col(True, True, True),
        trusted=col(True, True, False),
        disagreeing_cells=col(0, 0, 0),
        q_next_max=col(10.0, 20.0, 30.0),
    )
    batch = imagined_batch(rollout, gamma=0.9, td_lambda=0.5)
    g1 = 1 + 0.9 * 20.0  # bootstraps from its own (trusted) prediction; no trace into step 2
    g0 = 1 + 0.9 * (0.5 * 10.0 + 0.5 * g1)
    np.testing.assert_allclose(batch.target[:2], [g0, g1], rtol=1e-6)
    np.testing.assert_array_equal(batch.weight, [1.0, 1.0, 0.0])


def test_a_gated_ensemble_of_two_trains_and_counts_its_disagreement():
    config = tiny_config(
        alg="pdqn",
        log_every=2,
        dyna=dict(planner="dyna", learned=dict(ensemble_size=2), dyna=dict(max_disagreeing_cells=3)),
    )
    trainer = Trainer(config)
    states, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))
    assert jax.tree.leaves(states.planner.model.ensemble)[0].shape[:2] == (1, 2)  # seeds x members
    for name in ("td_loss", "model_loss", "imagined_td_loss", "imagined_trusted_fraction", "imagined_disagreeing_cells"):
        assert np.all(np.isfinite(np.asarray(metrics[name]))), name
    # Two independently initialised members disagree on some cells, and a step the gate refuses is not trusted.
    assert np.all(np.asarray(metrics["imagined_disagreeing_cells"]) > 0)
    assert np.all(np.asarray(metrics["imagined_trusted_fraction"]) <= np.asarray(metrics["imagined_alive_fraction"]))


def two_member_ensemble_model():
    """A fake two-member ensemble over the first row of a 3x4 grid: both members move every set cell one to the right;
    the second member also flips the last cell whenever the first cell is off (every step but the first)."""
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

    step = ensemble_stepper(Fake())
    return lambda obs, action, key: step(obs, None, action, key)[0]


@pytest.mark.parametrize("bound, trusted", [(None, [1, 1, 1]), (1, [1, 1, 1]), (0, [1, 0, 0])])
def test_ensemble_disagreement_gate_distrusts_a_step_and_its_successors(bound, trusted):
    start = jnp.zeros((2, 3, 4, 1)).at[:, 0, 0, 0].set(1.0)
    q_net = QNetwork((3, 4, 1), 2, hidden_size=8, conv_features=2, key=jax.random.PRNGKey(0))
    rollout = imagine(two_member_ensemble_model(), q_net, start, jax.random.PRNGKey(1), 3, max_disagreeing_cells=bound)
    np.testing.assert_array_equal(rollout.disagreeing_cells[:, 0], [0, 1, 1])  # the last cell, from step 1 on
    np.testing.assert_array_equal(rollout.trusted[:, 0], np.asarray(trusted, bool))
    weights = imagined_batch(rollout, gamma=0.9, td_lambda=0.5).weight.reshape(3, 2)[:, 0]
    np.testing.assert_array_equal(weights, np.asarray(trusted, np.float32))


def test_disagreement_gate_needs_an_ensemble():
    match = "dyna.dyna.max_disagreeing_cells=2 is invalid: must be None unless dyna.learned.ensemble_size >= 2"
    with pytest.raises(ConfigError, match=match):
        tiny_planning(dict(dyna=dict(max_disagreeing_cells=2)))
    with pytest.raises(ConfigError, match="dyna.dyna.max_disagreeing_cells=-1"):
        DynaConfig(max_disagreeing_cells=-1)


def hesitant_model(obs, action, key) -> Prediction:
    """Keeps the grid as it is, but from the second step on (when the first cell is off) is unsure about
    the last two cells of the first row: p = 0.3 and p = 0.9."""
    first_off = obs[:, 0, 0, 0] == 0.0
    logits = 20.0 * (2.0 * jnp.roll(obs, 1, axis=2) - 1.0)
    unsure = jnp.log(jnp.asarray([0.3, 0.9]) / (1.0 - jnp.asarray([0.3, 0.9])))
    logits = logits.at[:, 0, 2:, 0].set(jnp.where(first_off[:, None], unsure, logits[:, 0, 2:, 0]))
    zeros = jnp.zeros(obs.shape[0])
    return Prediction(next_obs_logits=logits, reward=zeros + 1.0, terminated_logit=zeros - 30.0)


def test_imagined_cells_are_on_above_one_half_or_drawn_with_their_probability():
    start = jnp.zeros((4096, 3, 4, 1)).at[:, 0, 0, 0].set(1.0)
    q_net = QNetwork((3, 4, 1), 2, hidden_size=8, conv_features=2, key=jax.random.PRNGKey(0))
    rollout = imagine(hesitant_model, q_net, start, jax.random.PRNGKey(1), 3)
    # Step 1 moved the first cell on; from there the model says p = 0.3 and p = 0.9 for the last two cells.
    np.testing.assert_array_equal(rollout.obs[2, 0, 0, :, 0], [0, 0, 0, 1])
    sampled = Imagination(horizon=3, sample=True).rollout(
        stateless(hesitant_model), q_net, ImaginedStart(obs=start), jax.random.PRNGKey(1), jnp.asarray(0.0)
    )
    # 4,096 draws: the standard error of each share is under 0.008
    np.testing.assert_allclose(jnp.mean(sampled.obs[2, :, 0, 2:, 0], axis=0), [0.3, 0.9], atol=0.03)
