"""Saved policies: evaluate on gymnax and on the original MinAtar; gymnax and MinAtar agree on
observation channels and minimal action sets."""

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import gymnax
import jax
import numpy as np
import pytest
from PIL import Image

from pdqn import checkpoint, render
from pdqn.config import GAMES
from pdqn.envs import gymnax_id, make_env
from pdqn.evaluation import evaluate_greedy
from pdqn.experiments import evaluate
from pdqn.runner import run
from pdqn.train import Trainer
from tests.conftest import REPO, cli_env, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("policy")
    run(tiny_config(alg="pdqn", num_seeds=2), run_dir, log=io.StringIO())
    return run_dir


def call(*args):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = evaluate.main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def test_policy_holds_q_networks_and_models(trained):
    config, policy = checkpoint.load_policy(trained)
    assert config.alg == "pdqn" and config.num_seeds == 2
    assert policy["planner"].model.ensemble is not None
    assert jax.tree.leaves(policy["q_net"])[0].shape[0] == 2


def test_evaluate_reports_gymnax_and_minatar_returns(trained):
    code, out, err = call(str(trained), "--episodes", "3", "--seed-index", "1", "--minatar")
    assert code == 0, err
    result = json.loads(out)
    assert result["env"] == "breakout" and result["training_seed"] == 1
    for impl in ("gymnax", "minatar"):
        figures = result[impl]
        assert len(figures["episodes"]) == 3
        assert figures["mean"] == pytest.approx(np.mean(figures["episodes"]))
        assert figures["stderr"] >= 0
    assert result["minatar"]["max_steps"] == 1000
    # Both play with the run's own sticky-action probability unless --sticky says otherwise.
    assert result["gymnax"]["sticky_action_prob"] == result["minatar"]["sticky_action_prob"] == 0.0


def test_a_frame_stacked_policy_sees_stacked_frames_on_gymnax_and_minatar(tmp_path):
    run_dir = tmp_path  # an existing, empty folder, as the fixture above uses
    run(tiny_config(frame_stack=3), run_dir, log=io.StringIO())
    config, policy = checkpoint.load_policy(run_dir)
    assert config.frame_stack == 3
    # The Q-network reads 3 x 4 Breakout channels; a single frame would not fit it (a shape error).
    code, out, err = call(str(run_dir), "--episodes", "2", "--minatar", "--sticky", "0.1")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["gymnax"]["episodes"]) == 2 and len(result["minatar"]["episodes"]) == 2
    assert result["gymnax"]["sticky_action_prob"] == result["minatar"]["sticky_action_prob"] == 0.1


@pytest.fixture(scope="module")
def vetoing(tmp_path_factory):
    """A run that acts with the real game's termination veto in its evaluations."""
    run_dir = tmp_path_factory.mktemp("vetoing")
    run(tiny_config(alg="pdqn", dyna=dict(model="oracle", veto=dict(threshold=0.5))), run_dir, log=io.StringIO())
    return run_dir


def test_a_run_that_acts_with_its_model_is_evaluated_acting_so_and_greedy_q_on_request(vetoing, tmp_path):
    config, policy = checkpoint.load_policy(vetoing)
    q_net = checkpoint.select_seed(policy["q_net"], 0)
    acting_q = Trainer(config).acting_q(checkpoint.select_seed(policy["planner"], 0), evaluation=True)
    env, key = make_env(config.env, 4), jax.random.PRNGKey(0)
    with_veto = evaluate_greedy(env, q_net, key, acting_q)
    on_q = evaluate_greedy(env, q_net, key)
    for args, acting, expected in [((), "termination veto", with_veto), (("--greedy",), "greedy Q", on_q)]:
        code, out, err = call(str(vetoing), "--episodes", "4", *args)
        assert code == 0, err
        result = json.loads(out)
        assert result["acting"] == acting
        np.testing.assert_allclose(result["gymnax"]["episodes"], expected)
    # The GIF plays as the evaluation does; MinAtar has no game state for the model to step.
    code, out, err = call(str(vetoing), "--gif", str(tmp_path / "veto.gif"), "--max-steps", "5")
    assert code == 0 and json.loads(out)["acting"] == "termination veto", err
    code, out, err = call(str(vetoing), "--minatar", "--episodes", "1")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("error: --minatar plays greedy Q only") and "--greedy" in err
    code, out, err = call(str(vetoing), "--minatar", "--greedy", "--episodes", "1")
    assert code == 0 and json.loads(out)["acting"] == "greedy Q", err


@pytest.mark.parametrize(
    "args, mentions",
    [
        (["--episodes", "0"], "episodes"),
        (["--seed-index", "2"], "seed_index"),
        (["--sticky", "1.5"], "sticky"),
        (["--episodes", "x"], "--episodes"),
    ],
)
def test_bad_evaluate_input_is_one_line_exit_2(trained, args, mentions):
    code, out, err = call(str(trained), *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and mentions in lines[0], err


def test_missing_or_corrupted_policy(trained, tmp_path):
    code, _, err = call(str(tmp_path))
    assert code == 2 and err.startswith("error: ") and "missing" in err
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    (copy / "policy.eqx").write_bytes((copy / "policy.eqx").read_bytes()[:1000])
    code, _, err = call(str(copy))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "corrupted" in err


@pytest.mark.parametrize("game", GAMES)
def test_gymnax_and_minatar_agree_on_actions_and_channels(game):
    env = evaluate.minatar_environment(game, 0.0, 0)
    gym_env, params = gymnax.make(gymnax_id(game))
    assert [int(a) for a in gym_env.action_set] == list(env.minimal_action_set())
    env.reset()
    theirs = np.asarray(env.state(), np.float32)
    ours = np.asarray(gym_env.reset(jax.random.PRNGKey(0), params)[0])
    assert ours.shape == theirs.shape
    # Channels fixed at reset (whatever the random start) must coincide cell by cell.
    fixed = {"breakout": [0, 3], "space_invaders": [0, 1], "freeway": [0], "asterix": [0], "seaquest": [0, 1, 7]}
    for channel in fixed[game]:
        np.testing.assert_array_equal(ours[..., channel], theirs[..., channel], err_msg=f"{game} channel {channel}")


def test_gif_shows_the_recorded_episodes_frame_by_frame(trained, tmp_path):
    path = tmp_path / "watch.gif"
    path.write_bytes(b"an older GIF")  # replaced
    args = ["--gif", str(path), "--episodes", "2", "--max-steps", "7", "--seed-index", "1"]
    code, out, err = call(str(trained), *args)
    assert code == 0, err
    recorded = json.loads(out)["gif"]
    assert recorded["path"] == str(path) and recorded["max_steps"] == 7 and len(recorded["episodes"]) == 2
    assert all(1 <= steps <= 7 for steps in recorded["steps"])
    # Only an episode that reached the cap can have been cut by it.
    assert recorded["episodes_cut_at_max_steps"] <= sum(steps == 7 for steps in recorded["steps"])
    with Image.open(path) as gif:
        assert gif.n_frames == sum(recorded["steps"])
        assert gif.size == render.frame_size((10, 10, 4))


def test_gif_defaults_to_one_episode_at_the_games_step_limit(trained, tmp_path):
    path = tmp_path / "one.gif"
    code, out, err = call(str(trained), "--gif", str(path))
    assert code == 0, err
    recorded = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))["gif"]
    assert len(recorded["episodes"]) == 1 and recorded["max_steps"] == 1000 and 1 <= recorded["steps"][0] <= 1000
    assert recorded["stderr"] is None  # one episode: no spread
    with Image.open(path) as gif:
        assert gif.n_frames == recorded["steps"][0]


@pytest.mark.parametrize(
    "name, mentions",
    [("episode.png", "does not end in .gif"), ("missing/episode.gif", "does not exist"), ("folder.gif", "is a directory")],
)
def test_a_bad_gif_path_is_refused_before_the_policy_is_loaded(tmp_path, name, mentions):
    (tmp_path / "folder.gif").mkdir()
    # tmp_path holds no policy: had the path been checked after loading it, the error would say so.
    code, out, err = call(str(tmp_path), "--gif", str(tmp_path / name))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: ") and mentions in lines[0], err


def test_gif_and_minatar_are_not_combined(tmp_path):
    code, _, err = call(str(tmp_path), "--gif", str(tmp_path / "x.gif"), "--minatar")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "--minatar" in lines[0], err


def test_a_bad_gif_path_is_one_error_line_from_the_cli(trained, tmp_path):
    existing = tmp_path / "keep.png"
    existing.write_bytes(b"not touched")
    proc = subprocess.run(
        [sys.executable, "-m", "pdqn.experiments.evaluate", str(trained), "--gif", str(existing)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(),
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and ".gif" in lines[0], proc.stderr
    assert existing.read_bytes() == b"not touched"


@pytest.mark.parametrize("gif", [False, True])
def test_ctrl_c_while_playing_is_one_line_exit_130_and_writes_nothing(trained, tmp_path, monkeypatch, gif):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "record_gif" if gif else "score", interrupted)
    path = tmp_path / "episode.gif"
    code, out, err = call(str(trained), *(["--gif", str(path)] if gif else []))
    assert code == 130 and out == "" and err.strip() == "evaluate: stopped by SIGINT; nothing was written", err
    assert not path.exists()
