"""Do the Q-network's conv features carry what the termination veto needs? A probe on a run's final networks.

On the states its greedy policy visits (the termination diagnostic's sample: 128 episodes x 256 steps, every action
stepped in a copy of the real state), two fresh termination networks learn every action's real outcome (labels for
every action, not only the taken one; the weighted termination loss, weight 10), on the first three quarters of the
environments, and are scored on the rest: the "cells" head on the Q-network's conv features (frozen), and the
termination model's own first layer on every cell's 5x5 neighbourhood with the same head. Where the second learns
the event and the first does not, the Q-network's features lack it, whatever the labels.

    python experiments/decision-time/q_feature_probe.py RUN_DIR [RUN_DIR ...] --out DIR   # measures, writes DIR/probe.csv
    python experiments/decision-time/q_feature_probe.py --out DIR                          # prints DIR's table again
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import polars as pl
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from pdqn.checkpoint import CheckpointError, load_policy, select_seed
from pdqn.envs import VecEnv, make_env
from pdqn.models.conv import CellsTermination
from pdqn.models.learned import termination_loss
from pdqn.models.termination import TerminationNetwork
from pdqn.networks import QNetwork
from pdqn.termination import overall_auc, pairwise_auc, precision_recall


@eqx.filter_jit
def visited(env: VecEnv, q_net: QNetwork, key: PRNGKeyArray, num_steps: int) -> tuple[Array, Array]:
    """The greedy policy's observations (``steps x envs``) and, for each, whether each action ends the episode."""
    actions = env.num_actions
    k_reset, k_run = jax.random.split(key)
    obs, state, stats = env.reset(k_reset)

    def step(carry, key):
        obs, state, stats = carry
        k_real, k_env = jax.random.split(key)
        repeat = lambda x: jnp.repeat(x, actions, axis=0)  # noqa: E731
        tried = jnp.tile(jnp.arange(actions, dtype=jnp.int32), env.num_envs)
        real, _ = env.transition(k_real, jax.tree.map(repeat, state), tried)
        out, state, stats = env.step(k_env, state, stats, jnp.argmax(q_net(obs), axis=-1))
        return (out.obs, state, stats), (obs, real.terminated.reshape(env.num_envs, actions))

    _, (observations, fatal) = jax.lax.scan(step, (obs, state, stats), jax.random.split(k_run, num_steps))
    return observations, fatal


def fit(
    network: eqx.Module, inputs: Float[Array, "n ..."], fatal: Bool[Array, "n actions"], key: PRNGKeyArray, steps: int
) -> eqx.Module:
    """``steps`` Adam steps (lr 1e-3, 512 rows) of the weighted termination loss over every action's label."""
    optimiser = optax.adam(1e-3)

    def loss(net, x, y):
        return termination_loss(net(x).ravel(), y.ravel().astype(jnp.float32), 10.0)

    @eqx.filter_jit
    def train(network, inputs, fatal, key):
        def one(carry, key):
            net, opt_state = carry
            rows = jax.random.randint(key, (512,), 0, inputs.shape[0])
            grads = eqx.filter_grad(loss)(net, inputs[rows], fatal[rows])
            updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(net, eqx.is_array))
            return (eqx.apply_updates(net, updates), opt_state), None

        carry = (network, optimiser.init(eqx.filter(network, eqx.is_array)))
        (network, _), _ = jax.lax.scan(one, carry, jax.random.split(key, steps))
        return network

    return train(network, inputs, fatal, key)


def scores(predicted: np.ndarray, real: np.ndarray) -> dict[str, float]:
    precision, recall = precision_recall(predicted, real, 0.5)
    return {"auc": overall_auc(predicted, real), "pairwise_auc": pairwise_auc(predicted, real), "precision": precision,
            "recall": recall}  # fmt: skip


def measure(run_dir: Path, steps: int, fit_steps: int) -> list[dict]:
    config, tree = load_policy(run_dir)
    env = make_env(config.env, 128, config.frame_stack, sticky_actions=config.sticky_actions)
    rows = []
    for index, run_seed in enumerate(config.seeds):
        q_net = select_seed(tree["q_net"], index)
        key = jax.random.PRNGKey(run_seed)
        observations, fatal = visited(env, q_net, key, steps)
        split = env.num_envs * 3 // 4  # train on the first environments' episodes, score on the others'
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        train_obs, test_obs = flat(observations[:, :split]), flat(observations[:, split:])
        train_fatal, test_fatal = flat(fatal[:, :split]), flat(fatal[:, split:])
        features = eqx.filter_jit(lambda net, o: net.cell_features(o))
        q_train, q_test = features(q_net, train_obs), features(q_net, test_obs)
        k_q, k_own = jax.random.split(jax.random.fold_in(key, 1))
        probes = {
            "head on the Q-network's conv features": (
                CellsTermination(q_train.shape[-1], env.num_actions, key=k_q), q_train, q_test),
            "own 5x5 first layer and head": (
                TerminationNetwork(env.obs_shape, env.num_actions, 32, key=k_own), train_obs, test_obs),
        }  # fmt: skip
        for name, (network, inputs, test_inputs) in probes.items():
            network = fit(network, inputs, train_fatal, jax.random.fold_in(key, 2), fit_steps)
            predicted = np.asarray(jax.nn.sigmoid(eqx.filter_jit(lambda net, x: net(x))(network, test_inputs)))
            real = np.asarray(test_fatal)
            rows.append({"run": run_dir.name, "game": config.env, "seed": run_seed, "probe": name,
                         "test_terminating_pairs": float(real.mean()), **scores(predicted.reshape(real.shape), real)})
    return rows


def measure_or_read(run_dirs: list[Path], table: Path, measure_run: Callable[[Path], list[dict]]) -> pl.DataFrame:
    """Measure each run into ``table`` (a CSV), or with no runs read it back; a run that cannot be loaded, or no
    table to read, exits with one ``error:`` line."""
    if run_dirs:
        rows = []
        for run_dir in run_dirs:
            try:
                rows += measure_run(run_dir)
            except CheckpointError as err:
                raise SystemExit(f"error: {err}") from None
        table.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows).write_csv(table)
    elif not table.is_file():
        raise SystemExit(f"error: no {table.name} in {table.parent} (give RUN_DIRs to measure)")
    return pl.read_csv(table)


def print_markdown(table: pl.DataFrame) -> None:
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_width_chars=300, fmt_str_lengths=70):  # fmt: skip
        print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", type=Path, help="runs to probe (none: print OUT's table again)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=256, help="steps of the 128 greedy episodes sampled")
    parser.add_argument("--fit-steps", type=int, default=3000, help="Adam steps of each probe")
    args = parser.parse_args(argv)
    frame = measure_or_read(args.run_dirs, args.out / "probe.csv", lambda run: measure(run, args.steps, args.fit_steps))
    summary = frame.group_by("game", "probe", maintain_order=True).agg(  # precision: over the seeds where it says any
        *[pl.col(c).fill_nan(None).mean().round(3).alias(c) for c in ("auc", "pairwise_auc", "precision", "recall")],
        *[(pl.col(c).std() / pl.col(c).len().sqrt()).round(3).alias(f"{c} s.e.") for c in ("pairwise_auc", "recall")],
    )
    print_markdown(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
