"""The same config and seed give bitwise-identical results on the CPU."""

import io

import polars as pl
import polars.testing

from pdqn.runner import run
from tests.conftest import tiny_config


def test_same_config_and_seed_are_bitwise_identical(tmp_path):
    outputs = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        run_dir.mkdir()
        run(tiny_config(alg="pdqn", num_seeds=2), run_dir, log=io.StringIO())
        outputs.append(run_dir)
    a, b = outputs
    polars.testing.assert_frame_equal(
        pl.read_parquet(a / "metrics.parquet"), pl.read_parquet(b / "metrics.parquet"), check_exact=True
    )
    # The saved policies (Q-networks and dynamics models of both seeds) are byte-identical,
    # and so are the final checkpoints (optimiser states, environment states, keys).
    assert (a / "policy.eqx").read_bytes() == (b / "policy.eqx").read_bytes()
    final = sorted((a / "checkpoints").glob("*.eqx"))[-1].name
    assert (a / "checkpoints" / final).read_bytes() == (b / "checkpoints" / final).read_bytes()

