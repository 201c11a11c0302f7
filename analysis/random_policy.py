"""Anchor 0 of the normalised scores: the return of a uniformly random policy on each MinAtar game.

    python -m analysis.random_policy --episodes 1000 --seed 0 --out analysis/anchors/random_policy.csv

Plays one complete episode in each of ``--episodes`` vectorised environments per game (the same
``pdqn.envs.make_env`` environments as training and greedy evaluation: gymnax MinAtar, minimal action
sets, no sticky actions, 1000-step cap, Freeway 2500), every action drawn uniformly from the game's
actions, and writes per game the mean undiscounted return, its standard error, the number of episodes,
the seed, the gymnax version and this command. ``analysis/anchors/random_policy.csv`` was made by the
command above.
"""

import argparse
import shlex
import sys
from importlib.metadata import version
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
from jaxtyping import Array, Float, PRNGKeyArray

from analysis.load import AnalysisError
from pdqn.config import GAMES
from pdqn.envs import VecEnv, make_env


def random_episode_returns(env: VecEnv, key: PRNGKeyArray) -> Float[Array, " envs"]:
    """Undiscounted return of one complete uniformly random episode in each of ``env.num_envs`` environments."""
    k_reset, k_run = jax.random.split(key)
    _, env_state, stats = env.reset(k_reset)
    finished = jnp.zeros(env.num_envs, bool)
    returns = jnp.zeros(env.num_envs)

    def running(carry):
        *_, finished, t = carry
        return jnp.logical_and(~jnp.all(finished), t <= env.max_episode_steps)

    def step(carry):
        key, env_state, stats, returns, finished, t = carry
        key, k_action, k_env = jax.random.split(key, 3)
        action = jax.random.randint(k_action, (env.num_envs,), 0, env.num_actions)
        out, env_state, stats = env.step(k_env, env_state, stats, action)
        # only an environment's first episode counts: later ones (after the auto-reset) are ignored
        returns = jnp.where(finished | ~out.done, returns, out.finished_return)
        return key, env_state, stats, returns, finished | out.done, t + 1

    carry = (k_run, env_state, stats, returns, finished, jnp.asarray(0))
    return jax.lax.while_loop(running, step, carry)[3]


def measure(games: list[str], episodes: int, seed: int, command: str) -> pl.DataFrame:
    """One row per game: mean return of ``episodes`` random episodes, standard error, episodes, provenance."""
    rows = []
    for index, game in enumerate(games):
        env = make_env(game, episodes)
        key = jax.random.fold_in(jax.random.PRNGKey(seed), index)
        # float64: the float32 sums are whole numbers, their mean should not print as 0.5249999761581421
        returns = np.asarray(jax.jit(random_episode_returns)(env, key), np.float64)
        rows.append({
            "game": game,
            "mean_return": float(returns.mean()),
            "standard_error": float(returns.std(ddof=1) / np.sqrt(returns.size)) if returns.size > 1 else float("nan"),
            "episodes": int(returns.size),
            "seed": seed,
            "gymnax_version": version("gymnax"),
            "command": command,
        })  # fmt: skip
    return pl.DataFrame(rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis.random_policy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=1000, help="episodes per game, one per vectorised environment (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument("--games", default=",".join(GAMES), help=f"comma-separated games (default: all, {','.join(GAMES)})")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    return parser


def main(argv: list[str] | None = None) -> int:
    from pdqn.cli import fail

    args = build_parser().parse_args(argv)
    games = [g for g in args.games.split(",") if g]
    try:
        unknown = [g for g in games if g not in GAMES]
        if unknown or not games:
            raise AnalysisError(f"--games: unknown game(s) {', '.join(unknown) or '(none given)'} (known: {', '.join(GAMES)})")
        if args.episodes < 2:
            raise AnalysisError("--episodes must be >= 2 (the standard error needs two episodes)")
        given = sys.argv[1:] if argv is None else argv
        table = measure(games, args.episodes, args.seed, shlex.join(["python", "-m", "analysis.random_policy", *given]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.write_csv(args.out)
    except AnalysisError as err:
        fail(str(err))
    print(table.select("game", "mean_return", "standard_error", "episodes"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
