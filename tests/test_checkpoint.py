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
from pdqn.config import DynaConfig
from pdqn.experiments import minatar
from pdqn.runner import initial_eval_key
from pdqn.train import Trainer
from tests.conftest import tiny_config


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
        del meta["config"]["frame_stack"], meta["config"]["dyna"]["max_uncertain_cells"]
        (folder / "ckpt-00000003.json").write_text(json.dumps(meta))

    copy, config = corrupt_copy(saved, tmp_path, drop_new_options)
    assert checkpoint.load_latest(copy, config, like(config)).meta["update"] == 3


def test_a_config_saved_before_the_planner_and_ensemble_gate_existed_means_dyna_with_one_ungated_model():
    # Those options' defaults changed later; such a run planned with Dyna rollouts of one model trained on the whole
    # batch, every imagined step trusted.
    old = rundir.config_dict(tiny_config(alg="pdqn", dyna=dict(ensemble_size=3, max_disagreeing_cells=1)))
    for name in ("planner", "model_fraction", "ensemble_size", "max_disagreeing_cells", "imagined_loss_mean"):
        del old["dyna"][name]
    dyna = rundir.config_from_dict(old).dyna
    assert (dyna.planner, dyna.model_fraction) == ("dyna", 1.0)
    assert (dyna.ensemble_size, dyna.max_disagreeing_cells, dyna.imagined_loss_mean) == (1, None, "trusted")
    assert (tiny_config(alg="pdqn").dyna.planner, DynaConfig().model_fraction) == ("counterfactual", 0.5)  # today's


def test_a_counterfactual_config_saved_before_the_row_gate_existed_means_every_row_counts():
    old = rundir.config_dict(tiny_config(alg="pdqn"))
    del old["dyna"]["counterfactual_max_wrong_cells"]  # the anchored planner ran before the gate was added
    dyna = rundir.config_from_dict(old).dyna
    assert (dyna.planner, dyna.counterfactual_anchor, dyna.counterfactual_max_wrong_cells) == ("counterfactual", True, None)
    assert DynaConfig().counterfactual_max_wrong_cells == 0  # today's


def test_a_counterfactual_config_saved_before_rows_could_be_added_replaced_real_rows():
    old = rundir.config_dict(tiny_config(alg="pdqn"))
    del old["dyna"]["counterfactual_rows"]  # every counterfactual run before the option took rows from the real ones
    assert rundir.config_from_dict(old).dyna.counterfactual_rows == "replace"
    assert DynaConfig().counterfactual_rows == "add"  # today's


def test_zeros_and_empty_names_that_older_versions_wrote_for_defaults_load_as_none():
    old = rundir.config_dict(tiny_config()) | {"log_every": 0, "eval_every": 0.0}
    old["checkpoint"]["every"], old["track"]["experiment"], old["track"]["sweep"] = 0, "", ""
    config = rundir.config_from_dict(old)
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
    from pdqn.config import ConfigError
    from pdqn.rundir import config_dict, config_from_dict

    saved = config_dict(tiny_config(alg="pdqn"))
    saved["dyna"]["binarize"] = "threshold"  # what every run did, and does now without the option
    assert config_from_dict(saved) == tiny_config(alg="pdqn")
    saved["dyna"]["binarize"] = "sample"
    with pytest.raises(ConfigError, match=r"dyna.binarize was removed \(sampled imagined cells were rejected"):
        config_from_dict(saved)
