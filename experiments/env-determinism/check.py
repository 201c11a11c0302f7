"""How random is each gymnax MinAtar game? Same 300 random actions from 16 different reset/step keys.

Run from the repository root: python experiments/env-determinism/check.py  (writes results.md beside it)
A game with one distinct trajectory is deterministic given the actions: a greedy policy then plays the same
episode in every evaluation environment.
"""

from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np

GAMES = ("Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "SpaceInvaders-MinAtar", "Seaquest-MinAtar")
STEPS, KEYS = 300, 16


def distinct_trajectories(name: str) -> int:
    env, params = gymnax.make(name)
    actions = jax.random.randint(jax.random.PRNGKey(42), (STEPS,), 0, env.num_actions)

    def play(key):
        k_reset, key = jax.random.split(key)
        _, state = env.reset(k_reset, params)

        def step(carry, xs):
            state, done = carry
            k, a = xs
            obs, state, _, d, _ = env.step_env(k, state, a, params)
            return (state, done | d), jnp.where(done, 0, obs).astype(jnp.uint8)  # frozen after the first end

        _, frames = jax.lax.scan(step, (state, jnp.asarray(False)), (jax.random.split(key, STEPS), actions))
        return frames

    frames = np.asarray(jax.vmap(play)(jax.random.split(jax.random.PRNGKey(0), KEYS)))
    return len({f.tobytes() for f in frames})


def main() -> None:
    rows = [f"| {name.removesuffix('-MinAtar')} | {distinct_trajectories(name)} |" for name in GAMES]
    text = "| game | distinct trajectories (of 16) |\n|---|---:|\n" + "\n".join(rows) + "\n"
    Path(__file__).with_name("results.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
