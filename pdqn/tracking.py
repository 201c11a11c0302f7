"""Experiment tracking with Aim: one Aim run per seed, written on the host between compiled chunks.

Each Aim run holds the full config as ``hparams``, the game, algorithm, seed, sweep name and code
version, and every metric column of ``metrics.parquet`` tracked with the env step as its step and a
context that says which part of the agent it measures (each metric's declared context, :mod:`pdqn.metrics`).

The repository is a local folder (default ``.aim``, created on first use, no server needed) or a
remote tracking server ``aim://host:port`` (``aim server``). A resumed run reopens the Aim runs whose
hashes :class:`AimHooks` stored in ``run_dir/aim_runs.json`` instead of creating new ones.

Failures: a local repository that cannot be created or written stops the program before training
(``error: ...``, exit 2); an unreachable server prints a warning and the run trains untracked; an Aim
error during training raises from the hook, so the runner drops the tracker and keeps training.
"""

import functools
import io
import json
import math
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import polars as pl

from pdqn.config import Config
from pdqn.hooks import RunHooks, RunInfo
from pdqn.metrics import INDEX_COLUMNS, ENV_STEP, SEED, declared
from pdqn.config_migration import config_dict
from pdqn.rundir import AIM_RUNS_FILE, write_atomic

REMOTE_PREFIX = "aim://"
CONNECT_TIMEOUT_S = 3.0

LogStream = io.TextIOBase | TextIO

RUN_OPTIONS: dict[str, Any] = {
    "system_tracking_interval": None,
    "log_system_params": False,
    "capture_terminal_logs": False,
}
"""No system-resource sampling thread and no stdout capture: the run logs only what the runner hands it."""


class TrackingError(RuntimeError):
    """The Aim repository cannot be used."""


@functools.cache
def code_version() -> dict[str, str]:
    """The package version and, inside a git checkout, the commit (with ``-dirty`` for local changes)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("pdqn")
    except PackageNotFoundError:
        package = "unknown"
    info = {"package": package, "commit": ""}
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        info["commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def is_remote(repo: str) -> bool:
    return repo.startswith(REMOTE_PREFIX)


def server_address(repo: str) -> tuple[str, int]:
    """``(host, port)`` of ``aim://host:port``."""
    parts = urlsplit("http://" + repo[len(REMOTE_PREFIX) :])
    if not parts.hostname or parts.port is None:
        raise TrackingError(f"track.repo={repo!r} is invalid: a remote repository is aim://host:port")
    return parts.hostname, parts.port


def check_server(repo: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`TrackingError` unless an Aim server answers at ``aim://host:port`` within ``timeout``."""
    import requests

    host, port = server_address(repo)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
        response = requests.get(f"http://{host}:{port}/status/", timeout=timeout)
    except (OSError, requests.RequestException) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise TrackingError(f"Aim server {repo} does not answer ({reason})") from None
    if response.status_code != 200:
        raise TrackingError(f"Aim server {repo} does not answer (HTTP {response.status_code} from /status/)")


def check_local_repo(path: str | Path) -> Path:
    """Create (``aim init``) the local repository if needed and prove it is writable; TrackingError if not.

    ``PATH`` ending in ``.aim`` is the repository folder itself; any other ``PATH`` holds it as ``PATH/.aim``
    (Aim's convention), so ``aim up --repo PATH`` opens it either way.
    """
    repo = Path(path).expanduser()
    root = repo.parent if repo.name == ".aim" else repo
    if root.exists() and not root.is_dir():
        raise TrackingError(f"Aim repository {repo} is not writable ({root} is not a directory)")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".pdqn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise TrackingError(f"Aim repository {repo} is not writable ({err.strerror or err})") from None
    from aim.sdk.repo import Repo

    try:
        if not (root / ".aim" / "VERSION").exists():
            Repo.from_path(str(root), init=True)
    except Exception as err:
        raise TrackingError(f"Aim repository {repo} cannot be created ({type(err).__name__}: {err})") from None
    return repo


def aim_repo_arg(repo: str) -> str:
    """What to hand to ``aim.Run(repo=...)``: the server address, or the local path."""
    return repo if is_remote(repo) else str(Path(repo).expanduser().resolve())


def index_runs(repo: str, hashes: list[str]) -> None:
    """Index closed runs of a local repository now, so queries and ``aim up`` see them at once.

    Aim indexes runs lazily (``aim up``/``aim server`` run an indexer); a remote server indexes its own.
    """
    if is_remote(repo):
        return
    from aim.sdk.index_manager import RepoIndexManager
    from aim.sdk.repo import Repo

    manager = RepoIndexManager.get_index_manager(Repo.from_path(aim_repo_arg(repo)))
    for run_hash in hashes:
        manager.index(run_hash)


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


class AimHooks(RunHooks):
    """One Aim run per seed; on resume (``aim_runs.json`` present) the stored runs are reopened."""

    def __init__(self, repo: str, log: LogStream = sys.stderr):
        self.repo = repo
        self.stream = log
        self.runs: dict[int, Any] = {}
        self.contexts: dict[str, dict[str, str]] = {}

    def start(self, run: RunInfo) -> None:
        import aim

        config, run_dir, seeds = run.config, run.run_dir, run.config.seeds
        self.contexts = {name: metric.aim_context for name, metric in declared(run.metrics).items()}
        repo = aim_repo_arg(self.repo)
        record = Path(run_dir) / AIM_RUNS_FILE
        if record.exists():
            stored = json.loads(record.read_text())
            hashes = {int(seed): run_hash for seed, run_hash in stored["runs"].items()}
            missing = [seed for seed in seeds if seed not in hashes]
            if missing:
                raise TrackingError(f"{record} has no Aim run for seeds {missing}")
            for seed in seeds:
                self.runs[seed] = aim.Run(run_hash=hashes[seed], repo=repo, **RUN_OPTIONS)
            return
        experiment = f"{config.alg}-{config.env}" if config.track.experiment is None else config.track.experiment
        version = code_version()
        hparams = config_dict(config)
        for seed in seeds:
            aim_run = aim.Run(repo=repo, experiment=experiment, **RUN_OPTIONS)
            aim_run.name = f"{config.alg} {config.env} seed {seed}" + (f" [{config.track.sweep}]" if config.track.sweep else "")
            aim_run["hparams"] = hparams
            aim_run["game"] = config.env
            aim_run["alg"] = config.alg
            aim_run["seed"] = seed
            if config.track.sweep is not None:
                aim_run["sweep"] = config.track.sweep
            aim_run["run_dir"] = str(Path(run_dir).resolve())
            aim_run["code"] = version
            for tag in (config.alg, config.env, config.track.sweep):
                if tag:
                    aim_run.add_tag(tag)
            self.runs[seed] = aim_run
        payload = {"repo": self.repo, "runs": {str(seed): r.hash for seed, r in self.runs.items()}}
        write_atomic(record, json.dumps(payload, indent=2))

    def log(self, rows: pl.DataFrame) -> None:
        """Track every finite value; a column no metric declares is an error, never a silent default."""
        metrics = [c for c in rows.columns if c not in INDEX_COLUMNS]
        undeclared = [name for name in metrics if name not in self.contexts]
        if undeclared:
            raise TrackingError(f"columns {undeclared} are not declared metrics of this run")
        for row in rows.iter_rows(named=True):
            aim_run = self.runs.get(int(row[SEED]))
            if aim_run is None:
                continue
            step = int(row[ENV_STEP])
            for name in metrics:
                value = row[name]
                if _finite(value):
                    aim_run.track(float(value), name=name, step=step, context=self.contexts[name])

    def finish(self, summary: dict[str, Any]) -> None:
        keys = ("final_target_return", "final_behaviour_return")
        for i, seed in enumerate(summary.get("seeds", [])):
            run = self.runs.get(seed)
            if run is None:
                continue
            result = {key: summary[key][i] for key in keys if i < len(summary.get(key, []))}
            result["steps_per_second"] = summary.get("steps_per_second")
            run["summary"] = {k: (v if _finite(v) else None) for k, v in result.items()}

    def close(self) -> None:
        runs, self.runs = list(self.runs.values()), {}
        hashes = []
        for run in runs:
            hashes.append(run.hash)
            run.close()
        if hashes:
            index_runs(self.repo, hashes)


def check_repo(config: Config, log: LogStream = sys.stderr) -> bool:
    """Whether tracking can proceed: False (with a warning) for an unreachable server.

    Raises :class:`TrackingError` for a local repository that cannot be created or written.
    """
    if config.track.off:
        return False
    if is_remote(config.track.repo):
        try:
            check_server(config.track.repo)
        except TrackingError as err:
            print(f"warning: {err}; training without Aim tracking", file=log, flush=True)
            return False
        return True
    check_local_repo(config.track.repo)
    return True


def make_hooks(config: Config, log: LogStream = sys.stderr) -> list[RunHooks]:
    """The trackers ``config.track`` asks for: an :class:`AimHooks`, or none with ``--track.off``.

    A local repository that cannot be used raises :class:`TrackingError`; an unreachable server only warns.
    Only the primary process tracks.
    """
    from pdqn.devices import is_primary

    if config.track.off or not is_primary():
        return []
    return [AimHooks(config.track.repo, log)] if check_repo(config, log) else []


def metric_arrays(metric: Any) -> tuple[Any, Any]:
    """``(steps, values)`` of an Aim metric sequence as NumPy arrays sorted by step."""
    import numpy as np

    steps, columns = metric.data.numpy()
    steps = np.asarray(steps, np.int64)
    values = np.asarray(columns[0], np.float64)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]
