"""Which trust gate picks out the imagined steps a trained model gets right, and which on-threshold keeps
the objects it is unsure about? Measured on real states.

    python -m analysis.gate_quality --runs experiments/pdqn-ablations/runs/*-pdqn-ens3-gate-1-batch-mean \
        --out experiments/pdqn-ablations/gate_quality.md

For each PDQN run (its saved ``policy.eqx``: Q-network and dynamics ensemble) and one seed, the greedy
policy (epsilon 0.05) plays ``--envs`` real games for ``--steps`` steps. At each step the first ensemble
member predicts the next observation of the action taken; the prediction is *exact* when its thresholded
cells all match the real next observation. Each gate trusts some steps: a useful gate trusts many steps
and is right on a much larger share of them than on the rest. Steps where the episode ended are left out.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

UNCERTAINTY_BOUNDS = (0.1, 0.2, 0.3)
ON_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)  # 0.5, the default, also scores the gates


@dataclass(frozen=True)
class Gate:
    label: str
    kind: str  # "none", "disagree" or "uncertain"
    count: int = 0
    bound: float = 0.5

    def trusts(self, steps: dict[str, np.ndarray]) -> np.ndarray:
        if self.kind == "disagree":
            return steps["disagreeing_cells"] <= self.count
        if self.kind == "uncertain":
            return steps[f"uncertain_cells_{self.bound}"] <= self.count
        return np.ones_like(steps["wrong_cells"], bool)


GATES = (
    Gate("none", "none"),
    *(Gate(f"members differ in <= {k} cells", "disagree", k) for k in (0, 1, 2)),
    *(Gate(f"<= {k} cells with min(p, 1-p) > {u}", "uncertain", k, u) for u in UNCERTAINTY_BOUNDS for k in (0, 1, 2, 4)),
)


def gate_table(steps: dict[str, np.ndarray], gates: Sequence[Gate] = GATES) -> pl.DataFrame:
    """Per gate: the share of steps it trusts, and how often the prediction is exact among trusted and the rest."""
    exact = steps["wrong_cells"] == 0
    rows = []
    for gate in gates:
        trusted = gate.trusts(steps)
        share = lambda x, m: float(np.mean(x[m])) if m.any() else None  # noqa: E731
        rows.append(
            {
                "gate": gate.label,
                "trusted": float(np.mean(trusted)),
                "exact (trusted)": share(exact, trusted),
                "exact (untrusted)": share(exact, ~trusted),
                "wrong cells (trusted)": share(steps["wrong_cells"], trusted),
            }
        )
    return pl.DataFrame(rows)


def threshold_table(steps: dict[str, np.ndarray], thresholds: Sequence[float] = ON_THRESHOLDS) -> pl.DataFrame:
    """Per ``--dyna.on-threshold``: cells on per predicted frame (beside the real frames'), cells wrong, and how
    much higher the Q-network values the predicted next frame than the real one (the imagined bootstrap's bias)."""
    return pl.DataFrame(
        [
            {
                "on threshold": t,
                "cells on (real)": float(np.mean(steps["real_on_cells"])),
                "cells on (predicted)": float(np.mean(steps[f"on_cells_{t}"])),
                "wrong cells": float(np.mean(steps[f"wrong_cells_{t}"])),
                "max Q: predicted - real next frame": float(np.mean(steps[f"q_gap_{t}"])),
            }
            for t in thresholds
        ]
    )


def uncertain_cells(logits: jax.Array, bound: float) -> jax.Array:
    """Cells per prediction whose probability ``p`` has ``min(p, 1 - p) > bound`` (the uncertain-cell gate that
    experiments/pdqn-ablations measured and the planners no longer have)."""
    p = jax.nn.sigmoid(logits)
    return jnp.sum(jnp.minimum(p, 1.0 - p) > bound, axis=(1, 2, 3))


def measure(run_dir: Path, seed_index: int, envs: int, steps: int, key: jax.Array) -> dict[str, np.ndarray]:
    """Per real step (not ending an episode): wrong (thresholded and sampled), changed, disagreeing, uncertain
    and switched-on cell counts."""
    from pdqn.checkpoint import load_policy, select_seed
    from pdqn.envs import make_env
    from pdqn.models import disagreeing_cells, sample_cells
    from pdqn.networks import greedy_value
    from pdqn.schedules import epsilon_greedy

    config, tree = load_policy(run_dir)
    ensemble = getattr(getattr(tree["planner"], "model", None), "ensemble", None)
    if ensemble is None:
        raise ValueError(f"{run_dir} has no learned dynamics model (a PQN run, or PDQN with the oracle)")
    q_net, model = select_seed(tree["q_net"], seed_index), select_seed(ensemble, seed_index)
    env = make_env(config.env, envs, config.frame_stack)

    def step(carry, key):
        obs, state, stats = carry
        k_act, k_env = jax.random.split(key)
        action = epsilon_greedy(k_act, q_net(obs), jnp.float32(0.05))
        logits = model(obs, action).next_obs_logits
        real, state, stats = env.step(k_env, state, stats, action)
        truth = real.final_obs > 0.5
        q_real = greedy_value(q_net(real.final_obs))
        cells = lambda x: jnp.sum(x, axis=(1, 2, 3))  # noqa: E731
        sampled = sample_cells(jax.random.fold_in(key, 1), logits[0]) > 0.5
        on = {t: jax.nn.sigmoid(logits[0]) > t for t in ON_THRESHOLDS}
        out = {
            "wrong_cells": cells(on[0.5] != truth),
            "sampled_wrong_cells": cells(sampled != truth),
            "real_on_cells": cells(truth),
            **{f"on_cells_{t}": cells(x) for t, x in on.items()},
            **{f"wrong_cells_{t}": cells(x != truth) for t, x in on.items()},
            **{f"q_gap_{t}": greedy_value(q_net(x.astype(jnp.float32))) - q_real for t, x in on.items()},
            "changed_cells": cells((obs > 0.5) != truth),
            "disagreeing_cells": disagreeing_cells(logits),
            **{f"uncertain_cells_{u}": uncertain_cells(logits[0], u) for u in UNCERTAINTY_BOUNDS},
            "done": real.done,
        }
        return (real.obs, state, stats), out

    k_reset, k_steps = jax.random.split(key)
    init = env.reset(k_reset)
    _, out = jax.jit(lambda k: jax.lax.scan(step, init, jax.random.split(k, steps)))(k_steps)
    keep = ~np.asarray(out.pop("done"))
    return {name: np.asarray(x)[keep] for name, x in out.items()}


def main(argv: list[str] | None = None) -> int:
    from pdqn.cli import fail

    parser = argparse.ArgumentParser(prog="python -m analysis.gate_quality", description="Trust gates on real states.")
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="PDQN run dirs with a policy.eqx")
    parser.add_argument("--out", type=Path, required=True, help="markdown file to write")
    parser.add_argument("--seed-index", type=int, default=0, help="which of each run's seeds (default 0)")
    parser.add_argument("--envs", type=int, default=128, help="real games played at once (default 128)")
    parser.add_argument("--steps", type=int, default=400, help="steps of each game (default 400)")
    args = parser.parse_args(argv)
    sections = []
    for run_dir in sorted(args.runs):
        try:
            steps = measure(run_dir, args.seed_index, args.envs, args.steps, jax.random.key(123))
        except (OSError, ValueError, IndexError) as err:
            fail(f"{run_dir}: {str(err).splitlines()[0]}")
        exact = float(np.mean(steps["wrong_cells"] == 0))
        sections.append(
            f"## {run_dir.name} (seed index {args.seed_index})\n\n{len(steps['wrong_cells'])} real steps; the "
            f"prediction is exact on {exact:.3f}; per step {np.mean(steps['changed_cells']):.2f} cells change and "
            f"the model gets {np.mean(steps['wrong_cells']):.2f} wrong (sampling each cell from its predicted "
            f"probability instead of thresholding it: {np.mean(steps['sampled_wrong_cells']):.2f} wrong).\n\n"
            + markdown(gate_table(steps))
            + "\nCells on per next frame when a predicted cell is on above a probability threshold "
            "(`--dyna.on-threshold`; 0.5 is the default):\n\n"
            + markdown(threshold_table(steps))
        )
        print(f"{run_dir.name}: exact {exact:.3f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Trust gates on real states (`python -m analysis.gate_quality`)\n\n" + "\n".join(sections))
    print(f"wrote {args.out}")
    return 0


def markdown(table: pl.DataFrame) -> str:
    fmt = lambda v: "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(table.columns) + " |", "|---" + "|---:" * (table.width - 1) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
