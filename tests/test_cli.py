"""The command line: one-line errors with exit code 2, help texts, and end-to-end runs with their outputs."""

import importlib
import io
import json
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import polars as pl
import pytest
from PIL import Image

from pdqn.experiments import minatar
from tests.conftest import REPO, cli_env, tiny_planning_flags

TINY = [
    "--total-timesteps", "384", "--pqn.num-envs", "8", "--pqn.num-steps", "8", "--pqn.num-minibatches", "4",
    "--pqn.num-epochs", "1", "--eval-envs", "4", "--eval-every", "0.5", "--track.off",
]  # fmt: skip
"""tests.conftest.tiny_config's PQN settings: a run of these flags is the same compiled program as an in-process
run of that config elsewhere in the suite (compiled once, then read from the persistent cache)."""
TINY_DYNA = tiny_planning_flags()
"""tiny_config's planning settings (planning from the first update)."""


def run_cli(*args: str, module: str = "pdqn.experiments.minatar") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=300
    )


def run_main(*args: str) -> tuple[int, str, str]:
    """``python -m pdqn.experiments.minatar ARGS`` in this process: exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = minatar.main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()  # type: ignore[return-value]


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
        (["--sticky-actions", "1.5"], "sticky_actions"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(args, mentions):
    """In-process (a traceback would be an exception other than SystemExit); the real command is checked below."""
    code, _, err = run_main(*args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and mentions in lines[0]
    assert "Traceback" not in err


def test_a_bad_flag_given_to_the_real_command_is_one_line_and_exit_2():
    """The command as a user runs it (a fresh interpreter): nothing else reaches stderr, no warning from importing
    JAX or the libraries either."""
    result = run_cli("--pqn.td-lambda", "1.5")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "pqn.td_lambda" in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_help_shows_field_docstrings():
    code, out, _ = run_main("--help")
    assert code in (0, None)
    assert "Lambda of the Q(lambda) returns" in out and "--dyna.dyna.horizon" in out and "--dyna.counterfactual.share" in out


ENTRY_POINTS = ["minatar", "evaluate", "benchmark", "sweep"]


def rendered_help(name: str, monkeypatch, columns: int = 100) -> str:
    """What ``python -m pdqn.experiments.<name> --help`` prints, rendered ``columns`` characters wide."""
    monkeypatch.setenv("COLUMNS", str(columns))
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        importlib.import_module(f"pdqn.experiments.{name}").parse_args(["--help"])
    assert exit_.value.code in (0, None)
    return out.getvalue()


def premature_line_breaks(help_text: str) -> list[str]:
    """Lines of help text that end although the next line's first word would have fitted after them: a
    line break from the source (a docstring's wrapping) rather than from the terminal's width. Works on
    tyro's boxed layout (a terminal) and its plain one (a pipe) alike: every line is padded to its column's
    width, and a box's edges separate unrelated lines."""
    rows = [None if line.startswith(("╭", "╰")) else line.strip("│") for line in help_text.splitlines()]
    is_rule = lambda row: not row.strip() or set(row.strip()) <= set("─-")  # noqa: E731
    breaks = []
    for above, below in zip(rows, rows[1:]):
        if above is None or below is None or is_rule(above) or is_rule(below) or below.lstrip().startswith("-"):
            continue  # a box's edge, an empty line, a rule, or the next option
        if above.lstrip().startswith("-") and len(re.split(r"\s{2,}", above.strip())) == 1:
            continue  # an option too long to share its line with its help, which starts below
        if len(above.rstrip()) + 1 + len(below.split()[0]) <= len(above) - 2:  # - 2: the column's padding
            breaks.append(f"{above.strip()} / {below.strip()}")
    return breaks


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_names_the_program_as_run_and_reads_as_flowing_text(name, monkeypatch):
    text = rendered_help(name, monkeypatch)
    assert text.startswith(f"usage: python -m pdqn.experiments.{name} ")
    assert premature_line_breaks(text) == []


def test_ctrl_c_during_a_benchmark_is_one_line_exit_130(monkeypatch):
    from pdqn.experiments import benchmark

    def interrupted(bench):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark, "measure", interrupted)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        benchmark.main(["--alg", "pqn"])
    assert exit_.value.code == 130 and out.getvalue() == ""
    assert err.getvalue().strip() == "benchmark: stopped by SIGINT; nothing was written"


def test_help_documents_resume(monkeypatch):
    text = rendered_help("minatar", monkeypatch)
    assert re.search(r"--resume RUN_DIR\s+Continue the run in RUN_DIR", text), text  # beside or below the flag


@pytest.mark.parametrize("alg", ["pqn", "pdqn"])
def test_training_run_writes_summary_and_metrics(tmp_path, alg):
    run_dir = tmp_path / "run"
    result = run_cli("--alg", alg, "--num-seeds", "2", "--run-dir", str(run_dir), *TINY, *TINY_DYNA, "--no-episode-gif")
    assert result.returncode == 0, result.stderr
    assert "steps/s" in result.stderr and "ETA" in result.stderr
    assert not (run_dir / "episode.gif").exists()
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
                       "model_term_precision", "model_term_recall", "counterfactual_td_loss", "counterfactual_mean_q",
                       "counterfactual_target_gap", "counterfactual_reward_rate", "counterfactual_termination_rate"):
            assert column in metrics.columns


def test_a_search_run_over_the_real_game_acts_by_search_and_trains_toward_it(tmp_path):
    run_dir = tmp_path / "run"
    search = ["--dyna.planner", "search", "--dyna.model", "oracle", "--dyna.search.simulations", "3", "--dyna.search.minibatches", "2"]
    code, _, err = run_main("--alg", "pdqn", "--run-dir", str(run_dir), *TINY, *TINY_DYNA, *search, "--no-episode-gif")
    assert code == 0, err
    assert "search-changed" in err and "search-td" in err  # the progress line, in the stderr of the call
    metrics = pl.read_parquet(run_dir / "metrics.parquet")
    assert metrics["search_changed_action_rate"].is_between(0, 1).all() and metrics["search_td_loss"].is_finite().all()
    assert json.loads((run_dir / "summary.json").read_text())["config"]["dyna"]["search"]["simulations"] == 3


def test_a_sticky_run_trains_evaluates_and_ends_with_a_gif_of_its_greedy_episode(tmp_path):
    """--sticky-actions 0.1 reaches every environment that is stepped: training, greedy evaluation, the
    oracle world model and the GIF recorder; the setting is in the summary's config and its env card."""
    run_dir = tmp_path / "run"
    result = run_cli("--alg", "pdqn", "--sticky-actions", "0.1", "--dyna.model", "oracle", "--run-dir", str(run_dir),
                     *TINY, *TINY_DYNA)  # fmt: skip
    assert result.returncode == 0, result.stderr
    card = "Breakout-MinAtar (gymnax), 10x10x4 observations, 3 actions, sticky actions 0.1"
    assert f"[pdqn breakout] env: {card}" in result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["config"]["sticky_actions"] == 0.1 and summary["env_card"].startswith(card)
    assert len(summary["final_target_return"]) == 1
    with Image.open(run_dir / "episode.gif") as gif:
        assert gif.format == "GIF" and 1 <= gif.n_frames <= 1000 and gif.size == (160, 176)


def test_existing_run_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text("precious")
    code, _, err = run_main("--run-dir", str(run_dir), *TINY)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert (run_dir / "summary.json").read_text() == "precious"


def test_a_gif_that_cannot_be_written_is_one_warning_and_the_run_still_finishes(tmp_path):
    from pdqn.runner import run
    from tests.conftest import tiny_config

    run_dir = tmp_path / "run"
    (run_dir / "episode.gif").mkdir(parents=True)  # a folder where the GIF should go
    log = io.StringIO()
    summary = run(tiny_config(num_seeds=2), run_dir, log=log)  # the program of the PQN run above
    warnings = [line for line in log.getvalue().splitlines() if "warning" in line]
    assert len(warnings) == 1 and "episode.gif" in warnings[0] and "is a directory" in warnings[0], log.getvalue()
    assert (run_dir / "summary.json").exists() and summary["final_target_return"]
