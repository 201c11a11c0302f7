"""PQN learns the optimal Q-values of a small deterministic chain.

With lambda = 0 the targets are one-step Q-learning, whose fixed point is Q* whatever the
behaviour policy; a lambda > 0 mixes in the epsilon-greedy returns (Peng's Q(lambda)).
"""

import jax
import jax.numpy as jnp
import numpy as np

from pdqn.config import Config, PQNConfig
from pdqn.train import Trainer
from tests.toy_env import Chain


def test_pqn_learns_known_q_values():
    chain = Chain(length=3, quit_reward=0.5)
    pqn = PQNConfig(
        num_envs=16, num_steps=8, num_minibatches=4, num_epochs=2, gamma=0.9, td_lambda=0.0,
        lr=1e-3, eps_start=1.0, eps_finish=0.5, eps_decay=0.2,
        hidden_size=32, conv_features=8,
    )
    config = Config(total_timesteps=128 * 200, pqn=pqn, eval_envs=4, log_every=200)
    trainer = Trainer(config, env=chain)
    states = trainer.init_seeds()
    states, metrics = jax.jit(trainer.run_chunk)(states, jnp.asarray(200))
    q = jax.vmap(lambda net: net(chain.all_observations()))(states.learner.q_net)[0]
    # Q*(s, forward) = 0.9 ** (2 - s); Q*(s, quit) = 0.5
    np.testing.assert_allclose(q, chain.optimal_q(0.9), atol=0.02)
    assert np.all(np.isfinite(np.asarray(metrics["td_loss"])))
    # The greedy policy walks the chain to its reward of 1.
    returns = trainer.evaluate(states, jax.random.PRNGKey(0))
    np.testing.assert_allclose(returns, 1.0)
