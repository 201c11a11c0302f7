"""The planner example of docs/library.md works as written: a new planner trains, and its declared metric is logged."""

import re
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import pdqn
from tests.conftest import tiny_config

DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"


def example_module() -> types.ModuleType:
    text = DOC.read_text().split("## Adding a planner", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    module = types.ModuleType("repeat_example")
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module


def test_the_documented_planner_trains_from_one_file_and_declares_its_metric():
    example = example_module()
    config = tiny_config(alg="pdqn", log_every=2)  # the documented calls, on a tiny config
    context = pdqn.planner_context(config, num_actions=pdqn.make_env(config.env, 1).num_actions)
    planner = example.Repeat.build(example.RepeatConfig(passes=2), None, pdqn.QFit(config.pqn.max_grad_norm), context)
    assert (planner.passes, planner.gamma) == (2, config.pqn.gamma)
    trainer = pdqn.Trainer(config, planner=planner)
    assert "repeat_td_loss" in {m.name for m in trainer.metrics if m.guarded}
    _, metrics = jax.jit(trainer.run_chunk)(trainer.init_seeds(), jnp.asarray(2))
    assert np.all(np.isfinite(np.asarray(metrics["repeat_td_loss"])))
    assert not any(name.startswith(("model_", "imagined_")) for name in metrics)  # only what it declares
