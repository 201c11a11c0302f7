"""How much of MinAtar's next frame can a model predict from the last k frames? (offline, per game)

    python experiments/model-history/run.py      (writes results.csv and results.md beside this file)

MinAtar games carry hidden timers (Freeway's per-car move timers, Asterix's move and spawn timers,
SpaceInvaders' alien move timer): from one frame a model cannot know whether an entity moves this step.
This trains PDQN's dynamics-model shape (MLP, LayerNorm, skip connection from the newest frame) offline on
real transitions, given the last k frames (frames from before the episode's start are zeros), and measures
next-observation accuracy on games the model never trained on. Data: a trained PQN policy of each game
(seed index 0 of the run named below, epsilon 0.05), 128 games x 600 steps; the first 96 games train,
the last 32 test. Every k gets the same data, width, steps and seed.
"""

import csv
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pdqn.checkpoint import load_policy, select_seed
from pdqn.envs import make_env
from pdqn.layers import Dense, LayerNorm
from pdqn.schedules import epsilon_greedy

HERE = Path(__file__).parent
POLICIES = {  # a trained PQN policy per game, to collect realistic states
    "breakout": "experiments/study-1m/runs/breakout-pqn",
    "space_invaders": "experiments/pdqn-ablations/runs/space_invaders-pqn",
    "freeway": "experiments/pdqn-ablations/runs/freeway-pqn",
    "asterix": "experiments/pdqn-ablations/runs/asterix-pqn",
    "seaquest": "experiments/pdqn-ablations/runs/seaquest-pqn",
}
HISTORIES = (1, 2, 4)
ENVS, STEPS, TRAIN_ENVS = 128, 600, 96
HIDDEN, BATCH, TRAIN_STEPS, LR = 256, 512, 4000, 1e-3


def collect(game: str, key: jax.Array) -> dict[str, np.ndarray]:
    """Time-major real transitions with the last max(HISTORIES) frames before each step."""
    _, tree = load_policy(Path(POLICIES[game]))
    q_net = select_seed(tree["q_net"], 0)
    env = make_env(game, ENVS)
    depth = max(HISTORIES)

    def step(carry, key):
        frames, state, stats = carry  # frames: envs x depth x h x w x c, newest last
        k_act, k_env = jax.random.split(key)
        action = epsilon_greedy(k_act, q_net(frames[:, -1]), jnp.float32(0.05))
        real, state, stats = env.step(k_env, state, stats, action)
        out = {"frames": frames.astype(jnp.bool_), "action": action, "next_obs": real.final_obs.astype(jnp.bool_)}
        shifted = jnp.concatenate([frames[:, 1:], real.obs[:, None]], axis=1)
        fresh = jnp.zeros_like(frames).at[:, -1].set(real.obs)
        frames = jnp.where(real.done[:, None, None, None, None], fresh, shifted)
        return (frames, state, stats), out

    k_reset, k_steps = jax.random.split(key)
    obs, state, stats = env.reset(k_reset)
    frames = jnp.zeros((ENVS, depth, *obs.shape[1:])).at[:, -1].set(obs)
    _, out = jax.jit(lambda k: jax.lax.scan(step, (frames, state, stats), jax.random.split(k, STEPS)))(k_steps)
    return {name: np.asarray(x) for name, x in out.items()}


class HistoryModel(eqx.Module):
    """PDQN's next-observation head over the last ``history`` frames and the action."""

    encoder: Dense
    encoder_norm: LayerNorm
    trunk: Dense
    trunk_norm: LayerNorm
    head: Dense
    skip_scale: jax.Array
    num_actions: int = eqx.field(static=True)

    def __init__(self, frame_shape, history: int, num_actions: int, key):
        k1, k2, k3 = jax.random.split(key, 3)
        flat = int(np.prod(frame_shape))
        self.num_actions = num_actions
        self.encoder = Dense(flat * history + num_actions, HIDDEN, key=k1)
        self.encoder_norm = LayerNorm(HIDDEN)
        self.trunk = Dense(HIDDEN + num_actions, HIDDEN, key=k2)
        self.trunk_norm = LayerNorm(HIDDEN)
        self.head = Dense(HIDDEN, flat, key=k3)
        self.skip_scale = jnp.full((frame_shape[-1],), 2.0)

    def __call__(self, frames, action):  # frames: batch x k x h x w x c
        one_hot = jax.nn.one_hot(action, self.num_actions)
        x = jnp.concatenate([frames.reshape(frames.shape[0], -1), one_hot], -1)
        x = jax.nn.relu(self.encoder_norm(self.encoder(x)))
        x = jax.nn.relu(self.trunk_norm(self.trunk(jnp.concatenate([x, one_hot], -1))))
        newest = frames[:, -1]
        return self.head(x).reshape(newest.shape) + (2.0 * newest - 1.0) * self.skip_scale


def train_and_test(data: dict[str, np.ndarray], history: int, num_actions: int, key: jax.Array) -> dict[str, float]:
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731  time x envs -> rows
    split = {
        part: {
            "frames": flat(data["frames"][:, envs, -history:]).astype(np.float32),
            "action": flat(data["action"][:, envs]),
            "next_obs": flat(data["next_obs"][:, envs]).astype(np.float32),
        }
        for part, envs in (("train", slice(0, TRAIN_ENVS)), ("test", slice(TRAIN_ENVS, None)))
    }
    k_init, k_batches = jax.random.split(key)
    model = HistoryModel(split["train"]["next_obs"].shape[1:], history, num_actions, k_init)
    optimiser = optax.adam(LR)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    def loss_fn(model, train, idx):
        logits = model(train["frames"][idx], train["action"][idx])
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, train["next_obs"][idx]))

    @eqx.filter_jit
    def fit(model, opt_state, key, train):  # the data is an argument: captured, XLA would copy it as constants
        def step(carry, key):
            model, opt_state = carry
            idx = jax.random.randint(key, (BATCH,), 0, train["action"].shape[0])
            grads = eqx.filter_grad(loss_fn)(model, train, idx)
            updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return (eqx.apply_updates(model, updates), opt_state), None

        (model, opt_state), _ = jax.lax.scan(step, (model, opt_state), jax.random.split(key, TRAIN_STEPS))
        return model

    model = fit(model, opt_state, k_batches, jax.tree.map(jnp.asarray, split["train"]))
    test = split["test"]
    predicted = np.concatenate(
        [np.asarray(model(jnp.asarray(test["frames"][i : i + 4096]), jnp.asarray(test["action"][i : i + 4096])) > 0)
         for i in range(0, len(test["action"]), 4096)]
    )  # fmt: skip
    truth = test["next_obs"] > 0.5
    changed = truth != (test["frames"][:, -1] > 0.5)
    correct = predicted == truth
    return {
        "changed_cell_accuracy": float(np.sum(correct & changed) / max(np.sum(changed), 1)),
        "obs_exact": float(np.mean(np.all(correct, axis=(1, 2, 3)))),
        "wrong_cells": float(np.mean(np.sum(~correct, axis=(1, 2, 3)))),
    }


def main() -> int:
    rows = []
    for game in POLICIES:
        data = collect(game, jax.random.key(0))
        num_actions = int(make_env(game, 1).num_actions)
        for history in HISTORIES:
            start = time.perf_counter()
            result = train_and_test(data, history, num_actions, jax.random.key(1))
            rows.append({"game": game, "history": history, **result})
            print(f"{game} k={history}: {result} ({time.perf_counter() - start:.0f} s)", flush=True)
    with open(HERE / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| game | frames k | changed-cell acc. | whole obs exact | wrong cells per step |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r['game']} | {r['history']} | {r['changed_cell_accuracy']:.3f} | {r['obs_exact']:.3f} | {r['wrong_cells']:.2f} |"
        for r in rows
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
