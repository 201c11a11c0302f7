"""The termination veto at evaluation on saved policies, and the world model's termination where the veto uses it.

For every seed of each RUN_DIR (a finished PDQN run with a learned model, or the termination model): greedy returns over ``--episodes``
episodes, the same with the real game's veto (the oracle: a step of a copy of the real state per action) and with
the run's learned model's veto at each ``--thresholds`` value, all on the same episode keys; then the termination
diagnostic of :mod:`pdqn.termination` (the learned model against the real game, every action, on the states the
greedy policy visits), and its next frames against the real game's (:func:`pdqn.termination.frame_scores`; not for
the termination model, which predicts none). Writes ``OUT/veto.csv`` (one row per run, seed and policy) and ``OUT/termination.csv`` (one
row per run and seed), and prints both as markdown tables (with no RUN_DIR: prints OUT's tables again).

    python experiments/decision-time/veto.py RUN_DIR [RUN_DIR ...] --out experiments/decision-time/baseline
"""

import argparse
import os
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import polars as pl
from jaxtyping import Array, PRNGKeyArray

from pdqn.acting import Veto
from pdqn.checkpoint import CheckpointError, load_policy, select_seed
from pdqn.config import is_veto_threshold
from pdqn.envs import VecEnv, make_env
from pdqn.evaluation import evaluate_greedy
from pdqn.models import OracleModel, make_model
from pdqn.networks import QNetwork
from pdqn.termination import frame_scores, sample_terminations, termination_scores


@eqx.filter_jit
def veto_returns(env: VecEnv, q_net: QNetwork, veto: Veto | None, model_state: object, key: PRNGKeyArray) -> Array:
    """Greedy returns with ``veto`` (None: greedy alone); compiled once per veto, whatever the seed's networks."""
    return evaluate_greedy(env, q_net, key, None if veto is None else veto.acting_q(model_state))


termination_sample = eqx.filter_jit(sample_terminations)


def mean_and_se(returns: Array) -> dict[str, float]:
    """A policy's episode returns as their mean and its standard error (the columns ``return`` and ``se``)."""
    values = np.asarray(returns)
    return {"return": float(values.mean()), "se": float(values.std(ddof=1) / np.sqrt(len(values)))}


def measure(run_dir: Path, episodes: int, steps: int, thresholds: list[float], seed: int) -> tuple[list[dict], list[dict]]:
    config, tree = load_policy(run_dir)
    env = make_env(config.env, episodes, config.frame_stack, sticky_actions=config.sticky_actions)
    learned = make_model(config.dyna, env, config.pqn.batch_size)
    if not config.planning or isinstance(learned, OracleModel):
        raise SystemExit(f"error: {run_dir} has no learned model to veto with (a PQN run, or PDQN with the oracle)")
    oracle = OracleModel(env=env)
    veto_rows, term_rows = [], []
    for index, run_seed in enumerate(config.seeds):
        q_net = select_seed(tree["q_net"], index)
        model_state = select_seed(tree["planner"].model, index)
        key = jax.random.PRNGKey(seed)
        policies = {"greedy": None, "veto, real game": Veto(oracle, 0.5, env.num_actions)}
        for threshold in thresholds:
            policies[f"veto, learned model, {threshold:g}"] = Veto(learned, threshold, env.num_actions)
        for name, veto in policies.items():
            returns = veto_returns(env, q_net, veto, model_state, key)
            veto_rows.append({"run": run_dir.name, "game": config.env, "seed": run_seed, "policy": name, **mean_and_se(returns)})
        sample = termination_sample(env, q_net, learned, model_state, key, num_steps=steps)
        term_rows.append({"run": run_dir.name, "game": config.env, "seed": run_seed, **termination_scores(sample, 0.5),
                          **(frame_scores(sample) if learned.imagines else {})})
    return veto_rows, term_rows


def threshold(text: str) -> float:
    """An argparse type: a veto threshold, strictly between 0 and 1."""
    value = float(text)
    if not is_veto_threshold(value):
        raise argparse.ArgumentTypeError(f"{text} is not a probability strictly between 0 and 1")
    return value


def evaluation_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments of a script that evaluates policies of saved runs on shared episode keys (its own added after)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="*", type=Path, help="runs to measure (none: print OUT's tables again)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=128, help="evaluation episodes per seed and policy")
    parser.add_argument("--seed", type=int, default=1, help="key of the evaluation episodes (the same for every policy)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = evaluation_parser(__doc__)
    parser.add_argument("--steps", type=int, default=256, help="steps of the diagnostic's episodes (128 envs)")
    parser.add_argument("--thresholds", type=threshold, nargs="+", default=[0.5, 0.2, 0.1])
    args = parser.parse_args(argv)
    if not args.run_dirs:
        if not (args.out / "veto.csv").is_file() or not (args.out / "termination.csv").is_file():
            raise SystemExit(f"error: no veto.csv and termination.csv in {args.out} (give RUN_DIRs to measure)")
        print_tables(pl.read_csv(args.out / "veto.csv"), pl.read_csv(args.out / "termination.csv"))
        return 0
    veto, term = [], []
    for run_dir in args.run_dirs:
        try:
            rows = measure(run_dir, args.episodes, args.steps, args.thresholds, args.seed)
        except CheckpointError as err:  # a run that is missing or unfinished: one line, not a traceback
            raise SystemExit(f"error: {err}") from None
        veto += rows[0]
        term += rows[1]
    args.out.mkdir(parents=True, exist_ok=True)
    veto_frame, term_frame = pl.DataFrame(veto), pl.DataFrame(term)
    veto_frame.write_csv(args.out / "veto.csv")
    term_frame.write_csv(args.out / "termination.csv")
    print_tables(veto_frame, term_frame)
    return 0


def share_of_real_gain(gain: np.ndarray, real_gain: np.ndarray, resamples: int = 10_000) -> tuple[float, float]:
    """A policy's mean gain over greedy as a share of the real-game veto's, over the same seeds, and its standard
    error: the standard deviation of the share over bootstrap resamples of the seeds (a fixed key, so it prints the
    same every time). Both are NaN where the real game's veto gains nothing (no avoidable deaths: no share to recover)."""
    if real_gain.mean() == 0:
        return float("nan"), float("nan")
    indices = np.random.default_rng(0).integers(0, len(gain), size=(resamples, len(gain)))
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = gain[indices].mean(axis=1) / real_gain[indices].mean(axis=1)
    return float(gain.mean() / real_gain.mean()), float(np.nanstd(shares[np.isfinite(shares)]))


def paired_gains(veto_frame: pl.DataFrame) -> pl.DataFrame:
    """``veto.csv``'s rows with the same run and seed's greedy return beside each (``greedy``) and the difference
    (``gain``)."""
    greedy = veto_frame.filter(pl.col("policy") == "greedy").select("run", "seed", pl.col("return").alias("greedy"))
    return veto_frame.join(greedy, on=["run", "seed"]).with_columns((pl.col("return") - pl.col("greedy")).alias("gain"))


def print_tables(veto_frame: pl.DataFrame, term_frame: pl.DataFrame) -> None:
    """Per run and policy: the mean return over seeds, its paired difference from the same seed's greedy return (mean
    ± s.e. over seeds) and that difference as a share of the real-game veto's (issue 31's target is a quarter); and
    the termination diagnostic per seed."""
    paired = paired_gains(veto_frame)
    real = paired.filter(pl.col("policy") == "veto, real game").select("run", "seed", pl.col("gain").alias("real_gain"))
    paired = paired.join(real, on=["run", "seed"]).sort("run", "seed", maintain_order=True)
    se = lambda column: (pl.col(column).std() / pl.col(column).len().sqrt()).round(2)  # noqa: E731  (over seeds)
    summary = paired.group_by("run", "policy", maintain_order=True).agg(
        pl.col("return").mean().round(2).alias("mean over seeds"),
        se("return").alias("s.e."),
        pl.col("gain").mean().round(2).alias("minus greedy (paired)"),
        se("gain").alias("its s.e."),
        pl.col("gain").alias("gains"),
        pl.col("real_gain").alias("real_gains"),
    )
    shares = [share_of_real_gain(np.asarray(g), np.asarray(r)) for g, r in summary.select("gains", "real_gains").rows()]
    summary = summary.drop("gains", "real_gains").with_columns(
        pl.Series("share of the real game's gain", [round(share, 3) for share, _ in shares]),
        pl.Series("its s.e. (bootstrap)", [round(err, 3) for _, err in shares]),
    )
    shown = ["game", "seed", "terminating_pairs", "precision", "recall", "auc", "pairwise_auc", "max_p_on_terminating",
             "median_p_on_terminating", "avoidable_greedy_deaths", "avoidable_vetoed", "wrong_cells", "exact_frames",
             "kept_0"]  # fmt: skip
    with pl.Config(
        tbl_formatting="MARKDOWN", tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, tbl_rows=100,
        tbl_cols=20, tbl_width_chars=400, fmt_str_lengths=80,
    ):  # fmt: skip
        print(summary)
        print(term_frame.select([c for c in shown if c in term_frame.columns]).with_columns(pl.col(pl.Float64).round(4)))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout closed early (`| head`): the tables were written before printing; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
