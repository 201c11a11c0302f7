"""What kills a Seaquest policy, and which of those deaths the learned model's veto sees.

For every seed of RUN_DIR (a finished PDQN run on Seaquest with a learned model): play the greedy policy for
``--steps`` steps of 128 episodes (as ``veto.py``'s termination diagnostic does), step a copy of the real
state with every action, and sort each fatal (state, action) pair by its cause, read from the real state before the
step: ``oxygen`` (the tank was empty: every action is fatal, so no veto can help), ``surfacing`` (the submarine
comes up with no diver aboard: the submarine at the top row and the diver gauge at the bottom one, nine rows
apart) or ``collision`` (an enemy, fish or shot at the submarine's cell). Then, for greedy's avoidable deaths (its
action fatal, a safe one there), how many of each cause the model's probability at ``--threshold`` vetoes. Prints a
markdown table and writes ``OUT/deaths.csv``.

    python experiments/decision-time/seaquest_deaths.py RUN_DIR --out experiments/decision-time/DIR
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from pdqn.checkpoint import CheckpointError, load_policy, select_seed
from pdqn.config import is_veto_threshold
from pdqn.envs import make_env
from pdqn.models import LearnedModel, make_model

CAUSES = ("oxygen", "surfacing", "collision")


def sample(env, q_net, model, model_state, key, steps: int):
    """Per visited state and action: real fatality, its cause (index into CAUSES), the model's probability."""
    actions, channels = env.num_actions, env.frame_shape[-1]
    k_reset, k_run = jax.random.split(key)
    obs, state, stats = env.reset(k_reset)

    def step(carry, key):
        obs, state, stats = carry
        k_model, k_real, k_env = jax.random.split(key, 3)
        repeat = lambda x: jnp.repeat(x, actions, axis=0)  # noqa: E731
        tried = jnp.tile(jnp.arange(actions, dtype=jnp.int32), env.num_envs)
        real, _ = env.transition(k_real, jax.tree.map(repeat, state), tried)
        game = state.game if env.frames > 1 else state  # the game's own state under the frame stack
        newest_sub = real.final_obs[:, 0, :, -channels]  # the newest frame's submarine channel, top row
        surfaced = jnp.any(newest_sub > 0.5, axis=-1) & (repeat(game.sub_y) == 1)
        cause = jnp.where(repeat(game.oxygen) <= 0, 0, jnp.where(surfaced & (repeat(game.diver_count) == 0), 1, 2))
        p = model.termination_probabilities(model_state, obs, None, k_model, actions)
        q = q_net(obs)
        out, state, stats = env.step(k_env, state, stats, jnp.argmax(q, axis=-1))
        per_pair = lambda x: x.reshape(env.num_envs, actions)  # noqa: E731
        return (out.obs, state, stats), (per_pair(real.terminated), per_pair(cause), p, jnp.argmax(q, axis=-1))

    _, out = jax.lax.scan(step, (obs, state, stats), jax.random.split(k_run, steps))
    return out


def measure(run_dir: Path, steps: int, threshold: float, seed: int) -> list[dict]:
    config, tree = load_policy(run_dir)
    if config.env != "seaquest":
        raise SystemExit(f"error: {run_dir} is a {config.env} run; this script reads Seaquest's state")
    env = make_env(config.env, 128, config.frame_stack, sticky_actions=config.sticky_actions)
    model = make_model(config.dyna, env, config.pqn.batch_size)
    if not config.planning or not isinstance(model, LearnedModel) or config.sticky_actions:
        raise SystemExit(f"error: {run_dir} needs a learned model and no sticky actions")
    rows = []
    for index, run_seed in enumerate(config.seeds):
        q_net, model_state = select_seed(tree["q_net"], index), select_seed(tree["planner"].model, index)
        fatal, cause, p, greedy = (np.asarray(x) for x in jax.jit(lambda k: sample(env, q_net, model, model_state, k, steps))(jax.random.PRNGKey(seed)))
        taken = lambda x: np.take_along_axis(x, greedy[..., None], -1)[..., 0]  # noqa: E731
        avoidable = taken(fatal) & ~fatal.all(-1)
        for c, name in enumerate(CAUSES):
            pairs = fatal & (cause == c)
            greedy_deaths = avoidable & (taken(cause) == c)
            rows.append({
                "run": run_dir.name, "seed": run_seed, "cause": name, "fatal_pairs": int(pairs.sum()),
                "recall": float((p[pairs] > threshold).mean()) if pairs.any() else float("nan"),
                "avoidable_greedy_deaths": int(greedy_deaths.sum()),
                "vetoed": int((greedy_deaths & (taken(p) > threshold)).sum()),
            })  # fmt: skip
    return rows


def threshold(text: str) -> float:
    """An argparse type: a veto threshold, strictly between 0 and 1."""
    value = float(text)
    if not is_veto_threshold(value):
        raise argparse.ArgumentTypeError(f"{text} is not a probability strictly between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--threshold", type=threshold, default=0.5)
    parser.add_argument("--seed", type=int, default=1, help="key of the episodes (veto.py's diagnostic uses 1)")
    args = parser.parse_args(argv)
    try:
        frame = pl.DataFrame(measure(args.run_dir, args.steps, args.threshold, args.seed))
    except CheckpointError as err:  # a run that is missing or unfinished: one line, not a traceback
        raise SystemExit(f"error: {err}") from None
    args.out.mkdir(parents=True, exist_ok=True)
    frame.write_csv(args.out / "deaths.csv")
    total = frame.group_by("cause", maintain_order=True).agg(
        pl.col("fatal_pairs").sum(), pl.col("avoidable_greedy_deaths").sum(), pl.col("vetoed").sum()
    )
    with pl.Config(tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=100):
        print(frame.with_columns(pl.col("recall").round(3)))
        print(total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
