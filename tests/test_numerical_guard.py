"""A non-finite loss or parameter stops the run with one clear line, keeping the last good checkpoint."""

import io
from contextlib import redirect_stderr

import numpy as np
import polars as pl
import pytest

from pdqn import checkpoint, runner
from pdqn.experiments import minatar
from pdqn.runner import NonFiniteError, non_finite, run
from pdqn.train import Trainer
from tests.conftest import tiny_config

BLOW_UP = [
    "--total-timesteps", "384", "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4",
    "--eval-envs", "4", "--eval-every", "0.5", "--track.off", "--pqn.lr", "1e30", "--pqn.max-grad-norm", "1e30",
    "--pqn.no-lr-linear-decay",
]


def test_huge_learning_rate_stops_with_exit_3(tmp_path):
    """The command's outcome, in-process (its progress lines go to the test's stderr, its verdict is captured)."""
    run_dir = tmp_path / "run"
    err = io.StringIO()
    with redirect_stderr(err):
        code = minatar.main(["--run-dir", str(run_dir), *BLOW_UP])
    stderr = err.getvalue()
    assert code == 3, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: non-finite ") and ("at update" in last or "after updates" in last), last
    assert "last good checkpoint at update" in last
    assert "Traceback" not in stderr
    assert not (run_dir / "summary.json").exists() and not (run_dir / "policy.eqx").exists()
    saved = checkpoint.list_checkpoints(run_dir)
    assert saved, "the last good state is checkpointed"
    # Every metric row on disk is finite and covered by the checkpoint.
    rows = pl.read_parquet(run_dir / "metrics.parquet") if (run_dir / "metrics.parquet").exists() else None
    if rows is not None:
        assert rows["update"].max() <= saved[-1][0]
        assert np.isfinite(rows["td_loss"].to_numpy()).all()


def test_injected_nan_names_update_and_metric(tmp_path, monkeypatch):
    """A NaN injected into the third chunk's td_loss: stop there, checkpoint at update 2."""
    real_non_finite = runner.non_finite

    def inject(metrics, values, n, first_update, seeds):
        if first_update == 2:
            values = dict(values, td_loss=np.where(np.arange(values["td_loss"].shape[1]) == 0, np.nan, 0.0)[None]
                          .repeat(values["td_loss"].shape[0], 0))
        return real_non_finite(metrics, values, n, first_update, seeds)

    monkeypatch.setattr(runner, "non_finite", inject)
    config = tiny_config(log_every=1)
    with pytest.raises(NonFiniteError, match=r"non-finite td_loss at update 3 \(seed 0\).*update 2"):
        run(config, tmp_path, log=io.StringIO())
    assert checkpoint.list_checkpoints(tmp_path)[-1][0] == 2
    assert pl.read_parquet(tmp_path / "metrics.parquet")["update"].max() == 2
    assert not (tmp_path / "summary.json").exists()


def test_planning_losses_only_count_while_planning_is_active():
    declared = Trainer(tiny_config(alg="pdqn", dyna=dict(planner="dyna"))).metrics
    values = {m.name: np.zeros((1, 3)) for m in declared}
    values |= {"imagined_td_loss": np.full((1, 3), np.nan), "imagined_mean_q": np.full((1, 3), np.nan)}
    assert non_finite(declared, values, 3, 0, [7]) is None
    values["planning_active"] = np.array([[0.0, 1.0, 1.0]])
    assert non_finite(declared, values, 3, 10, [7]) == "imagined_td_loss at update 12 (seed 7)"
    values["model_loss"] = np.array([[0.0, 0.0, np.inf]])
    assert non_finite(declared, values, 2, 10, [7]) == "imagined_td_loss at update 12 (seed 7)"


def test_the_guard_watches_exactly_the_declared_losses():
    """A guarded metric is named by its declaration: every loss-like metric of PDQN is watched."""
    guarded = {m.name for m in Trainer(tiny_config(alg="pdqn")).metrics if m.guarded}
    assert guarded == {"td_loss", "mean_q", "model_loss", "counterfactual_td_loss", "counterfactual_mean_q"}
    guarded = {m.name for m in Trainer(tiny_config(alg="pdqn", dyna=dict(planner="dyna"))).metrics if m.guarded}
    assert guarded == {"td_loss", "mean_q", "model_loss", "imagined_td_loss", "imagined_mean_q"}
    assert {m.name for m in Trainer(tiny_config(alg="pqn")).metrics if m.guarded} == {"td_loss", "mean_q"}
