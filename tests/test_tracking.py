"""Aim tracking: one run per seed with hparams, contexts and env-step steps; resume; failures."""

import dataclasses
import gc
import io
import json
import socket
import subprocess
import sys
import time
from contextlib import redirect_stderr
from pathlib import Path

import aim
import numpy as np
import polars as pl
import pytest
from conftest import stop_process_group, tiny_config

from pdqn.config import TrackConfig
from pdqn.experiments import minatar
from pdqn.hooks import RunInfo
from pdqn.metrics import TARGET_RETURN
from pdqn.rundir import AIM_RUNS_FILE, METRICS_FILE
from pdqn.runner import run
from pdqn.tracking import AimHooks, code_version, index_runs, make_hooks, metric_arrays
from pdqn.train import Trainer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port}")


def query(repo: Path, expression: str) -> list:
    """Runs matching an Aim query, read the way the UI reads them (through the index)."""
    found = aim.Repo.from_path(str(repo)).query_runs(expression, report_mode=0)
    return [item.run for item in found.iter_runs()]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A tiny 2-seed PDQN run tracked into a repository that does not exist yet."""
    root = tmp_path_factory.mktemp("tracked")
    repo = root / "nested" / "aim-repo"
    config = tiny_config(alg="pdqn", num_seeds=2, seed=3, track=TrackConfig(repo=str(repo)))
    run_dir = root / "run"
    run_dir.mkdir()
    log = io.StringIO()
    run(config, run_dir, log=log, hooks=make_hooks(config, log))
    assert "warning" not in log.getvalue()
    return config, repo, run_dir


def test_one_aim_run_per_seed_with_hparams_and_contexts(tracked):
    config, repo, run_dir = tracked
    runs = query(repo, "run.hparams.alg == 'pdqn' and run.game == 'breakout'")  # visible at once: closed + indexed
    assert sorted(r["seed"] for r in runs) == [3, 4]
    stored = json.loads((run_dir / AIM_RUNS_FILE).read_text())
    assert sorted(stored["runs"].values()) == sorted(r.hash for r in runs)
    rows = pl.read_parquet(run_dir / METRICS_FILE)
    for r in runs:
        assert r["hparams"]["pqn"]["num_envs"] == config.pqn.num_envs
        assert r["hparams"]["dyna"]["dyna"]["horizon"] == config.dyna.dyna.horizon
        assert r["alg"] == "pdqn" and r["code"] == code_version() and r["code"]["package"]
        assert r.experiment == "pdqn-breakout"
        contexts = {m.name: m.context.to_dict() for m in r.metrics()}
        assert contexts["behaviour_return"] == {"policy": "behaviour"}
        assert contexts["episodes"] == {"policy": "behaviour"}
        assert contexts["target_return"] == {"policy": "target"}
        assert contexts["td_loss"] == {"update": "real"} and contexts["lr"] == {"update": "real"}
        assert contexts["counterfactual_td_loss"] == {"update": "imagined"}
        assert contexts["planning_active"] == {"update": "imagined"}
        assert contexts["model_loss"] == {"component": "model"}
        mine = rows.filter(pl.col("seed") == r["seed"]).sort("update")
        td = next(m for m in r.metrics() if m.name == "td_loss")
        steps, values = metric_arrays(td)
        np.testing.assert_array_equal(steps, mine["env_step"].to_numpy())
        np.testing.assert_allclose(values, mine["td_loss"].to_numpy(), rtol=1e-6)
        target = next(m for m in r.metrics() if m.name == "target_return")
        t_steps, _ = metric_arrays(target)
        evals = mine.filter(pl.col("target_return").is_not_nan())
        np.testing.assert_array_equal(t_steps, evals["env_step"].to_numpy())
        assert r["summary"]["final_target_return"] == pytest.approx(evals["target_return"][-1])


def run_info(config, run_dir) -> RunInfo:
    return RunInfo(config, run_dir, Trainer(config).metrics + (TARGET_RETURN,))


def test_resume_continues_the_stored_runs(tracked):
    config, repo, run_dir = tracked
    before = sorted(aim.Repo.from_path(str(repo)).list_all_runs())
    rows = pl.read_parquet(run_dir / METRICS_FILE)
    later = rows.filter(pl.col("update") == rows["update"].max()).with_columns(
        update=pl.col("update") + 1, env_step=pl.col("env_step") + 10_000, td_loss=pl.lit(123.0)
    )
    hooks = AimHooks(str(repo))
    hooks.start(run_info(config, run_dir))  # aim_runs.json exists: a resumed run
    hooks.log(later)
    hooks.close()
    assert sorted(aim.Repo.from_path(str(repo)).list_all_runs()) == before
    for r in query(repo, "run.hparams.alg == 'pdqn'"):
        td = next(m for m in r.metrics() if m.name == "td_loss")
        steps, values = metric_arrays(td)
        assert steps[-1] == later["env_step"][0] and values[-1] == 123.0
        assert len(steps) == rows.filter(pl.col("seed") == r["seed"]).height + 1


def test_track_off_makes_no_hooks(tmp_path):
    config = tiny_config(track=TrackConfig(off=True, repo=str(tmp_path / "never")))
    assert make_hooks(config) == []
    assert not (tmp_path / "never").exists()


def test_unwritable_repository_is_a_one_line_error(tmp_path, no_training):
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = ["--total-timesteps", "64", "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4",
            "--run-dir", str(tmp_path / "run"), "--track.repo", str(blocker / ".aim")]  # fmt: skip
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        minatar.main(args)
    assert exit_.value.code == 2, err.getvalue()
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    assert errors and "not writable" in errors[0] and str(blocker) in errors[0]
    assert not (tmp_path / "run" / METRICS_FILE).exists()


def test_unreachable_server_warns_and_trains_untracked():
    config = tiny_config(track=TrackConfig(repo=f"aim://127.0.0.1:{free_port()}"))
    log = io.StringIO()
    tick = time.monotonic()
    assert make_hooks(config, log) == []
    assert time.monotonic() - tick < 5
    assert log.getvalue().startswith("warning: Aim server aim://127.0.0.1:") and "without Aim tracking" in log.getvalue()


def test_failing_tracker_does_not_stop_training(tmp_path, monkeypatch):
    config = tiny_config(alg="pdqn", num_seeds=2, seed=3, track=TrackConfig(repo=str(tmp_path / "repo")))
    hooks = make_hooks(config)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(aim.Run, "track", broken)
    log = io.StringIO()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = run(config, run_dir, log=log, hooks=hooks)
    assert "AimHooks.log failed (disk full); continuing without it" in log.getvalue()
    assert pl.read_parquet(run_dir / METRICS_FILE)["update"].max() == config.num_updates
    assert len(summary["final_target_return"]) == 2


def test_remote_server(tracked, tmp_path):
    config, _, run_dir = tracked
    port = free_port()
    server_repo = tmp_path / "server-repo"
    server_repo.mkdir()
    aim_cli = Path(sys.executable).with_name("aim")
    proc = subprocess.Popen(
        [str(aim_cli), "server", "--repo", str(server_repo), "--host", "127.0.0.1", "--port", str(port), "-y"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        remote = dataclasses.replace(config, track=TrackConfig(repo=f"aim://127.0.0.1:{port}", sweep="remote-test"))
        hooks = make_hooks(remote)
        assert len(hooks) == 1
        fresh = tmp_path / "run"
        fresh.mkdir()
        rows = pl.read_parquet(run_dir / METRICS_FILE)
        hooks[0].start(run_info(remote, fresh))
        hooks[0].log(rows)
        hooks[0].close()
        hashes = sorted(json.loads((fresh / AIM_RUNS_FILE).read_text())["runs"].values())
        assert sorted(aim.Repo.from_path(str(server_repo)).list_all_runs()) == hashes
        del hooks
        gc.collect()  # the Aim client releases its remote resources while the server still answers
    finally:
        stop_process_group(proc)
    index_runs(str(server_repo), hashes)  # what `aim up` over the server's repository does at start
    runs = query(server_repo, "run.sweep == 'remote-test'")
    assert sorted(r.hash for r in runs) == hashes
    td = next(m for m in runs[0].metrics() if m.name == "td_loss")
    assert len(metric_arrays(td)[0]) == config.num_updates
