"""Seeds sharded over several (forced host) devices give the same results as one device."""

import io
import os
import subprocess
import sys

import jax
import numpy as np
import polars as pl
import polars.testing

from pdqn.checkpoint import load_policy
from pdqn.devices import seed_placement
from pdqn.runner import run
from tests.conftest import REPO, cli_env, tiny_config

ARGS = [
    "--num-seeds", "4", "--total-timesteps", "384", "--pqn.num-envs", "8", "--pqn.num-steps", "8",
    "--pqn.num-minibatches", "4", "--pqn.num-epochs", "1", "--eval-envs", "4", "--eval-every", "0.5", "--track.off",
]
FLOAT_NOISE = ("td_loss", "mean_q")


def test_four_devices_match_one_device(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    run(tiny_config(num_seeds=4), single, log=io.StringIO())

    sharded = tmp_path / "sharded"
    env = cli_env()
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    result = subprocess.run(
        [sys.executable, "-m", "pdqn.experiments.minatar", "--run-dir", str(sharded), *ARGS],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "note: 4 seeds sharded over 4 devices" in result.stderr
    a, b = pl.read_parquet(sharded / "metrics.parquet"), pl.read_parquet(single / "metrics.parquet")
    # Everything discrete (episodes, returns, greedy evaluations, schedules) is identical ...
    exact = [c for c in b.columns if c not in FLOAT_NOISE]
    polars.testing.assert_frame_equal(a.select(exact), b.select(exact), check_exact=True)
    # ... while losses and Q-values may differ in the last float32 bits: each device runs the
    # vmapped step with a batch of 1 seed instead of 4, and XLA's CPU code generation (vectorised
    # reductions inside the batched matmuls) then sums in another order.
    polars.testing.assert_frame_equal(a, b, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)
    _, pa = load_policy(sharded)
    _, pb = load_policy(single)
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_seeds_that_do_not_divide_fall_back_to_one_device():
    log = io.StringIO()
    device = jax.devices()[0]
    placement = seed_placement(3, log, devices=[device] * 4)
    assert not placement.sharded and log.getvalue().strip() == (
        "note: 3 seeds do not divide over 4 devices; running on one device"
    )
    assert not seed_placement(3, io.StringIO()).sharded  # one CPU device here
