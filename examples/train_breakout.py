"""Use pdqn as a library: train PQN briefly on Breakout and inspect the greedy policy."""

import jax
import jax.numpy as jnp

import pdqn


def main() -> None:
    config = pdqn.Config(
        alg="pqn",
        env="breakout",
        total_timesteps=8 * 16 * 10,
        num_seeds=2,
        eval_envs=8,
        pqn=pdqn.PQNConfig(num_envs=16, num_steps=8, num_minibatches=4),
    )
    trainer = pdqn.Trainer(config)
    states: pdqn.TrainState = trainer.init_seeds()
    states, metrics = jax.jit(trainer.run_chunk)(states, jnp.asarray(config.num_updates))
    returns = trainer.evaluate(states, jax.random.PRNGKey(0))
    print("td loss per seed:", metrics["td_loss"][:, config.num_updates - 1])
    print("greedy return per seed:", returns.mean(axis=1))
    targets = pdqn.q_lambda_targets(
        jnp.ones(3), jnp.zeros(3, bool), jnp.zeros(3, bool), jnp.zeros(3), gamma=0.9, td_lambda=0.5
    )
    print("targets of a reward-1 rollout with zero bootstrap:", targets)


if __name__ == "__main__":
    main()
