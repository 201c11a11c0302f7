"""Sweeps: a grid of points, each with vmapped seeds, into one Aim repository; failures are recorded; a second run
skips finished points and resumes stopped ones; shards split the grid."""

import dataclasses
import json
import shutil
import signal
from pathlib import Path

import polars as pl
import polars.testing
import pytest
from conftest import tiny_config, tiny_planning_flags

from analysis import final_returns, load_aim, load_run_dirs
from pdqn import checkpoint
from pdqn.config import ConfigError, TrackConfig
from pdqn.experiments import sweep as sweep_mod
from pdqn.rundir import config_dict
from pdqn.runner import Interrupted, NonFiniteError

TINY_FLAGS = [
    "--total-timesteps", "384", "--eval-envs", "4", "--eval-every", "0.5",
    "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4", "--pqn.num-epochs", "1",
    *tiny_planning_flags(),
]  # fmt: skip


def test_two_by_two_sweep_with_two_seeds_into_one_repository(tmp_path):
    repo = tmp_path / "aim"
    code = sweep_mod.main(
        ["--name", "tiny", "--out", str(tmp_path / "sweeps"), "--grid", "pqn.gamma=0.9,0.99",
         "--grid", "pqn.td_lambda=0.5,0.65", "--alg", "pqn", "--num-seeds", "2", "--track.repo", str(repo),
         *TINY_FLAGS]
    )  # fmt: skip
    assert code == 0
    points = pl.read_parquet(tmp_path / "sweeps" / "tiny" / sweep_mod.POINTS_FILE)
    assert points.height == 4 and points["status"].to_list() == ["done"] * 4
    assert set(zip(points["pqn.gamma"], points["pqn.td_lambda"])) == {("0.9", "0.5"), ("0.9", "0.65"), ("0.99", "0.5"), ("0.99", "0.65")}
    assert (tmp_path / "sweeps" / "tiny" / "points.csv").exists()
    frame = load_aim(repo, sweep="tiny")
    assert frame["run_id"].n_unique() == 8 and set(frame["seed"].to_list()) == {0, 1}
    assert set(frame["variant"].to_list()) == {f"pqn pqn.gamma={g},pqn.td_lambda={t}" for g in (0.9, 0.99) for t in (0.5, 0.65)}
    finals = final_returns(frame)
    assert finals.height == 8 and finals["greedy"].is_finite().all()
    from_dirs = final_returns(load_run_dirs([tmp_path / "sweeps" / "tiny"]))
    assert sorted(from_dirs["greedy"].to_list()) == pytest.approx(sorted(finals["greedy"].to_list()))


def fake_runs(calls: list, problems: dict | None = None):
    """A stand-in for ``runner.run`` that records its calls and writes a summary.json as a finished run does;
    ``problems`` maps a learning rate to the exception its point raises."""

    def fake_run(config, run_dir, log=None, hooks=(), resume=False):
        calls.append((config, resume))
        if problems and config.pqn.lr in problems:
            raise problems[config.pqn.lr]
        summary = {"final_target_return": [1.0, 3.0], "final_behaviour_return": [2.0, float("nan")],
                   "config": config_dict(config)}  # fmt: skip
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary

    return fake_run


def test_failing_points_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    calls = []
    problems = {0.5: NonFiniteError("non-finite td_loss at update 3 (seed 0); stopped"),
                0.25: RuntimeError("something else\nwith a second line")}  # fmt: skip
    monkeypatch.setattr(sweep_mod, "run", fake_runs(calls, problems))
    base = tiny_config(num_seeds=2, track=TrackConfig(off=True))
    grid = sweep_mod.parse_grid(["pqn.lr=-1,0.5,0.25,0.001"], base)
    table = sweep_mod.sweep("bad", base, grid, ["breakout", "asterix"], tmp_path)
    assert table.height == 8
    rows = {(r["game"], r["pqn.lr"]): r for r in table.iter_rows(named=True)}
    assert rows[("breakout", "-1.0")]["status"] == "failed"
    assert rows[("breakout", "-1.0")]["reason"].startswith("ConfigError: pqn.lr=-1.0 is invalid")
    assert rows[("breakout", "0.5")]["reason"].startswith("NonFiniteError: non-finite td_loss")
    assert rows[("asterix", "0.25")]["reason"] == "RuntimeError: something else with a second line"
    done = rows[("asterix", "0.001")]
    assert done["status"] == "done" and done["final_target_return"] == 2.0 and done["final_behaviour_return"] == 2.0
    assert len(calls) == 6 and {c.track.sweep for c, _ in calls} == {"bad"}
    assert pl.read_parquet(tmp_path / "bad" / sweep_mod.POINTS_FILE).equals(table)


FAKE_FLAGS = ["--name", "grid", "--grid", "pqn.lr=0.001,0.002,0.003", "--games", "breakout", "asterix", "--track.off",
              *TINY_FLAGS]  # fmt: skip


def test_a_second_run_skips_done_points_and_retries_the_others(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(sweep_mod, "run", fake_runs(calls, {0.002: RuntimeError("out of memory")}))
    flags = ["--out", str(tmp_path), *FAKE_FLAGS]
    assert sweep_mod.main(flags) == 1
    assert len(calls) == 6
    calls.clear()
    monkeypatch.setattr(sweep_mod, "run", fake_runs(calls))
    assert sweep_mod.main(flags) == 0
    assert sorted(c.pqn.lr for c, _ in calls) == [0.002, 0.002]  # only the failed points train again
    assert "done, skipped" in capsys.readouterr().err
    points = pl.read_parquet(tmp_path / "grid" / sweep_mod.POINTS_FILE)
    assert points["status"].to_list() == ["done"] * 6
    calls.clear()
    assert sweep_mod.main(flags) == 0 and calls == []  # every point done: nothing trains
    # The same sweep with another config refuses the finished points instead of reporting them done.
    assert sweep_mod.main([*flags, "--pqn.gamma", "0.9"]) == 1 and calls == []
    points = pl.read_parquet(tmp_path / "grid" / sweep_mod.POINTS_FILE)
    assert points["reason"].str.contains("holds a finished run of another config").all()


def test_shards_cover_the_grid_exactly_once(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(sweep_mod, "run", fake_runs(calls))
    flags = ["--out", str(tmp_path), *FAKE_FLAGS]
    for index in range(4):  # 6 points over 4 shards: 2, 2, 1, 1
        assert sweep_mod.main([*flags, "--shard", f"{index}/4"]) == 0
        assert not (tmp_path / "grid" / sweep_mod.POINTS_FILE).exists()  # shards write only their points' folders
    trained = [(c.env, c.pqn.lr) for c, _ in calls]
    assert len(trained) == 6 and len(set(trained)) == 6
    assert sweep_mod.main([*flags, "--status"]) == 0 and len(calls) == 6
    points = pl.read_parquet(tmp_path / "grid" / sweep_mod.POINTS_FILE)
    assert points.height == 6 and points["status"].to_list() == ["done"] * 6
    assert "6 done of 6 points" in capsys.readouterr().err


def test_a_slurm_array_task_runs_its_share(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_mod, "run", fake_runs(calls))
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "11")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "10")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert sweep_mod.main(["--out", str(tmp_path), *FAKE_FLAGS]) == 0
    assert [(c.env, c.pqn.lr) for c, _ in calls] == [("breakout", 0.002), ("asterix", 0.001), ("asterix", 0.003)]
    assert sweep_mod.main(["--out", str(tmp_path), *FAKE_FLAGS, "--status"]) == 1  # the other half is pending


def test_a_stop_signal_stops_the_sweep_and_the_point_resumes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_mod, "run", fake_runs(calls, {0.002: Interrupted(signal.SIGTERM, 3)}))
    flags = ["--out", str(tmp_path), *FAKE_FLAGS]
    assert sweep_mod.main(flags) == 128 + signal.SIGTERM
    points = pl.read_parquet(tmp_path / "grid" / sweep_mod.POINTS_FILE)
    assert points["status"].to_list() == ["done", "stopped"] + ["pending"] * 4
    assert points["reason"][1].startswith("Interrupted: stopped by SIGTERM after update 3")


def test_bad_shards_exit_2(capsys, tmp_path):
    for shard in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(SystemExit) as exit_:
            sweep_mod.main(["--out", str(tmp_path), *FAKE_FLAGS, f"--shard={shard}"])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: --shard {shard!r} is invalid")


def test_grid_values_are_typed_and_checked():
    base = tiny_config()
    grid = sweep_mod.parse_grid(["dyna.dyna.horizon=2,5", "pqn.lr=1e-3", "alg=pqn,pdqn", "pqn.lr_linear_decay=false"], base)
    assert grid == {"dyna.dyna.horizon": [2, 5], "pqn.lr": [0.001], "alg": ["pqn", "pdqn"], "pqn.lr_linear_decay": [False]}
    replaced = sweep_mod.with_value(base, "dyna.dyna.horizon", 5)
    assert replaced.dyna.dyna.horizon == 5 and dataclasses.replace(base) == base
    for bad in ("dyna.nope=1", "dyna.dyna.horizon=two", "dyna.dyna.horizon", "dyna.horizon=2", "env=breakout", "track.repo=x"):
        with pytest.raises(ConfigError):
            sweep_mod.parse_grid([bad], base)


def test_bad_sweep_flags_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        sweep_mod.main(["--name", "x", "--out", str(tmp_path), "--grid", "dyna.dyna.horizon=zero", *TINY_FLAGS])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --grid dyna.dyna.horizon='zero' is invalid")
    assert not Path(tmp_path / "x").exists()


def test_stopped_points_resume_from_their_checkpoints(tmp_path, capsys):
    """Point 1 stopped after a checkpoint resumes from it; point 2, killed before its first checkpoint, starts
    again; both end exactly as they first did."""
    flags = ["--out", str(tmp_path), "--name", "again", "--grid", "pqn.gamma=0.9,0.99", "--track.off", "--num-seeds",
             "2", "--checkpoint.every", "2", "--checkpoint.keep", "4", *TINY_FLAGS]  # fmt: skip
    assert sweep_mod.main(flags) == 0
    first, second = (tmp_path / "again" / name for name in ("breakout-pqn.gamma=0.9", "breakout-pqn.gamma=0.99"))
    before = {d: pl.read_parquet(d / "metrics.parquet") for d in (first, second)}
    for run_dir in (first, second):
        for name in ("summary.json", "policy.eqx", "policy.json"):
            (run_dir / name).unlink()
    for update, meta in checkpoint.list_checkpoints(first):
        if update > 2:
            meta.unlink()
    shutil.rmtree(second / "checkpoints")
    capsys.readouterr()
    assert sweep_mod.main(flags) == 0
    err = capsys.readouterr().err
    assert err.count("resuming from update 2/6") == 1 and "done, skipped" not in err
    for run_dir, rows in before.items():
        polars.testing.assert_frame_equal(pl.read_parquet(run_dir / "metrics.parquet"), rows, check_exact=True)
    assert pl.read_parquet(tmp_path / "again" / sweep_mod.POINTS_FILE)["status"].to_list() == ["done", "done"]
