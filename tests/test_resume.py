"""Exact resume: a CLI run killed (SIGKILL) or stopped (SIGTERM) after a checkpoint, then resumed,
ends bitwise identical to an uninterrupted run (metrics.parquet, policy and final checkpoint)."""

import io
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import polars.testing
import pytest

from pdqn import checkpoint
from pdqn.config import CheckpointConfig
from pdqn.runner import run
from tests.conftest import REPO, cli_env, tiny_config

UPDATES = 40
ARGS = [
    "--alg", "pdqn", "--num-seeds", "2", "--total-timesteps", str(64 * UPDATES), "--log-every", "1",
    "--eval-every", "0.25", "--checkpoint.every", "4", "--checkpoint.keep", "3",
    "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4", "--pqn.num-epochs", "1",
    "--eval-envs", "4", "--dyna.num-rollouts", "16", "--dyna.horizon", "2", "--dyna.plan-minibatches", "2",
    "--dyna.model-minibatches", "2", "--dyna.planning-delay", "0", "--dyna.model-hidden", "32", "--track.off",
]


def config_for(run_dir: Path):
    return tiny_config(
        alg="pdqn", num_seeds=2, total_timesteps=64 * UPDATES, log_every=1, eval_every=0.25,
        checkpoint=CheckpointConfig(every=4, keep=3), run_dir=run_dir,
    )


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pdqn.experiments.minatar", *args]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the same config, in-process."""
    run_dir = tmp_path_factory.mktemp("reference")
    run(config_for(run_dir), run_dir, log=io.StringIO())
    return run_dir


def final_checkpoint(run_dir: Path) -> bytes:
    update, meta = checkpoint.list_checkpoints(run_dir)[-1]
    assert update == UPDATES
    return meta.with_suffix(".eqx").read_bytes()


def assert_same_run(run_dir: Path, reference: Path) -> None:
    polars.testing.assert_frame_equal(
        pl.read_parquet(run_dir / "metrics.parquet"), pl.read_parquet(reference / "metrics.parquet"), check_exact=True
    )
    assert (run_dir / "policy.eqx").read_bytes() == (reference / "policy.eqx").read_bytes()
    assert final_checkpoint(run_dir) == final_checkpoint(reference)
    assert (run_dir / "summary.json").exists()


def start_and_interrupt(run_dir: Path, send: signal.Signals, rng: random.Random) -> subprocess.CompletedProcess:
    """Start a CLI run; once its first checkpoint exists, wait a random moment and send ``send``."""
    proc = subprocess.Popen(
        cli("--run-dir", str(run_dir), *ARGS), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 240
    while not checkpoint.list_checkpoints(run_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.3))
    proc.send_signal(send)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli("--resume", str(run_dir)), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300
    )


def test_sigkill_then_resume_matches_uninterrupted(reference, tmp_path):
    rng = random.Random()
    run_dir = tmp_path / "run"
    killed = start_and_interrupt(run_dir, signal.SIGKILL, rng)
    if killed.returncode == 0:
        pytest.skip("the run finished before the kill (machine too fast for the kill window)")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (run_dir / "summary.json").exists()
    saved = checkpoint.list_checkpoints(run_dir)[-1][0]
    assert 0 < saved < UPDATES
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert f"resuming from update {saved}/{UPDATES}" in result.stderr
    assert_same_run(run_dir, reference)


def test_sigterm_saves_checkpoint_then_resume_matches(reference, tmp_path):
    run_dir = tmp_path / "run"
    stopped = start_and_interrupt(run_dir, signal.SIGTERM, random.Random())
    if stopped.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert stopped.returncode == 143, stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert "stopped by SIGTERM" in last and "--resume" in last and "Traceback" not in stopped.stderr
    assert not (run_dir / "summary.json").exists()
    # The checkpoint is taken at the chunk where the signal was seen: it covers every row on disk.
    saved = checkpoint.list_checkpoints(run_dir)[-1][0]
    assert pl.read_parquet(run_dir / "metrics.parquet")["update"].max() == saved
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference)


def test_resume_truncates_rows_beyond_checkpoint(reference, tmp_path):
    """Rows written after the newest checkpoint (a kill between the two writes) are dropped."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    (run_dir / "summary.json").unlink()
    (run_dir / "policy.eqx").unlink()
    found = checkpoint.list_checkpoints(run_dir)
    for _, meta in found[-2:]:  # keep checkpoints up to update 32; metrics hold 40 updates
        meta.unlink()
    saved = checkpoint.list_checkpoints(run_dir)[-1][0]
    assert saved < UPDATES
    run(config_for(reference), run_dir, log=io.StringIO(), resume=True)
    assert_same_run(run_dir, reference)
