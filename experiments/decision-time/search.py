"""The ceiling of decision-time search on saved policies: search at evaluation only, against the same policies acting
greedily (issue: planning that pays).

For every seed of each RUN_DIR (a finished run; its Q-network is the prior and leaf value): greedy returns over
``--episodes`` episodes, then the same episodes (the same keys) acting on the root values of Gumbel MuZero search
(:mod:`pdqn.search`) with the real game as the model (each node one sampled outcome; ``--no-real-game`` skips it)
and, with ``--models``, with learned models: the world model of each PDQN run of the same game and seeds (seed i's
model for seed i's Q-network), named after the run's directory.
Simulations are given as multiples of the game's action count (1: the exhaustive one-step lookahead). Writes
``OUT/search.csv`` (one row per run, seed and policy: mean return, its s.e. over episodes, mean length and the share
of episodes the 1000-step limit cut; a rerun replaces the rows of its run and policy) and prints the mean over seeds
with the s.e. over seeds and the paired difference from greedy.

    python experiments/decision-time/search.py RUN_DIR [RUN_DIR ...] --out experiments/decision-time/search-ceiling \
        [--models PDQN_RUN_DIR ...] [--multiples 1 2]
    python experiments/decision-time/search.py --out experiments/decision-time/search-ceiling   (the table again)
"""

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import polars as pl

from pdqn.checkpoint import CheckpointError, load_policy, select_seed
from pdqn.envs import make_env
from pdqn.evaluation import evaluate_episodes
from pdqn.models import LearnedModel, OracleModel, make_model
from pdqn.search import Search


def learned_models(model_dirs: list[Path]) -> dict[str, list[tuple[str, LearnedModel, object, tuple[int, ...]]]]:
    """Each game's learned models: the PDQN run's name, its model, the seed-stacked state and the run's seeds."""
    models: dict[str, list] = {}
    for run_dir in model_dirs:
        config, tree = load_policy(run_dir)
        env = make_env(config.env, 1, config.frame_stack, sticky_actions=config.sticky_actions)
        model = make_model(config.dyna, env, config.pqn.batch_size)
        if not config.planning or not isinstance(model, LearnedModel):
            raise SystemExit(
                f"error: {run_dir} has no learned model of frames to search (a PQN run, or PDQN with the oracle or the "
                "termination model)"
            )
        models.setdefault(config.env, []).append((run_dir.name, model, tree["planner"].model, config.seeds))
    return models


def measure(run_dir: Path, episodes: int, multiples: list[int], models: dict, seed: int, real_game: bool) -> list[dict]:
    config, tree = load_policy(run_dir)
    env = make_env(config.env, episodes, config.frame_stack, sticky_actions=config.sticky_actions)
    gamma, actions = config.pqn.gamma, env.num_actions
    rows = []
    for index, run_seed in enumerate(config.seeds):
        q_net = select_seed(tree["q_net"], index)
        policies: dict[str, tuple[int, object]] = {"greedy": (0, None)}
        for m in multiples if real_game else []:
            search = Search(model=OracleModel(env=env), gamma=gamma, simulations=m * actions, temperature=1.0)
            policies[f"search, real game, {m * actions} simulations"] = (m * actions, search.acting_q(None))
        for name, model, states, seeds in models.get(config.env, []):
            if run_seed in seeds:
                model_state = select_seed(states, seeds.index(run_seed))
                for m in multiples:
                    search = Search(model=model, gamma=gamma, simulations=m * actions, temperature=1.0)
                    policies[f"search, learned model {name}, {m * actions} simulations"] = (m * actions, search.acting_q(model_state))
        key = jax.random.PRNGKey(seed)
        for name, (simulations, acting_q) in policies.items():
            returns, lengths = jax.jit(lambda k, a=acting_q: evaluate_episodes(env, q_net, k, a))(key)
            returns, lengths = np.asarray(returns), np.asarray(lengths)
            rows.append({
                "run": run_dir.name, "game": config.env, "seed": run_seed, "policy": name, "simulations": simulations,
                "return": float(returns.mean()), "se": float(returns.std(ddof=1) / np.sqrt(len(returns))),
                "mean_length": float(lengths.mean()), "cut_fraction": float((lengths >= env.max_episode_steps).mean()),
            })  # fmt: skip
            print(f"{config.env} seed {run_seed} {name}: {returns.mean():.2f}", flush=True)
    return rows


def summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Mean over seeds with the s.e. over seeds, and the paired difference from greedy with its s.e."""
    greedy = frame.filter(pl.col("policy") == "greedy").select("run", "seed", pl.col("return").alias("greedy"))
    paired = frame.join(greedy, on=["run", "seed"]).with_columns((pl.col("return") - pl.col("greedy")).alias("diff"))
    se = lambda c: (pl.col(c).std() / pl.col(c).len().sqrt()).round(2)  # noqa: E731
    return paired.group_by("run", "game", "policy", maintain_order=True).agg(
        pl.col("return").mean().round(2).alias("mean over seeds"),
        se("return").alias("s.e."),
        pl.col("diff").mean().round(2).alias("minus greedy"),
        se("diff").alias("s.e. of difference"),
        pl.col("cut_fraction").mean().round(3).alias("cut by the limit"),
        pl.len().alias("seeds"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", type=Path, help="finished runs (none: print the table of OUT/search.csv)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models", type=Path, nargs="*", default=[], help="PDQN runs whose learned models search uses")
    parser.add_argument("--episodes", type=int, default=128, help="evaluation episodes per seed and policy")
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 2], help="simulations per action count")
    parser.add_argument("--seed", type=int, default=1, help="key of the evaluation episodes (the same for every policy)")
    parser.add_argument("--real-game", action=argparse.BooleanOptionalAction, default=True, help="search the real game too")
    args = parser.parse_args(argv)
    path = args.out / "search.csv"
    if args.run_dirs:
        try:
            models = learned_models(args.models)
            rows = [row for run_dir in args.run_dirs for row in measure(run_dir, args.episodes, args.multiples, models, args.seed, args.real_game)]
        except CheckpointError as err:  # a run that is missing or unfinished: one line, not a traceback
            raise SystemExit(f"error: {err}") from None
        args.out.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame(rows)
        if path.exists():  # several invocations add to one table; a rerun replaces the rows of its runs and policies
            old = pl.read_csv(path)
            kept = old.join(frame.select("run", "policy").unique(), on=["run", "policy"], how="anti")
            frame = pl.concat([kept, frame], how="diagonal_relaxed")
        frame.write_csv(path)
    elif path.exists():
        frame = pl.read_csv(path)
    else:
        raise SystemExit(f"error: no run directories given and no {path} to show")
    with pl.Config(
        tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=100,
        tbl_width_chars=400, fmt_str_lengths=80, tbl_cols=20,
    ):  # fmt: skip
        print(summary(frame))
    return 0


if __name__ == "__main__":
    sys.exit(main())
