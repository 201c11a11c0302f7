"""Multi-process runs (``jax.distributed``) on one machine: two CPU processes, gloo collectives, a coordinator on
127.0.0.1. Two processes with one seed each give the run of one process with both seeds (floats to rounding),
stop together when one of them gets a signal, and their checkpoints resume on two processes or on one."""

import dataclasses
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import jax
import numpy as np
import polars as pl
import polars.testing
import pytest

from pdqn import checkpoint
from pdqn.config import CheckpointConfig, DistributedConfig
from pdqn.devices import DistributedError, resolve_distributed
from pdqn.experiments import minatar as minatar_entry
from pdqn.rundir import read_config
from pdqn.runner import run
from tests.conftest import REPO, cli_env, stop_process_group, tiny_config

UPDATES = 24
ARGS = [
    "--num-seeds", "2", "--total-timesteps", str(64 * UPDATES), "--log-every", "1", "--checkpoint.every", "4",
    "--checkpoint.keep", "6", "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4",
    "--pqn.num-epochs", "1", "--eval-envs", "4", "--eval-every", "0.5", "--track.off",
]  # fmt: skip
FLOAT_NOISE = ("td_loss", "mean_q")
"""Like sharding over local devices (tests/test_multidevice.py): each device runs the vmapped step on 1 seed
instead of 2, and XLA's CPU code sums in another order, so these may differ in the last float32 bits."""
PROCESS_SECONDS = 150
HANG_SECONDS = 60
"""A bound that only catches a hang: a process that should give up within seconds took longer than this."""


def config_for(run_dir: Path):
    return tiny_config(
        num_seeds=2, total_timesteps=64 * UPDATES, log_every=1, checkpoint=CheckpointConfig(every=4, keep=6),
        run_dir=run_dir,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def minatar(*args: str) -> list[str]:
    return [sys.executable, "-m", "pdqn.experiments.minatar", *args]


def start_processes(args: list[str], count: int = 2) -> list[subprocess.Popen]:
    """``count`` processes of one run (their own process groups, so a failure can stop all they started)."""
    port = free_port()
    return [
        subprocess.Popen(
            minatar(*args, "--distributed.coordinator", f"127.0.0.1:{port}", "--distributed.num-processes",
                    str(count), "--distributed.process-id", str(i)),
            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        for i in range(count)
    ]


def finish(procs: list[subprocess.Popen], timeout: float = PROCESS_SECONDS) -> list[tuple[int, str]]:
    """Wait for every process (hard timeout), then make sure none is left; ``(exit code, stderr)`` of each."""
    deadline = time.monotonic() + timeout
    results = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((proc.returncode, err))
    finally:
        for proc in procs:
            stop_process_group(proc, timeout=5)
    return results


def assert_same_rows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    exact = [c for c in want.columns if c not in FLOAT_NOISE]
    polars.testing.assert_frame_equal(got.select(exact), want.select(exact), check_exact=True)
    polars.testing.assert_frame_equal(got, want, check_exact=False, rel_tol=1e-5, abs_tol=1e-6)


def assert_same_arrays(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """One process, both seeds (one device)."""
    run_dir = tmp_path_factory.mktemp("one-process")
    run(config_for(run_dir), run_dir, log=io.StringIO())
    return run_dir


@dataclasses.dataclass
class TwoProcessRun:
    run_dir: Path
    first: list[tuple[int, str]]
    """Exit code and stderr of each process of the first launch (SIGTERM to process 1 after a checkpoint)."""
    resumed: list[tuple[int, str]] | None
    """The same of the launch that resumed it (None: the first one finished before the signal)."""


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> TwoProcessRun:
    """A two-process run (one seed on each process's CPU device), stopped by a SIGTERM to process 1 only once its
    first checkpoint exists, then resumed by two processes."""
    run_dir = tmp_path_factory.mktemp("two-processes") / "run"
    procs = start_processes(["--run-dir", str(run_dir), *ARGS])
    try:
        deadline = time.monotonic() + PROCESS_SECONDS
        while not checkpoint.list_checkpoints(run_dir) and time.monotonic() < deadline:
            if any(proc.poll() is not None for proc in procs):
                break
            time.sleep(0.01)
        procs[1].send_signal(signal.SIGTERM)
    finally:
        first = finish(procs)
    resumed = None
    if [code for code, _ in first] == [143, 143]:
        resumed = finish(start_processes(["--resume", str(run_dir)]))
    return TwoProcessRun(run_dir, first, resumed)


def test_two_processes_match_one_process_with_both_seeds(two_processes, reference):
    run = two_processes
    for code, err in run.resumed or run.first:
        assert code == 0, err
    first, second = (err for _, err in run.first)
    assert "note: process 0 of 2" in first and "note: process 1 of 2" in second
    assert "note: 2 seeds sharded over 2 devices of 2 processes" in first
    run_dir = run.run_dir
    assert_same_rows(pl.read_parquet(run_dir / "metrics.parquet"), pl.read_parquet(reference / "metrics.parquet"))
    summary, want = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    assert summary["final_target_return"] == want["final_target_return"]
    assert summary["final_behaviour_return"] == want["final_behaviour_return"]
    assert_same_arrays(checkpoint.load_policy(run_dir)[1], checkpoint.load_policy(reference)[1])


def test_a_signal_to_one_process_stops_both_at_the_same_update(two_processes):
    """Process 0 got no signal, yet both checkpoint and stop at one update; ``--resume`` with the distributed
    flags continues on two processes (its outcome is checked above)."""
    run = two_processes
    if run.resumed is None:
        assert [code for code, _ in run.first] == [0, 0], run.first
        pytest.skip("the run finished before the signal")
    stopped = [err.strip().splitlines()[-1] for _, err in run.first]
    assert all("stopped by SIGTERM after update" in line for line in stopped), stopped
    updates = {line.split("after update ")[1].split(";")[0] for line in stopped}
    assert len(updates) == 1
    saved = int(updates.pop())
    assert 0 < saved < UPDATES
    assert f"resuming from update {saved}/{UPDATES}" in run.resumed[0][1]


def test_checkpoint_of_two_processes_resumes_in_one(two_processes, reference, tmp_path):
    """Process 0's checkpoints hold the states of both processes: one process continues the run."""
    run_dir = tmp_path / "run"
    shutil.copytree(two_processes.run_dir, run_dir)
    for name in ("summary.json", "policy.eqx", "policy.json"):
        (run_dir / name).unlink()
    for update, meta in checkpoint.list_checkpoints(run_dir):
        if update > 8:
            meta.unlink()
    log = io.StringIO()
    run(read_config(run_dir), run_dir, log=log, resume=True)
    assert "resuming from update 8/" in log.getvalue()
    assert_same_rows(pl.read_parquet(run_dir / "metrics.parquet"), pl.read_parquet(reference / "metrics.parquet"))
    assert_same_arrays(checkpoint.load_policy(run_dir)[1], checkpoint.load_policy(reference)[1])


def error_line(code: int | str | None, stderr: str) -> str:
    """The one ``error:`` line of a command that exited 2."""
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(
    "args, env, message",
    [
        ([], {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "5"},
         "error: process id 5 (JAX_PROCESS_ID) is invalid: must be in 0..1 for 2 processes"),
        (["--distributed.coordinator", "127.0.0.1:1234", "--distributed.num-processes", "2",
          "--distributed.process-id", "0", "--num-seeds", "3"], {},
         "error: num_seeds=3 does not divide over 2 processes; use a multiple of 2 seeds"),
        (["--distributed.coordinator", "127.0.0.1:1234"], {},
         "missing: --distributed.num-processes, --distributed.process-id"),
        (["--distributed.coordinator", "nohost", "--distributed.num-processes", "2", "--distributed.process-id", "1"],
         {}, "distributed.coordinator='nohost' is invalid: must be HOST:PORT"),
        ([], {"JAX_NUM_PROCESSES": "two"}, "error: JAX_NUM_PROCESSES='two' is invalid: must be an integer"),
    ],
)  # fmt: skip
def test_bad_distributed_settings_are_one_error_line(args, env, message, tmp_path, monkeypatch, no_training):
    """In-process (no_training: had the settings been accepted, the test fails instead of waiting for processes)."""
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    run_dir = tmp_path / "run"
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        minatar_entry.main(["--run-dir", str(run_dir), *ARGS[2:], *args])
    assert message in error_line(exit_.value.code, err.getvalue())
    assert not run_dir.exists()


@pytest.mark.parametrize("process", [0, 1])
def test_a_process_alone_is_one_error_line_after_the_timeout(tmp_path, process):
    """Process 1 finds no coordinator; process 0 serves one that no other process reaches."""
    args = ["--distributed.coordinator", f"127.0.0.1:{free_port()}", "--distributed.num-processes", "2",
            "--distributed.process-id", str(process), "--distributed.timeout", "2"]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        minatar("--run-dir", str(tmp_path / "run"), *ARGS, *args), cwd=REPO, env=cli_env(), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    line = error_line(result.returncode, result.stderr)
    assert f"process {process} of 2: not every process reached the coordinator 127.0.0.1:" in line and "within 2s" in line
    # Catches waiting for JAX's own start-up timeout (minutes) instead of --distributed.timeout; generous beyond the
    # 2 s so that starting Python and JAX on a loaded machine never trips it.
    assert time.monotonic() - started < HANG_SECONDS


def test_the_entry_point_parses_before_jax_starts():
    """jax.distributed.initialize() must come first: importing the entry point and parsing must not start JAX
    (initialize refuses once JAX's backend has started; here it starts a one-process run of its own)."""
    code = (
        "import jax\n"
        "from pdqn.experiments import minatar\n"
        "minatar.parse_args(['--num-seeds', '2', '--distributed.num-processes', '2'])\n"
        f"jax.distributed.initialize('127.0.0.1:{free_port()}', num_processes=1, process_id=0)\n"
        "jax.distributed.shutdown()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_settings_come_from_flags_then_environment_then_the_cluster():
    flags = DistributedConfig()
    assert resolve_distributed(flags, {}) is None
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    launch = resolve_distributed(flags, env)
    assert launch is not None and (launch.coordinator, launch.num_processes, launch.process_id) == ("10.0.0.1:1234", 4, 3)
    launch = resolve_distributed(DistributedConfig(process_id=1, timeout=5), env)
    assert launch is not None and (launch.process_id, launch.timeout) == (1, 5)
    assert resolve_distributed(DistributedConfig(coordinator="h:1", num_processes=1, process_id=0), {}) is None
    slurm = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
             "SLURM_LOCALID": "0"}  # fmt: skip
    launch = resolve_distributed(flags, slurm)
    assert launch is not None and launch.coordinator is None and (launch.num_processes, launch.process_id) == (2, 1)
    assert launch.source == "SLURM"
    assert resolve_distributed(flags, slurm | {"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None  # a sweep's array task
    ompi = {"OMPI_MCA_orte_hnp_uri": "1.0;tcp://10.0.0.1:1", "OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "2"}
    launch = resolve_distributed(flags, ompi)
    assert launch is not None and (launch.num_processes, launch.process_id, launch.source) == (3, 2, "Open MPI")
    for bad in ({"JAX_NUM_PROCESSES": "2"}, {"JAX_PROCESS_ID": "0"}, env | {"JAX_PROCESS_ID": "4"}):
        with pytest.raises(DistributedError):
            resolve_distributed(flags, bad)


def test_no_process_is_left_behind():
    """Every process the tests above started has ended (they run in their own sessions, stopped in ``finish``)."""
    mine = str(REPO)
    leftovers = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if b"pdqn.experiments.minatar" in cmdline and b"--distributed.coordinator" in cmdline and cwd == mine:
            leftovers.append(pid)
    assert not leftovers
