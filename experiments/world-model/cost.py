"""Model-update time per update of every world-model variant (Breakout, one seed, default batch), as measured by
``python -m pdqn.experiments.benchmark --phases``; writes cost.json beside this file.

    python experiments/world-model/cost.py      (run with nothing else on the cores)
"""

import dataclasses
import json
from pathlib import Path

from pdqn.config import DynaConfig
from pdqn.experiments.benchmark import Benchmark, measure

HERE = Path(__file__).parent
BASE = dict(planner="dyna", model_fraction=1.0)  # as run.sh trains them
ONE = BASE | dict(ensemble_size=1, max_disagreeing_cells=None)
VARIANTS = {
    "mlp128-ens3": BASE | dict(ensemble_size=3, max_disagreeing_cells=1),
    "mlp128": ONE,
    "mlp256": ONE | dict(model_hidden=256),
    "conv32": ONE | dict(architecture="conv", model_features=32, model_fraction=0.25),
}


def main() -> None:
    costs = {}
    for name, knobs in VARIANTS.items():
        bench = Benchmark(alg="pdqn", env="breakout", repeats=3, phases=True, dyna=DynaConfig(**knobs))
        result = measure(bench)
        costs[name] = 1000 * result["phase_seconds_per_update"]["of_which_model_update"]  # type: ignore[index]
        print(name, f"{costs[name]:.0f} ms", flush=True)
    (HERE / "cost.json").write_text(json.dumps(costs, indent=2))


if __name__ == "__main__":
    main()
