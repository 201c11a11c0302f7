"""The host loop: compiled chunks of updates, greedy evaluations, progress lines and outputs.

All I/O happens here, between chunks; the compiled step never calls back to Python.
"""

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from pdqn.config import Config
from pdqn.state import TrainState
from pdqn.train import Trainer, compiled

METRICS_FILE = "metrics.parquet"
SUMMARY_FILE = "summary.json"


class RunHooks:
    """Host-side observers of a run (experiment trackers). Every method may be a no-op.

    They are called between compiled chunks only; a hook that fails must not stop
    training, so :func:`run` reports its error once and carries on without it.
    """

    def start(self, config: Config, run_dir: Path, seeds: list[int]) -> None:
        """Called once before the first chunk."""

    def log(self, rows: pl.DataFrame) -> None:
        """Called after each chunk with that chunk's new rows (one per seed and update)."""

    def finish(self, summary: dict[str, Any]) -> None:
        """Called once at the end with the run's summary."""

    def close(self) -> None:
        """Called always, also when training stops early."""


class RunDirError(ValueError):
    """The run directory cannot be used."""


def default_run_dir(config: Config) -> Path:
    return Path("runs") / f"{config.alg}-{config.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(path: Path) -> Path:
    """Create the run directory; refuse one that already holds a run's outputs."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run dir {path} exists and is not a directory")
    if (path / METRICS_FILE).exists() or (path / SUMMARY_FILE).exists():
        raise RunDirError(f"run dir {path} already holds a run; choose another --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"run dir {path} is not writable: {err.strerror}") from None
    return path


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file, fsync it, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def config_dict(config: Config) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def metric_rows(metrics: dict[str, np.ndarray], num_updates: int, first_update: int, seeds: list[int]) -> pl.DataFrame:
    """One row per seed and update from a chunk's ``[seed, update]`` metric arrays."""
    frames = []
    for i, seed in enumerate(seeds):
        columns: dict[str, Any] = {
            "seed": np.full(num_updates, seed, np.int64),
            "update": np.arange(first_update + 1, first_update + num_updates + 1, dtype=np.int64),
        }
        for name, values in sorted(metrics.items()):
            columns[name] = values[i, :num_updates].astype(np.float64)
        columns["env_step"] = columns["env_step"].astype(np.int64)
        frames.append(pl.DataFrame(columns))
    return pl.concat(frames)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(
    config: Config, frame: pl.DataFrame, update: int, steps_per_second: float, last_target: float
) -> str:
    latest = frame.filter(pl.col("update") == update)
    steps = update * config.env_steps_per_update
    total = config.num_updates * config.env_steps_per_update
    remaining = (total - steps) * config.num_seeds / steps_per_second if steps_per_second > 0 else math.inf
    recent = frame.filter(pl.col("update") > update - max(1, config.num_updates // 50))
    behaviour = recent["behaviour_return"].drop_nans().mean()
    parts = [
        f"[{config.alg} {config.env}] {steps:,}/{total:,} steps ({100 * steps / total:.0f}%)",
        f"{steps_per_second:,.0f} steps/s",
        f"ETA {format_duration(remaining)}",
        f"behaviour {behaviour if behaviour is not None else float('nan'):.2f}",
        f"greedy {last_target:.2f}",
        f"td {latest['td_loss'].mean():.4f}",
    ]
    if config.planning:
        parts.append(f"model cell-acc {latest['model_cell_accuracy'].mean():.4f}")
        parts.append(f"changed-acc {latest['model_changed_cell_accuracy'].mean():.3f}")
        parts.append(f"imag-td {latest['imagined_td_loss'].mean():.4f}")
    return " | ".join(parts)


class SafeHooks:
    """Calls each hook, dropping (with one message) any hook that raises."""

    def __init__(self, hooks: Sequence[RunHooks], log: TextIO):
        self.hooks = list(hooks)
        self.log = log

    def call(self, method: str, *args: Any) -> None:
        for hook in list(self.hooks):
            try:
                getattr(hook, method)(*args)
            except Exception as err:  # a tracker must never cost the run
                print(f"warning: {type(hook).__name__}.{method} failed ({err}); continuing without it", file=self.log)
                self.hooks.remove(hook)
                try:
                    hook.close()
                except Exception:
                    pass


def run(
    config: Config, run_dir: Path, log: TextIO = sys.stderr, hooks: Sequence[RunHooks] = ()
) -> dict[str, Any]:
    """Train ``config`` to completion, writing ``metrics.parquet`` and ``summary.json`` to ``run_dir``."""
    observers = SafeHooks(hooks, log)
    try:
        return _run(config, run_dir, log, observers)
    finally:
        observers.call("close")


def _run(config: Config, run_dir: Path, log: TextIO, hooks: SafeHooks) -> dict[str, Any]:
    trainer = Trainer(config)
    seeds = [config.seed + i for i in range(config.num_seeds)]
    states: TrainState = trainer.init_seeds()
    eval_key = jax.random.PRNGKey(config.seed + 1_000_003)

    chunk, chunk_seconds = compiled(trainer.run_chunk, states, jnp.asarray(1, jnp.int32))
    evaluate, eval_seconds = compiled(trainer.evaluate, states, eval_key)
    compile_seconds = chunk_seconds + eval_seconds
    print(f"[{config.alg} {config.env}] compiled in {compile_seconds:.1f}s", file=log, flush=True)
    hooks.call("start", config, run_dir, seeds)

    frames: list[pl.DataFrame] = []
    target_returns: list[np.ndarray] = []
    last_target = float("nan")
    done = 0
    update_seconds = 0.0
    start = time.perf_counter()
    while done < config.num_updates:
        next_eval = min((done // config.eval_interval + 1) * config.eval_interval, config.num_updates)
        n = min(config.chunk_size, next_eval - done)
        tick = time.perf_counter()
        states, metrics = chunk(states, jnp.asarray(n, jnp.int32))
        host_metrics = {k: np.asarray(v) for k, v in metrics.items()}
        update_seconds += time.perf_counter() - tick
        frame = metric_rows(host_metrics, n, done, seeds).with_columns(target_return=pl.lit(float("nan")))
        done += n
        if done == next_eval:
            eval_key, key = jax.random.split(eval_key)
            returns = np.asarray(evaluate(states, key))
            target_returns.append(returns)
            last_target = float(returns.mean())
            seed_means = pl.DataFrame({"seed": seeds, "update": [done] * len(seeds), "_t": returns.mean(axis=1)})
            frame = (
                frame.join(seed_means, on=["seed", "update"], how="left")
                .with_columns(target_return=pl.coalesce("_t", "target_return"))
                .drop("_t")
            )
        frames.append(frame)
        hooks.call("log", frame)
        all_rows = pl.concat(frames, how="diagonal_relaxed")
        write_atomic(run_dir / METRICS_FILE, all_rows.write_parquet)
        steps_per_second = done * config.env_steps_per_update * config.num_seeds / max(update_seconds, 1e-9)
        print(progress_line(config, all_rows, done, steps_per_second, last_target), file=log, flush=True)
    train_seconds = time.perf_counter() - start

    all_rows = pl.concat(frames, how="diagonal_relaxed")
    summary = summarise(config, all_rows, target_returns[-1], compile_seconds, train_seconds, update_seconds)
    write_atomic(run_dir / SUMMARY_FILE, lambda p: p.write_text(json.dumps(summary, indent=2)))
    hooks.call("finish", summary)
    return summary


def summarise(
    config: Config,
    rows: pl.DataFrame,
    final_eval: np.ndarray,
    compile_seconds: float,
    train_seconds: float,
    update_seconds: float,
) -> dict[str, Any]:
    """The run's headline figures; the behaviour return is the mean over the last 10 % of updates."""
    total_steps = config.num_updates * config.env_steps_per_update * config.num_seeds
    last_updates = rows.filter(pl.col("update") > config.num_updates - max(1, config.num_updates // 10))
    behaviour = (
        last_updates.with_columns(pl.col("behaviour_return").fill_nan(None))
        .group_by("seed")
        .agg(pl.col("behaviour_return").mean())
        .sort("seed")["behaviour_return"]
        .to_list()
    )
    return {
        "alg": config.alg,
        "env": config.env,
        "total_timesteps": config.total_timesteps,
        "env_steps_per_seed": config.num_updates * config.env_steps_per_update,
        "num_seeds": config.num_seeds,
        "seeds": [config.seed + i for i in range(config.num_seeds)],
        "compile_seconds": compile_seconds,
        "train_seconds": train_seconds,
        "update_seconds": update_seconds,
        "steps_per_second": total_steps / train_seconds,
        "final_behaviour_return": [float("nan") if v is None else v for v in behaviour],
        "final_target_return": final_eval.mean(axis=1).tolist(),
        "final_target_episodes": int(final_eval.shape[1]),
        "jax_backend": jax.default_backend(),
        "config": config_dict(config),
    }
