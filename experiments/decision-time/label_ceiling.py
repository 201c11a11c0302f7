"""What a sample of every-action labels buys the termination veto, on a run's final Q-networks.

In training, a termination model learns only from the taken actions' outcomes. Here, per seed, a fresh termination
network learns every action's real outcome (each stepped in a copy of the real state) on the states the greedy
policy visits (128 episodes x 256 steps, keys apart from the evaluation's), as ``q_feature_probe.py`` does; then it
vetoes at 0.5 on ``--episodes`` evaluation episodes with veto.py's keys (``--seed``), beside greedy and the real
game's veto on the same keys, so each gain is paired and comparable with veto.py's tables of the same networks. Two
networks: the termination model's (its own 5x5 layer and "cells" head) and the "cells" head on the Q-network's conv
features (frozen). Only a simulator gives these labels, and a sample of them fitted offline is not a ceiling: it
measures what that sample is worth.

    python experiments/decision-time/label_ceiling.py RUN_DIR [RUN_DIR ...] --out DIR   # measures, writes DIR/ceiling.csv
    python experiments/decision-time/label_ceiling.py --out DIR                          # prints DIR's table again
"""

import sys
from pathlib import Path

import equinox as eqx
import jax
import polars as pl
from jaxtyping import Array, PRNGKeyArray
from q_feature_probe import fit, measure_or_read, print_markdown, visited
from veto import evaluation_parser, mean_and_se, veto_returns

from pdqn.acting import Veto, vetoed_q
from pdqn.checkpoint import load_policy, select_seed
from pdqn.envs import VecEnv, make_env
from pdqn.evaluation import evaluate_greedy
from pdqn.models import OracleModel
from pdqn.models.conv import CellsTermination
from pdqn.models.termination import TerminationNetwork
from pdqn.networks import QNetwork

THRESHOLD = 0.5


@eqx.filter_jit
def labelled_veto_returns(
    env: VecEnv, q_net: QNetwork, network: eqx.Module, on_q_features: bool, key: PRNGKeyArray
) -> Array:
    """Greedy returns, vetoed at :data:`THRESHOLD` by ``network``'s probabilities (of the Q-network's conv features
    if ``on_q_features``, else of the observation)."""

    def acting_q(q_net, q, obs, env_state, key):
        p_terminal = jax.nn.sigmoid(network(q_net.cell_features(obs) if on_q_features else obs))
        vetoed = jax.vmap(vetoed_q, in_axes=(0, 0, None))(q, p_terminal, THRESHOLD)
        return vetoed, vetoed.argmax(-1) != q.argmax(-1)

    return evaluate_greedy(env, q_net, key, acting_q)


def measure(run_dir: Path, episodes: int, steps: int, fit_steps: int, seed: int) -> list[dict]:
    config, tree = load_policy(run_dir)
    sample_env = make_env(config.env, 128, config.frame_stack, sticky_actions=config.sticky_actions)
    env = make_env(config.env, episodes, config.frame_stack, sticky_actions=config.sticky_actions)
    rows = []
    for index, run_seed in enumerate(config.seeds):
        q_net = select_seed(tree["q_net"], index)
        key = jax.random.fold_in(jax.random.PRNGKey(run_seed), 7)  # states to learn from, apart from the evaluation's
        observations, fatal = visited(sample_env, q_net, key, steps)
        obs, fatal = observations.reshape(-1, *observations.shape[2:]), fatal.reshape(-1, fatal.shape[-1])
        k_own, k_q, k_fit = jax.random.split(jax.random.fold_in(key, 1), 3)
        own = TerminationNetwork(env.obs_shape, env.num_actions, 32, key=k_own)
        q_features = eqx.filter_jit(lambda net, o: net.cell_features(o))(q_net, obs)
        on_q = CellsTermination(q_features.shape[-1], env.num_actions, key=k_q)
        labelled = {
            "veto, own 5x5 layer, every action labelled": (fit(own, obs, fatal, k_fit, fit_steps), False),
            "veto, head on the Q-network's features, every action labelled": (fit(on_q, q_features, fatal, k_fit, fit_steps), True),
        }  # fmt: skip
        eval_key = jax.random.PRNGKey(seed)
        results = {
            "greedy": veto_returns(env, q_net, None, None, eval_key),
            "veto, real game": veto_returns(env, q_net, Veto(OracleModel(env=env), THRESHOLD, env.num_actions), None, eval_key),
            **{name: labelled_veto_returns(env, q_net, *fitted, eval_key) for name, fitted in labelled.items()},
        }
        for name, result in results.items():
            rows.append({"run": run_dir.name, "game": config.env, "seed": run_seed, "policy": name, **mean_and_se(result)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = evaluation_parser(__doc__)
    parser.add_argument("--steps", type=int, default=256, help="steps of the 128 greedy episodes learned from")
    parser.add_argument("--fit-steps", type=int, default=3000, help="Adam steps of each network")
    args = parser.parse_args(argv)
    frame = measure_or_read(
        args.run_dirs,
        args.out / "ceiling.csv",
        lambda run: measure(run, args.episodes, args.steps, args.fit_steps, args.seed),
    )
    greedy = frame.filter(pl.col("policy") == "greedy").select("run", "seed", pl.col("return").alias("greedy"))
    real = frame.filter(pl.col("policy") == "veto, real game").select("run", "seed", pl.col("return").alias("real"))
    paired = frame.join(greedy, on=["run", "seed"]).join(real, on=["run", "seed"]).with_columns(
        gain=pl.col("return") - pl.col("greedy"), real_gain=pl.col("real") - pl.col("greedy")
    )
    summary = paired.group_by("game", "policy", maintain_order=True).agg(
        pl.col("return").mean().round(2).alias("mean over seeds"),
        (pl.col("return").std() / pl.col("return").len().sqrt()).round(2).alias("s.e."),
        pl.col("gain").mean().round(2).alias("minus greedy (paired)"),
        (pl.col("gain").std() / pl.col("gain").len().sqrt()).round(2).alias("its s.e."),
        (pl.col("gain").sum() / pl.col("real_gain").sum()).round(3).alias("share of the real game's gain"),
    )
    print_markdown(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
