"""The command line: one-line errors with exit code 2, and an end-to-end run with its outputs."""

import json
import subprocess
import sys

import polars as pl
import pytest

from tests.conftest import REPO, cli_env

TINY = [
    "--total-timesteps", "384", "--pqn.num-envs", "8", "--pqn.num-steps", "8",
    "--pqn.num-minibatches", "4", "--eval-envs", "4", "--eval-every", "0.5", "--track.off",
]


def run_cli(*args: str, module: str = "pdqn.experiments.minatar") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=300
    )


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["--env", "pong"], "--env"),
        (["--total-timesteps", "abc"], "--total-timesteps"),
        (["--pqn.num-minibatches", "33"], "pqn.num_minibatches"),
        (["--pqn.td-lambda", "1.5"], "pqn.td_lambda"),
        (["--num-seeds", "0"], "num_seeds"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--alg", "dqn"], "--alg"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(args, mentions):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and mentions in lines[0]
    assert "Traceback" not in result.stderr


def test_help_shows_field_docstrings():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "Lambda of the Q(lambda) returns" in result.stdout and "--dyna.horizon" in result.stdout


@pytest.mark.parametrize("alg", ["pqn", "pdqn"])
def test_training_run_writes_summary_and_metrics(tmp_path, alg):
    run_dir = tmp_path / "run"
    extra = ["--dyna.num-rollouts", "16", "--dyna.plan-minibatches", "2", "--dyna.model-minibatches", "2"]
    result = run_cli("--alg", alg, "--num-seeds", "2", "--run-dir", str(run_dir), *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert "steps/s" in result.stderr and "ETA" in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("alg", "env", "total_timesteps", "num_seeds", "compile_seconds", "train_seconds",
                "steps_per_second", "final_behaviour_return", "final_target_return", "config"):
        assert key in summary
    assert summary["alg"] == alg and len(summary["final_target_return"]) == 2
    metrics = pl.read_parquet(run_dir / "metrics.parquet")
    assert metrics.height == 2 * 6 and set(metrics["seed"]) == {0, 1}
    for column in ("env_step", "behaviour_return", "target_return", "td_loss", "mean_q", "epsilon", "lr",
                   "reward_rate", "termination_rate"):
        assert column in metrics.columns
    assert metrics.filter(pl.col("update") == 6)["target_return"].is_nan().sum() == 0
    if alg == "pdqn":
        assert "cell-acc" in result.stderr
        for column in ("model_cell_accuracy", "model_changed_cell_accuracy", "model_reward_abs_error",
                       "model_term_precision", "model_term_recall", "imagined_td_loss", "imagined_mean_q",
                       "imagined_termination_rate", "imagined_reward_rate", "imagined_bootstrap_gap"):
            assert column in metrics.columns


def test_existing_run_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("precious")
    result = run_cli("--run-dir", str(run_dir), *TINY)
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert (run_dir / "summary.json").read_text() == "precious"
