"""A run directory: its layout, atomic writes, and the config saved in it (configs written by older versions are
migrated by :mod:`pdqn.config_migration`).

::

    config.json         the run's config (written first; what ``--resume`` trains)
    metrics.parquet     one row per seed and update (rewritten atomically after every chunk)
    checkpoints/        ckpt-<update>.eqx + .json (see :mod:`pdqn.checkpoint`)
    summary.json        headline figures, written last: its presence marks a finished run
    policy.eqx/.json    the final networks of all seeds
    episode.gif         one greedy episode of the first seed's final policy (unless --no-episode-gif)
    aim_runs.json       the Aim runs of this run, so that a resume continues them
"""

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pdqn.config import Config
from pdqn.config_migration import config_dict, config_from_dict, normalised

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.parquet"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoints"
POLICY_FILE = "policy.eqx"
POLICY_META = "policy.json"
AIM_RUNS_FILE = "aim_runs.json"
EPISODE_GIF = "episode.gif"


class RunDirError(ValueError):
    """The run directory cannot be used."""


# ---- files ------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes | str | Callable[[Path], object]) -> None:
    """Write ``data`` (bytes, text, or a function that writes a given path) to a temporary file beside ``path``,
    fsync it, then rename it over ``path``: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        data = data.encode()
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        data(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Make renames inside ``path`` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.alg}-{config.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare(path: Path) -> Path:
    """Create the run directory; refuse one that already holds a run's outputs."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run dir {path} exists and is not a directory")
    if (path / SUMMARY_FILE).exists():
        raise RunDirError(f"run dir {path} already holds a finished run; choose another --run-dir")
    if any((path / name).exists() for name in (METRICS_FILE, CONFIG_FILE, CHECKPOINT_DIR)):
        raise RunDirError(f"run dir {path} already holds a run; continue it with --resume {path} or choose another --run-dir")
    check_writable(path)
    return path


def check_writable(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{socket.gethostname()}-{os.getpid()}"  # processes of one run probe at once
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"run dir {path} is not writable: {err.strerror}") from None


# ---- configs ----------------------------------------------------------------------------


def write_config(run_dir: Path, config: Config) -> None:
    write_atomic(run_dir / CONFIG_FILE, json.dumps(config_dict(config), indent=2))
    fsync_dir(run_dir)


def read_json(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """A JSON object from ``path``; ``error(...)`` naming ``what`` if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{what} {path} is unreadable or corrupted ({err})") from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} is corrupted (not a JSON object)")
    return data


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_config(run_dir: Path, error: type[Exception] = RunDirError) -> Config:
    """The config a run was started with (``RUN_DIR/config.json``)."""
    path = run_dir / CONFIG_FILE
    data = read_json(path, "run config", error)
    try:
        return config_from_dict(data)
    except Exception as err:  # ConfigError, TypeError, runtime type-check errors
        raise error(f"run config {path} is not a valid config ({first_line(err)})") from None
