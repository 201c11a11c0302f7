"""Exact resume: a CLI run killed (SIGKILL) or stopped (SIGINT/SIGTERM) at any moment, also while compiling or
evaluating, then resumed, ends bitwise identical to an uninterrupted run (metrics.parquet, policy and final
checkpoint). A stop is answered within seconds with one line."""

import io
import json
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
    "--no-episode-gif",
]
STOP_SECONDS = 10.0
"""The longest a stop request may take to end the process."""


def config_for(run_dir: Path):
    return tiny_config(
        alg="pdqn", num_seeds=2, total_timesteps=64 * UPDATES, log_every=1, eval_every=0.25,
        checkpoint=CheckpointConfig(every=4, keep=3), run_dir=run_dir, episode_gif=False,
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


# ---- stopping while compiling or evaluating -----------------------------------------------


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        cli(*args), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
    )


def read_until(proc: subprocess.Popen, text: str, lines: list[str], timeout: float = 240) -> None:
    """Read the run's stderr into ``lines`` until a line contains ``text`` (fail if it never comes)."""
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        if text in line:
            return
        assert time.monotonic() < deadline, f"no {text!r} line within {timeout} s: {lines}"
    pytest.fail(f"the run ended (status {proc.wait()}) before a {text!r} line: {lines}")


def stop_and_time(proc: subprocess.Popen, send: signal.Signals, lines: list[str]) -> float:
    """Send ``send`` and return how many seconds the process took to end (its remaining stderr into ``lines``)."""
    sent = time.monotonic()
    proc.send_signal(send)
    try:
        _, rest = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{send.name} did not stop the run within 60 s")
    lines += rest.splitlines()
    return time.monotonic() - sent


def assert_one_stop_line(lines: list[str], signame: str) -> None:
    """The run's last line names the stop and how to resume; no other line is an error, a warning or a
    traceback (the lines before it are the run's usual ones)."""
    assert f"stopped by {signame}" in lines[-1] and "--resume" in lines[-1], lines
    unusual = [line for line in lines[:-1] if any(word in line.lower() for word in ("error", "warning", "stopped"))]
    assert not unusual and not any("Traceback" in line for line in lines), lines


@pytest.mark.parametrize(
    "line, saved",
    [
        # Right after the run says where it writes: while it builds its initial state (no checkpoint yet:
        # --resume starts it again from the beginning).
        ("writing to", None),
        # Right after the env card, printed when the initial state exists and compiling begins.
        ("] env: ", 0),
    ],
    ids=["starting", "compiling"],
)
def test_sigint_before_training_stops_within_seconds_and_resume_finishes_the_run(reference, tmp_path, line, saved):
    run_dir = tmp_path / "run"
    uncached = {k: v for k, v in cli_env().items() if k != "JAX_COMPILATION_CACHE_DIR"}  # a compile of seconds
    proc, lines = start(["--run-dir", str(run_dir), *ARGS], uncached), []
    read_until(proc, line, lines)
    seconds = stop_and_time(proc, signal.SIGINT, lines)
    assert proc.returncode == 130 and seconds < STOP_SECONDS, (proc.returncode, seconds, lines)
    assert not any("compiled in" in line for line in lines), "the signal came too late: after compiling"
    assert_one_stop_line(lines, "SIGINT")
    if saved is not None:
        assert [update for update, _ in checkpoint.list_checkpoints(run_dir)] == [saved]
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference)


EVAL_UPDATES = 6
SLOW_EVAL = [
    # Freeway's episodes last its 2500-step limit whatever the policy does: each greedy evaluation takes
    # seconds while an update of this tiny config takes milliseconds.
    "--env", "freeway", "--total-timesteps", str(64 * EVAL_UPDATES), "--eval-every", "0.5", "--eval-envs", "16",
    "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4", "--pqn.num-epochs", "1",
    "--track.off", "--no-episode-gif",
]


def test_sigterm_during_a_greedy_evaluation_then_resume_matches_an_uninterrupted_run(tmp_path):
    reference_dir, run_dir = tmp_path / "reference", tmp_path / "run"
    done = subprocess.run(cli("--run-dir", str(reference_dir), *SLOW_EVAL), cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    proc, lines = start(["--run-dir", str(run_dir), *SLOW_EVAL], cli_env()), []
    read_until(proc, "compiled in", lines)
    # The first evaluation (after update 3) starts as soon as update 3's rows are on disk.
    deadline = time.monotonic() + 120
    while not evaluation_started(run_dir, EVAL_UPDATES // 2) and proc.poll() is None:
        assert time.monotonic() < deadline, lines
        time.sleep(0.01)
    seconds = stop_and_time(proc, signal.SIGTERM, lines)
    assert proc.returncode == 143 and seconds < STOP_SECONDS, (proc.returncode, seconds, lines)
    assert_one_stop_line(lines, "SIGTERM")
    # Stopped inside the evaluation: the checkpoint holds update 3 and no evaluation of it.
    update, meta = checkpoint.list_checkpoints(run_dir)[-1]
    assert update == EVAL_UPDATES // 2 and json.loads(meta.read_text())["evaluated"] == 0, lines
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    polars.testing.assert_frame_equal(
        pl.read_parquet(run_dir / "metrics.parquet"), pl.read_parquet(reference_dir / "metrics.parquet"),
        check_exact=True,
    )  # fmt: skip


def evaluation_started(run_dir: Path, update: int) -> bool:
    try:
        return pl.read_parquet(run_dir / "metrics.parquet")["update"].max() == update
    except Exception:  # not written yet
        return False
