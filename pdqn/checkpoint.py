"""Checkpoints of the whole training state and saved policies, in Equinox's leaf serialisation.

Inside a run directory (:mod:`pdqn.rundir`)::

    checkpoints/ckpt-00000120.eqx   the arrays: TrainState of all seeds and the eval key
    checkpoints/ckpt-00000120.json  metadata: format version, config, update count, metric
                                    rows covered, seconds so far, last evaluation, sha256 of the .eqx
    policy.eqx / policy.json        the final Q-networks (and planner states) of all seeds

Every file is written atomically. The ``.json`` is written after its ``.eqx`` and marks the checkpoint
complete; a checkpoint without one is ignored.
"""

import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from pdqn.config import Config
from pdqn.config_migration import config_dict, config_from_dict, normalised
from pdqn.rundir import CHECKPOINT_DIR, POLICY_FILE, POLICY_META, first_line, fsync_dir, read_json, write_atomic

FORMAT_VERSION = 2
"""2: the training state holds a learner and a planner state (version 1 runs cannot be resumed)."""


class CheckpointError(ValueError):
    """A checkpoint, saved policy or run config that is missing, corrupted or does not fit."""


def _serialise(tree: Any) -> bytes:
    """The Equinox serialisation of ``tree``'s arrays, gathered to the host first."""
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, jax.tree.map(_to_numpy, tree))
    return buffer.getvalue()


def _to_numpy(x: Any) -> Any:
    if isinstance(x, jax.Array):
        from pdqn.devices import to_host

        return to_host(x)
    return x


def _deserialise(data: bytes, like: Any, what: str) -> Any:
    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(data), like)
    except Exception as err:  # numpy raises several types on truncated or garbled data
        message = first_line(err)
        if "changed shape" in message or "changed dtype" in message:
            raise CheckpointError(f"{what} does not match this config ({message})") from None
        raise CheckpointError(f"{what} is corrupted ({type(err).__name__}: {message})") from None
    _check_shapes(tree, like, what)
    return tree


def _check_shapes(tree: Any, like: Any, what: str) -> None:
    got = jax.tree.leaves(eqx.filter(tree, eqx.is_array))
    want = jax.tree.leaves(eqx.filter(like, lambda x: eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)))
    if len(got) != len(want):
        raise CheckpointError(f"{what} does not match this config ({len(got)} arrays, expected {len(want)})")
    for a, b in zip(got, want):
        if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
            raise CheckpointError(
                f"{what} does not match this config (an array of {a.dtype}{list(a.shape)}, "
                f"expected {b.dtype}{list(b.shape)})"
            )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    return read_json(path, what, CheckpointError)


def _check_version(meta: dict[str, Any], path: Path) -> None:
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version!r}; this pdqn reads version {FORMAT_VERSION}")


# ---- checkpoints ------------------------------------------------------------------------


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: the arrays and the host-side progress they belong to."""

    states: Any
    eval_key: Any
    meta: dict[str, Any]

    @property
    def update(self) -> int:
        return int(self.meta["update"])


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / CHECKPOINT_DIR


def _stem(update: int) -> str:
    return f"ckpt-{update:08d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (their ``.json``), oldest first."""
    found = []
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    for path in folder.glob("ckpt-*.json"):
        try:
            found.append((int(path.stem.split("-", 1)[1]), path))
        except ValueError:
            continue
    return sorted(found)


def save_checkpoint(
    run_dir: Path, config: Config, states: Any, eval_key: Any, progress: dict[str, Any]
) -> Path:
    """Save a checkpoint after ``progress['update']`` updates and prune to ``config.checkpoint.keep``."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(exist_ok=True)
    update = int(progress["update"])
    data = _serialise({"states": states, "eval_key": eval_key})
    eqx_path = folder / f"{_stem(update)}.eqx"
    write_atomic(eqx_path, data)
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "checkpoint",
        **progress,
        "file": eqx_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "config": config_dict(config),
        "jax_version": jax.__version__,
    }
    meta_path = folder / f"{_stem(update)}.json"
    write_atomic(meta_path, json.dumps(meta, indent=2, allow_nan=True))
    fsync_dir(folder)
    prune(run_dir, config.checkpoint.keep)
    return meta_path


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints (metadata first, so none is half-deleted)."""
    for update, meta_path in list_checkpoints(run_dir)[:-keep]:
        meta_path.unlink(missing_ok=True)
        meta_path.with_suffix(".eqx").unlink(missing_ok=True)


def load_latest(run_dir: Path, config: Config, like: dict[str, Any]) -> Checkpoint:
    """The newest checkpoint of ``run_dir``, checked against ``config`` and the shapes of ``like``.

    ``like`` is ``{"states": ..., "eval_key": ...}`` with arrays or ``jax.ShapeDtypeStruct`` leaves.
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir(run_dir)}; nothing to resume")
    return load(found[-1][1], config, like)


def verify_latest(run_dir: Path, config: Config) -> dict[str, Any]:
    """Check the newest checkpoint's metadata and checksum without loading it; its metadata."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir(run_dir)}; nothing to resume")
    return _read_checkpoint(found[-1][1], config)[0]


def load(meta_path: Path, config: Config, like: dict[str, Any]) -> Checkpoint:
    meta, data = _read_checkpoint(meta_path, config)
    tree = _deserialise(data, like, f"checkpoint {meta_path.with_suffix('.eqx')}")
    return Checkpoint(states=tree["states"], eval_key=tree["eval_key"], meta=meta)


def _read_checkpoint(meta_path: Path, config: Config) -> tuple[dict[str, Any], bytes]:
    meta = _read_json(meta_path, "checkpoint metadata")
    _check_version(meta, meta_path)
    if normalised(meta.get("config")) != config_dict(config):
        raise CheckpointError(f"checkpoint {meta_path} was saved by a run with another config")
    eqx_path = meta_path.with_name(str(meta.get("file", "")))
    try:
        data = eqx_path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {eqx_path} is unreadable ({err.strerror})") from None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"checkpoint {eqx_path} is corrupted (checksum mismatch)")
    for key in ("update", "rows"):
        if not isinstance(meta.get(key), int) or meta[key] < 0:
            raise CheckpointError(f"checkpoint metadata {meta_path} is corrupted ({key}={meta.get(key)!r})")
    return meta, data


# ---- policies ---------------------------------------------------------------------------


def policy_tree(states: Any) -> dict[str, Any]:
    """What a saved policy holds: the Q-networks and (PDQN) planner states, e.g. world models, of all seeds."""
    return {"q_net": states.learner.q_net, "planner": states.planner}


def save_policy(run_dir: Path, config: Config, states: Any) -> Path:
    path = run_dir / POLICY_FILE
    write_atomic(path, _serialise(policy_tree(states)))
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": "policy",
        "file": POLICY_FILE,
        "seeds": config.seeds,
        "config": config_dict(config),
    }
    write_atomic(run_dir / POLICY_META, json.dumps(meta, indent=2))
    fsync_dir(run_dir)
    return path


def load_policy(run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """The config and ``{"q_net", "planner"}`` (stacked over seeds) saved at the end of a run."""
    from pdqn.train import Trainer

    meta_path = run_dir / POLICY_META
    meta = _read_json(meta_path, "policy metadata")
    _check_version(meta, meta_path)
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"policy metadata {meta_path} is corrupted (no config)")
    try:
        config = config_from_dict(meta["config"])
    except Exception as err:  # ConfigError, TypeError, runtime type-check errors
        raise CheckpointError(f"policy metadata {meta_path} holds an invalid config ({first_line(err)})") from None
    like = policy_tree(eqx.filter_eval_shape(Trainer(config).init_seeds))
    path = run_dir / POLICY_FILE
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"policy {path} is unreadable ({err.strerror})") from None
    return config, _deserialise(data, like, f"policy {path}")


def select_seed(tree: Any, index: int) -> Any:
    """One seed's slice of a seed-stacked pytree."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda x: x[index], arrays), static)


def as_numpy_tree(tree: Any) -> Any:
    return jax.tree.map(lambda x: np.asarray(x) if isinstance(x, jax.Array) else x, tree)
