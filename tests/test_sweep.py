"""Sweeps: a grid of points, each with vmapped seeds, into one Aim repository; failures are recorded."""

import dataclasses
from pathlib import Path

import polars as pl
import pytest
from conftest import tiny_config

from analysis import final_returns, load_aim, load_run_dirs
from pdqn.config import ConfigError, TrackConfig
from pdqn.experiments import sweep as sweep_mod
from pdqn.runner import NonFiniteError

TINY_FLAGS = [
    "--total-timesteps", "384", "--eval-envs", "4", "--eval-every", "0.5",
    "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4", "--pqn.num-epochs", "1",
    "--dyna.num-rollouts", "16", "--dyna.plan-minibatches", "2", "--dyna.model-minibatches", "2",
    "--dyna.model-hidden", "32",
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


def test_failing_points_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    calls = []

    def fake_run(config, run_dir, log=None, hooks=()):
        calls.append(config)
        if config.pqn.lr == 0.5:
            raise NonFiniteError("non-finite td_loss at update 3 (seed 0); stopped")
        if config.pqn.lr == 0.25:
            raise RuntimeError("something else\nwith a second line")
        return {"final_target_return": [1.0, 3.0], "final_behaviour_return": [2.0, float("nan")]}

    monkeypatch.setattr(sweep_mod, "run", fake_run)
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
    assert len(calls) == 6 and {c.track.sweep for c in calls} == {"bad"}
    assert pl.read_parquet(tmp_path / "bad" / sweep_mod.POINTS_FILE).equals(table)


def test_grid_values_are_typed_and_checked():
    base = tiny_config()
    grid = sweep_mod.parse_grid(["dyna.horizon=2,5", "pqn.lr=1e-3", "alg=pqn,pdqn", "pqn.lr_linear_decay=false"], base)
    assert grid == {"dyna.horizon": [2, 5], "pqn.lr": [0.001], "alg": ["pqn", "pdqn"], "pqn.lr_linear_decay": [False]}
    replaced = sweep_mod.with_value(base, "dyna.horizon", 5)
    assert replaced.dyna.horizon == 5 and dataclasses.replace(base) == base
    for bad in ("dyna.nope=1", "dyna.horizon=two", "dyna.horizon", "env=breakout", "track.repo=x"):
        with pytest.raises(ConfigError):
            sweep_mod.parse_grid([bad], base)


def test_bad_sweep_flags_exit_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        sweep_mod.main(["--name", "x", "--out", str(tmp_path), "--grid", "dyna.horizon=zero", *TINY_FLAGS])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --grid dyna.horizon='zero' is invalid")
    assert not Path(tmp_path / "x").exists()
