"""Sweeps as job arrays through submitit, tested with its local executor (``--launcher submitit-local``): one job
is preempted (SIGUSR2, as SLURM sends before a time limit) and requeued, another is killed outright; running the
same command again submits only the killed point, which resumes from its checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from pdqn import checkpoint
from pdqn.experiments import sweep as sweep_mod
from pdqn.rundir import config_dict
from tests.conftest import REPO, cli_env, stop_process_group

pytest.importorskip("submitit")

UPDATES = 24
FLAGS = [
    "--name", "jobs", "--grid", "pqn.gamma=0.9,0.99", "--launcher", "submitit-local", "--wait", "--track.off",
    "--total-timesteps", str(64 * UPDATES), "--log-every", "1", "--checkpoint.every", "4", "--eval-every", "0.5",
    "--eval-envs", "4", "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4",
    "--pqn.num-epochs", "1",
]  # fmt: skip
DRIVER_SECONDS = 240


def driver(out: Path) -> subprocess.Popen:
    """The sweep command in its own session: stopping the group stops the local jobs it started too."""
    return subprocess.Popen(
        [sys.executable, "-m", "pdqn.experiments.sweep", "--out", str(out), *FLAGS], cwd=REPO, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def training_pid(run_dir: Path) -> int | None:
    """The process training the point, once it has saved a checkpoint (from the point's record)."""
    try:
        record = json.loads((run_dir / sweep_mod.POINT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if record.get("status") == "running" and checkpoint.list_checkpoints(run_dir):
        return record["pid"]
    return None


def job_logs(out: Path) -> str:
    return "\n".join(path.read_text() for path in sorted((out / "jobs" / "submitit").glob("*_log.*")))


def test_preempted_job_is_requeued_and_killed_job_resumes_when_resubmitted(tmp_path):
    preempted, killed = (tmp_path / "jobs" / name for name in ("breakout-pqn.gamma=0.9", "breakout-pqn.gamma=0.99"))
    proc = driver(tmp_path)
    try:
        signals = {preempted: signal.SIGUSR2, killed: signal.SIGKILL}
        deadline = time.monotonic() + DRIVER_SECONDS
        while signals and proc.poll() is None and time.monotonic() < deadline:
            for run_dir, signum in list(signals.items()):
                pid = training_pid(run_dir)
                if pid is not None:
                    os.kill(pid, signum)
                    del signals[run_dir]
            time.sleep(0.01)
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        stop_process_group(proc, timeout=5)
    assert not signals, f"the jobs never ran: {err}"
    assert proc.returncode == 1, err
    assert "submitted 2 points" in err and "run the same command again to resume it" in err
    logs = job_logs(tmp_path)
    assert "stopped by SIGUSR2" in logs and "Requeued job" in logs  # the run checkpointed, submitit requeued it
    table = pl.read_parquet(tmp_path / "jobs" / sweep_mod.POINTS_FILE)
    assert table["status"].to_list() == ["done", "running"]  # the killed job never said otherwise

    saved = checkpoint.list_checkpoints(killed)[-1][0]
    proc = driver(tmp_path)
    try:
        _, err = proc.communicate(timeout=DRIVER_SECONDS)
    finally:
        stop_process_group(proc, timeout=5)
    assert proc.returncode == 0, err
    assert "submitted 1 points" in err and "2 done of 2 points" in err
    assert f"resuming from update {saved}/{UPDATES}" in job_logs(tmp_path)
    for run_dir in (preempted, killed):
        rows = pl.read_parquet(run_dir / "metrics.parquet")
        assert rows["update"].to_list() == list(range(1, UPDATES + 1)) and (run_dir / "summary.json").exists()


def test_slurm_submission_asks_for_what_the_flags_say(tmp_path, monkeypatch, capsys):
    """Without a cluster: stand-ins for sbatch (keeps the script it is given) and srun; the array's script carries
    the --slurm.* resources, submitit's SIGUSR2 warning and the setup commands, and a finished point is not sent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/script.sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    flags = ["--out", str(tmp_path), *FLAGS]
    flags[flags.index("submitit-local")] = "submitit"
    flags.remove("--wait")
    spec = sweep_mod.parse_command(flags)[1]
    done = spec.points()[0]
    done.run_dir.mkdir(parents=True)
    (done.run_dir / "summary.json").write_text(json.dumps({"config": config_dict(spec.config(done))}))
    code = sweep_mod.main([*flags, "--slurm.partition", "gpu", "--slurm.time", "240", "--slurm.gpus-per-node", "1",
                           "--slurm.cpus-per-task", "8", "--slurm.setup", "module load cuda"])  # fmt: skip
    assert code == 0
    assert "submitted 1 points as job array 4242" in capsys.readouterr().err
    script = (tmp_path / "script.sh").read_text()
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=240", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --signal=USR2@90", "#SBATCH --job-name=pdqn-sweep-jobs",
                 "module load cuda"):  # fmt: skip
        assert line in script, script


def test_without_slurm_the_launcher_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    flags = ["--out", str(tmp_path), *FLAGS]
    flags[flags.index("submitit-local")] = "submitit"
    with pytest.raises(SystemExit) as exit_:
        sweep_mod.main(flags)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: --launcher submitit needs SLURM")
