"""Exact resume: a CLI run killed (SIGKILL) or stopped (SIGINT/SIGTERM) at any moment, also while compiling or
evaluating, then resumed, ends bitwise identical to an uninterrupted run (metrics.parquet, policy and final
checkpoint). A stop is answered at once, without waiting for the compile or the evaluation in flight, with one line."""

import io
import json
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import polars.testing
import pytest

from pdqn import checkpoint
from pdqn.config import CheckpointConfig
from pdqn.runner import run
from tests.conftest import REPO, cli_env, tiny_config, tiny_planning_flags

UPDATES = 40
ARGS = [
    "--alg", "pdqn", "--num-seeds", "2", "--total-timesteps", str(64 * UPDATES), "--log-every", "1",
    "--eval-every", "0.25", "--checkpoint.every", "4", "--checkpoint.keep", "3",
    "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4", "--pqn.num-epochs", "1",
    "--eval-envs", "4", *tiny_planning_flags(), "--track.off", "--no-episode-gif",
]
STOP_SECONDS = 60.0
"""The longest a stop request may take to end the process: a bound that only catches a hang, generous enough never
to trip on a loaded machine. That the stop is answered at once, without waiting for the compile or the evaluation
in flight, is checked by what the run left behind: no "compiled in" line, a checkpoint without the evaluation."""


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


class CliRun:
    """A CLI run in the background whose stderr lines are collected as they come (a thread reads them), so that
    every wait on it has a deadline even while it prints nothing; leaving the ``with`` block kills it if it still
    runs (a failed test leaves no process behind)."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(
            cli(*args), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)  # the end of its output

    def __enter__(self) -> "CliRun":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def read_until(self, text: str, timeout: float = 240) -> None:
        """Collect stderr lines until one contains ``text`` (fail if none does within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {text!r} line within {timeout} s: {self.lines}")
            if line is None:
                pytest.fail(f"the run ended (status {self.proc.wait()}) before a {text!r} line: {self.lines}")
            self.lines.append(line)
            if text in line:
                return

    def wait(self, timeout: float) -> None:
        """Wait for the run to end (fail if it has not within ``timeout`` seconds), then collect its last lines."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the run did not end within {timeout} s: {self.lines}")
        self._reader.join(timeout=30)
        while not self._queue.empty() and (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)

    def stop(self, send: signal.Signals) -> float:
        """Send ``send``; how many seconds the run took to end."""
        sent = time.monotonic()
        self.proc.send_signal(send)
        self.wait(timeout=STOP_SECONDS)
        return time.monotonic() - sent

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def start_and_interrupt(run_dir: Path, send: signal.Signals, rng: random.Random) -> CliRun:
    """Start a CLI run; once its first checkpoint exists, wait a random moment and send ``send``; the ended run."""
    with CliRun(["--run-dir", str(run_dir), *ARGS], cli_env()) as started:
        deadline = time.monotonic() + 240
        while not checkpoint.list_checkpoints(run_dir) and started.proc.poll() is None:
            assert time.monotonic() < deadline, f"no checkpoint within 240 s: {started.lines}"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        started.proc.send_signal(send)
        started.wait(timeout=120)
    return started


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli("--resume", str(run_dir)), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300
    )


def test_sigkill_then_resume_matches_uninterrupted(reference, tmp_path):
    rng = random.Random()
    run_dir = tmp_path / "run"
    killed = start_and_interrupt(run_dir, signal.SIGKILL, rng).proc
    if killed.returncode == 0:
        pytest.skip("the run finished before the kill (machine too fast for the kill window)")
    assert killed.returncode == -signal.SIGKILL
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
    if stopped.proc.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert stopped.proc.returncode == 143, stopped.stderr
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
def test_sigint_before_training_stops_at_once_and_resume_finishes_the_run(reference, tmp_path, line, saved):
    run_dir = tmp_path / "run"
    uncached = {k: v for k, v in cli_env().items() if k != "JAX_COMPILATION_CACHE_DIR"}  # a compile of seconds
    with CliRun(["--run-dir", str(run_dir), *ARGS], uncached) as started:
        started.read_until(line)
        seconds = started.stop(signal.SIGINT)
    lines = started.lines
    assert started.proc.returncode == 130 and seconds < STOP_SECONDS, (started.proc.returncode, seconds, lines)
    assert not any("compiled in" in line for line in lines), "the signal came too late: after compiling"
    assert_one_stop_line(lines, "SIGINT")
    if saved is not None:
        assert [update for update, _ in checkpoint.list_checkpoints(run_dir)] == [saved]
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert_same_run(run_dir, reference)


@pytest.mark.parametrize("second_after", [None, "stopped by SIGINT"], ids=["while-stopping", "after-the-stop-line"])
def test_a_second_sigint_stops_at_once_with_one_line_and_resume_finishes_the_run(reference, tmp_path, second_after):
    run_dir = tmp_path / "run"
    with CliRun(["--run-dir", str(run_dir), *ARGS], cli_env()) as started:
        started.read_until("compiled in")
        started.proc.send_signal(signal.SIGINT)
        if second_after is None:
            time.sleep(0.05)  # the second arrives while the first is being answered
        else:
            started.read_until(second_after)  # or while the process ends
        if started.proc.poll() is None:
            started.proc.send_signal(signal.SIGINT)
        started.wait(timeout=STOP_SECONDS)
    assert started.proc.returncode == 130, started.lines
    assert not any("Traceback" in line for line in started.lines), started.lines
    second = [line for line in started.lines if "stopped at once by a second SIGINT" in line]
    first = [line for line in started.lines if "SIGINT" in line and line not in second]
    assert len(second) <= 1 and len(first) <= 1, started.lines  # at most one line for each signal
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
    reference_dir.mkdir()
    # The uninterrupted run of SLOW_EVAL's config, in-process: the same program as the CLI's runs below, which
    # then read it from the persistent compilation cache.
    slow_eval = tiny_config(env="freeway", total_timesteps=64 * EVAL_UPDATES, eval_envs=16, episode_gif=False)
    run(slow_eval, reference_dir, log=io.StringIO())
    with CliRun(["--run-dir", str(run_dir), *SLOW_EVAL], cli_env()) as started:
        started.read_until("compiled in")
        # The first evaluation (after update 3) starts as soon as update 3's rows are on disk.
        deadline = time.monotonic() + 120
        while not evaluation_started(run_dir, EVAL_UPDATES // 2) and started.proc.poll() is None:
            assert time.monotonic() < deadline, started.lines
            time.sleep(0.01)
        seconds = started.stop(signal.SIGTERM)
    lines = started.lines
    assert started.proc.returncode == 143 and seconds < STOP_SECONDS, (started.proc.returncode, seconds, lines)
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
