"""Checkpoint files: round trip, pruning, and every way a checkpoint or run dir can be bad."""

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import jax
import numpy as np
import pytest

from pdqn import checkpoint, rundir
from pdqn.checkpoint import CheckpointError
from pdqn.config import ConfigError, CounterfactualConfig, LearnedModelConfig
from pdqn.config_migration import config_dict, config_from_dict
from pdqn.experiments import minatar
from pdqn.runner import initial_eval_key
from pdqn.train import Trainer
from tests.conftest import REPO, tiny_config


def progress(update: int, rows: int = 0) -> dict:
    return {"update": update, "rows": rows, "last_eval": None, "update_seconds": 0.0, "train_seconds": 0.0}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A run dir with config.json and three checkpoints (keep=2) of a tiny PDQN config."""
    run_dir = tmp_path_factory.mktemp("ckpt")
    config = tiny_config(alg="pdqn", num_seeds=2, run_dir=run_dir)
    states = Trainer(config).init_seeds()
    rundir.write_config(run_dir, config)
    for update in (1, 2, 3):
        checkpoint.save_checkpoint(run_dir, config, states, initial_eval_key(config), progress(update))
    return run_dir, config, states


def like(config):
    return {"states": Trainer(config).init_seeds(), "eval_key": initial_eval_key(config)}


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def test_round_trip_and_pruning(saved):
    run_dir, config, states = saved
    assert [u for u, _ in checkpoint.list_checkpoints(run_dir)] == [2, 3]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "ckpt-00000002.eqx", "ckpt-00000002.json", "ckpt-00000003.eqx", "ckpt-00000003.json",
    ]
    ckpt = checkpoint.load_latest(run_dir, config, like(config))
    assert ckpt.update == 3 and ckpt.meta["format_version"] == checkpoint.FORMAT_VERSION
    assert leaves_equal(ckpt.states, states)
    assert rundir.read_config(run_dir) == config


def corrupt_copy(saved, tmp_path, edit):
    import shutil

    run_dir, config, _ = saved
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    edit(copy / "checkpoints")
    return copy, config


def flip_byte(folder: Path) -> None:
    path = folder / "ckpt-00000003.eqx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(folder: Path) -> None:
    path = folder / "ckpt-00000003.eqx"
    path.write_bytes(path.read_bytes()[:100])
    meta = json.loads((folder / "ckpt-00000003.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()  # pass the checksum, fail the parse
    (folder / "ckpt-00000003.json").write_text(json.dumps(meta))


def edit_meta(key, value):
    def edit(folder: Path) -> None:
        meta = json.loads((folder / "ckpt-00000003.json").read_text())
        meta[key] = value
        (folder / "ckpt-00000003.json").write_text(json.dumps(meta))

    return edit


def other_config(folder: Path) -> None:
    meta = json.loads((folder / "ckpt-00000003.json").read_text())
    meta["config"]["pqn"]["lr"] = 1.0
    (folder / "ckpt-00000003.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "edit, mentions",
    [
        (flip_byte, "checksum"),
        (truncate, "corrupted"),
        (edit_meta("format_version", 99), "format version 99"),
        (other_config, "another config"),
        (lambda f: (f / "ckpt-00000003.json").write_text("{not json"), "corrupted"),
        (lambda f: (f / "ckpt-00000003.eqx").unlink(), "unreadable"),
        (edit_meta("rows", -1), "rows"),
        (lambda f: [p.unlink() for p in f.iterdir()], "no checkpoint"),
    ],
    ids=["bitflip", "truncated", "version", "config", "bad-json", "missing-eqx", "bad-rows", "none"],
)
def test_bad_checkpoints_raise_checkpoint_error(saved, tmp_path, edit, mentions):
    copy, config = corrupt_copy(saved, tmp_path, edit)
    with pytest.raises(CheckpointError, match=mentions):
        checkpoint.load_latest(copy, config, like(config))


def test_a_checkpoint_saved_before_an_option_existed_still_loads_with_that_options_default(saved, tmp_path):
    def drop_new_options(folder: Path) -> None:  # as written before these options were added
        meta = json.loads((folder / "ckpt-00000003.json").read_text())
        del meta["config"]["frame_stack"], meta["config"]["dyna"]["counterfactual"]["share"]
        (folder / "ckpt-00000003.json").write_text(json.dumps(meta))

    copy, config = corrupt_copy(saved, tmp_path, drop_new_options)
    assert checkpoint.load_latest(copy, config, like(config)).meta["update"] == 3


FLAT = json.loads((REPO / "tests/data/tiny-pdqn-config-b6951e8.json").read_text())
"""tiny_config(alg="pdqn") as b6951e8 saved it: the last version whose planning options were one flat group."""


def flat_config(**dyna) -> dict:
    """``FLAT`` with options of its planning group changed (a value of None deletes the option: saved before the
    option existed)."""
    saved = json.loads(json.dumps(FLAT))
    for name, value in dyna.items():
        if value is None:
            del saved["dyna"][name]
        else:
            saved["dyna"][name] = value
    return saved


def test_a_config_saved_with_the_flat_planning_group_loads_into_the_groups_of_each_planner_and_the_model():
    assert config_from_dict(FLAT) == tiny_config(alg="pdqn")
    dyna = config_from_dict(flat_config(planner="dyna", horizon=3, plan_minibatches=4, ensemble_size=2)).dyna
    assert (dyna.planner, dyna.dyna.horizon, dyna.dyna.minibatches, dyna.learned.ensemble_size) == ("dyna", 3, 4, 2)
    assert (dyna.value_expansion.horizon, dyna.counterfactual.minibatches) == (3, 4)  # the options they shared


def test_a_config_saved_before_the_planner_and_ensemble_gate_existed_means_dyna_with_one_ungated_model():
    # Those options' defaults changed later; such a run planned with Dyna rollouts of one model trained on the whole
    # batch, every imagined step trusted, its loss the mean over trusted rows: a value since removed.
    old = flat_config(planner=None, model_fraction=None, ensemble_size=None, max_disagreeing_cells=None)
    with pytest.raises(ConfigError, match=r"dyna.imagined_loss_mean='trusted' was removed .*git checkout b6951e8"):
        config_from_dict(old | {"dyna": old["dyna"] | {"imagined_loss_mean": "trusted"}})
    dyna = config_from_dict(old).dyna  # saved after imagined_loss_mean existed, with today's value
    assert (dyna.planner, dyna.learned.fraction, dyna.learned.ensemble_size) == ("dyna", 1.0, 1)
    assert dyna.dyna.max_disagreeing_cells is None
    assert (tiny_config(alg="pdqn").dyna.planner, LearnedModelConfig().fraction) == ("counterfactual", 0.5)  # today's


def test_a_counterfactual_config_saved_before_the_row_gate_existed_means_every_row_counts():
    dyna = config_from_dict(flat_config(counterfactual_max_wrong_cells=None)).dyna
    assert (dyna.planner, dyna.counterfactual.max_wrong_cells) == ("counterfactual", None)
    assert CounterfactualConfig().max_wrong_cells == 0  # today's


def test_a_run_that_used_a_removed_option_is_one_error_naming_the_commit_that_can_run_it():
    for option, value in [("counterfactual_rows", "replace"), ("counterfactual_anchor", False), ("use_plan_eps", True)]:
        planner = "dyna" if option == "use_plan_eps" else "counterfactual"
        with pytest.raises(ConfigError, match=rf"^dyna.{option}={value!r} was removed .*\(the run needs pdqn at commit b6951e8"):
            config_from_dict(flat_config(planner=planner, **{option: value}))
    # saved before counterfactual_rows existed: every counterfactual run then took rows from the real ones
    with pytest.raises(ConfigError, match=r"dyna.counterfactual_rows='replace' was removed"):
        config_from_dict(flat_config(counterfactual_rows=None))


def test_a_removed_option_a_run_did_not_depend_on_is_dropped():
    pqn = FLAT | {"alg": "pqn"}
    pqn["dyna"] = pqn["dyna"] | {"counterfactual_rows": "replace", "imagined_loss_mean": "trusted"}
    assert config_from_dict(pqn) == tiny_config(alg="pqn")  # PQN never planned
    assert config_from_dict(flat_config(counterfactual_rows="replace", planner="dyna")).dyna.planner == "dyna"
    oracle = config_from_dict(flat_config(counterfactual_anchor=False, model="oracle")).dyna  # the oracle ignored it
    assert (oracle.planner, oracle.model) == ("counterfactual", "oracle")
    assert config_from_dict(flat_config(use_plan_eps=False, plan_eps_start=0.3)) == tiny_config(alg="pdqn")


def test_every_committed_run_config_loads_or_names_the_commit_to_check_out():
    """The run directories committed under experiments/ (configs of many versions) still load, or say which commit
    ran them."""
    configs = sorted((REPO / "experiments").glob("*/runs/*/config.json"))
    assert len(configs) > 50
    loaded, pinned = 0, 0
    for path in configs:
        try:
            config_from_dict(json.loads(path.read_text()))
            loaded += 1
        except ConfigError as err:
            assert "git checkout " in str(err), (path, err)
            pinned += 1
    assert loaded > pinned > 0


def test_an_option_only_an_unmerged_branch_had_loads_at_its_kept_value_and_otherwise_names_the_branch():
    saved = config_dict(tiny_config(alg="pdqn"))
    saved["dyna"]["learned"]["terminal_store"] = 0
    assert config_from_dict(saved) == tiny_config(alg="pdqn")
    assert saved["dyna"]["learned"]["terminal_store"] == 0  # the saved dict itself is left as it was
    saved["dyna"]["learned"]["terminal_store"] = 256
    with pytest.raises(ConfigError, match=r"^dyna\.learned\.terminal_store=256 is not an option .*: git checkout terminal-store$"):
        config_from_dict(saved)


@pytest.mark.parametrize(
    ("option", "kept", "screened", "run", "commit"),
    [
        ("radius", 2, "1", "seaquest-termination-r1-veto-0.5", "cdcdbbf"),
        ("features_from", "observation", "'q_network'", "seaquest-q-head", "5852278"),
    ],
)
def test_a_screened_termination_option_loads_at_its_kept_value_and_its_runs_name_the_commit_that_ran_them(
    option, kept, screened, run, commit
):
    veto = dict(planner="none", model="termination", veto=dict(threshold=0.5), termination=dict(minibatches=2))
    saved = config_dict(tiny_config(alg="pdqn", dyna=veto))
    saved["dyna"]["termination"][option] = kept
    assert config_from_dict(saved) == tiny_config(alg="pdqn", dyna=veto)
    path = Path(__file__).parents[1] / f"experiments/decision-time/runs/{run}/config.json"
    expected = rf"^dyna\.termination\.{option}={screened} is not an option .*: git checkout {commit}$"
    with pytest.raises(ConfigError, match=expected):
        config_from_dict(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("kept", "screened", "runs", "commit"),
    [
        ({"termination_head_weight": None, "termination_head_positive_weight": 10.0}, "termination_head_weight=1\\.0",
         ("asterix-aux-head-185", "seaquest-aux-head"), "569f64e"),
        ({"termination_head_channels": None}, "termination_head_channels=8",
         ("asterix-own-head-8-185", "seaquest-own-head-8"), "2e062f4"),
        ({"termination_head_labels": "taken", "termination_head_labelled_envs": None}, "termination_head_labels='every'",
         ("seaquest-own-head-8-every", "seaquest-own-head-8-every-16", "seaquest-own-head-8-every-64"),
         "9fded55"),
    ],
)  # fmt: skip
def test_runs_with_a_removed_termination_head_name_the_commit_that_ran_them(kept, screened, runs, commit):
    saved = config_dict(tiny_config())
    saved["pqn"] |= kept
    assert config_from_dict(saved) == tiny_config()
    for run in runs:
        path = Path(__file__).parents[1] / f"experiments/decision-time/runs/{run}/config.json"
        with pytest.raises(ConfigError, match=rf"^pqn\.{screened} is not an option .*: git checkout {commit}$"):
            config_from_dict(json.loads(path.read_text()))


def test_zeros_and_empty_names_that_older_versions_wrote_for_defaults_load_as_none():
    old = config_dict(tiny_config()) | {"log_every": 0, "eval_every": 0.0}
    old["checkpoint"]["every"], old["track"]["experiment"], old["track"]["sweep"] = 0, "", ""
    config = config_from_dict(old)
    assert (config.log_every, config.eval_every, config.eval_interval) == (None, None, config.num_updates)
    assert (config.checkpoint.every, config.track.experiment, config.track.sweep) == (None, None, None)
    assert old["track"]["sweep"] == ""  # the saved dict itself is left as it was


def test_shape_mismatch_is_reported(saved):
    run_dir, config, _ = saved
    bigger = tiny_config(alg="pdqn", num_seeds=2, run_dir=run_dir, pqn=dict(hidden_size=64))
    path = checkpoint.list_checkpoints(run_dir)[-1][1]
    data = path.with_suffix(".eqx").read_bytes()
    with pytest.raises(CheckpointError, match="does not match this config"):
        checkpoint._deserialise(data, like(bigger), "checkpoint")


def run_main(args):
    err = io.StringIO()
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        minatar.main(args)
    return exit_.value.code, err.getvalue()


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "case",
    ["bitflip", "version", "config-json", "no-config", "missing-dir", "extra-flags", "finished", "no-dir-arg"],
)
def test_resume_bad_input_is_one_line_exit_2_and_changes_nothing(saved, tmp_path, case, no_training):
    run_dir, config, _ = saved
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    args = ["--resume", str(copy)]
    if case == "bitflip":
        flip_byte(copy / "checkpoints")
    elif case == "version":
        edit_meta("format_version", 0)(copy / "checkpoints")
    elif case == "config-json":
        (copy / "config.json").write_text('{"alg": "pqn", "pqn": {"lr": -1}}')
    elif case == "no-config":
        (copy / "config.json").unlink()
    elif case == "missing-dir":
        args = ["--resume", str(tmp_path / "nothing")]
    elif case == "extra-flags":
        args = ["--resume", str(copy), "--seed", "3"]
    elif case == "finished":
        (copy / "summary.json").write_text("{}")
    elif case == "no-dir-arg":
        args = ["--resume"]
    before = snapshot(copy)
    code, err = run_main(args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert snapshot(copy) == before


def test_new_run_refuses_a_dir_with_checkpoints(saved, no_training):
    run_dir, _, _ = saved
    before = snapshot(run_dir)
    code, err = run_main(["--run-dir", str(run_dir), "--track.off"])
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    assert snapshot(run_dir) == before


def test_unwritable_run_dir_cli(tmp_path, no_training):
    blocker = tmp_path / "file"
    blocker.write_text("precious")
    code, err = run_main(["--run-dir", str(blocker / "sub"), "--track.off"])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not writable" in lines[0], err
    assert "Traceback" not in err and blocker.read_text() == "precious"


def test_a_config_saved_with_a_removed_option_loads_only_with_the_value_every_run_now_has():
    saved = flat_config(planner="dyna", binarize="threshold")  # what every run did, and does now without the option
    assert config_from_dict(saved) == config_from_dict(flat_config(planner="dyna"))
    with pytest.raises(ConfigError, match=r"dyna.binarize='sample' was removed \(sampled imagined cells were rejected.*882451e"):
        config_from_dict(flat_config(planner="dyna", binarize="sample"))
