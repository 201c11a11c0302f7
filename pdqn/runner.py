"""The host loop: compiled chunks of updates, greedy evaluations, progress lines and outputs.

All I/O happens here, between chunks; the compiled step never calls back to Python.
"""

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from pdqn import checkpoint
from pdqn.config import Config
from pdqn.devices import is_primary, seed_placement, to_host
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
    if (path / SUMMARY_FILE).exists():
        raise RunDirError(f"run dir {path} already holds a finished run; choose another --run-dir")
    if any((path / name).exists() for name in (METRICS_FILE, checkpoint.CONFIG_FILE, checkpoint.CHECKPOINT_DIR)):
        raise RunDirError(f"run dir {path} already holds a run; continue it with --resume {path} or choose another --run-dir")
    check_writable(path)
    return path


def check_writable(path: Path) -> None:
    """Create ``path`` if needed and prove a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"run dir {path} is not writable: {err.strerror}") from None


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
        f"greedy {last_target:.2f}" if math.isfinite(last_target) else "greedy – (not evaluated yet)",
        f"td {latest['td_loss'].mean():.4f}",
    ]
    if config.planning:
        parts.append(f"model cell-acc {latest['model_cell_accuracy'].mean():.4f}")
        parts.append(f"changed-acc {latest['model_changed_cell_accuracy'].mean():.3f}")
        parts.append(f"imag-td {latest['imagined_td_loss'].mean():.4f}")
    return " | ".join(parts)


class SafeHooks:
    """Calls each hook, dropping (with one message) any hook that raises."""

    def __init__(self, hooks: Sequence[RunHooks], log: Any):
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


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN/inf; the run stopped after keeping its last good checkpoint."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved between chunks before stopping."""

    def __init__(self, signum: int, update: int):
        self.signum = signum
        self.update = update
        super().__init__(f"stopped by {signal.Signals(signum).name} after update {update}; checkpoint saved")


LOSS_COLUMNS = ("td_loss", "mean_q")
MODEL_LOSS_COLUMNS = ("model_loss",)
PLANNING_LOSS_COLUMNS = ("imagined_td_loss", "imagined_mean_q")


def run(
    config: Config,
    run_dir: Path,
    log: Any = sys.stderr,
    hooks: Sequence[RunHooks] = (),
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``config`` to completion, writing ``metrics.parquet`` and ``summary.json`` to ``run_dir``.

    With ``resume`` the run continues from the newest checkpoint in ``run_dir`` (metric rows
    beyond it are dropped) and ends exactly as an uninterrupted run would.
    """
    observers = SafeHooks(hooks, log)
    try:
        return _run(config, run_dir, log, observers, resume)
    finally:
        observers.call("close")


@dataclasses.dataclass
class Progress:
    """Host-side state of a run between chunks (saved in each checkpoint's metadata)."""

    done: int = 0
    frames: list[pl.DataFrame] = dataclasses.field(default_factory=list)
    last_eval: list[list[float]] | None = None
    update_seconds: float = 0.0
    train_seconds: float = 0.0
    checkpointed: int = -1
    """Update count of the newest checkpoint on disk (-1: none)."""

    @property
    def rows(self) -> int:
        return sum(frame.height for frame in self.frames)

    @property
    def last_target(self) -> float:
        return float(np.mean(self.last_eval)) if self.last_eval is not None else float("nan")

    def meta(self, train_seconds: float) -> dict[str, Any]:
        return {
            "update": self.done,
            "rows": self.rows,
            "last_eval": self.last_eval,
            "update_seconds": self.update_seconds,
            "train_seconds": train_seconds,
        }


class StopSignals:
    """Turn the first SIGINT/SIGTERM into a flag checked between chunks; a second one acts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def initial_eval_key(config: Config) -> jax.Array:
    return jax.random.PRNGKey(config.seed + 1_000_003)


def restore(config: Config, run_dir: Path, states: TrainState, eval_key: jax.Array, log: Any):
    """Load the newest checkpoint and the metric rows it covers (later rows are dropped from disk)."""
    like = {"states": states, "eval_key": eval_key}
    ckpt = checkpoint.load_latest(run_dir, config, like)
    meta = ckpt.meta
    progress = Progress(
        done=ckpt.update,
        last_eval=meta.get("last_eval"),
        update_seconds=float(meta.get("update_seconds", 0.0)),
        train_seconds=float(meta.get("train_seconds", 0.0)),
        checkpointed=ckpt.update,
    )
    if meta["rows"]:
        path = run_dir / METRICS_FILE
        try:
            rows = pl.read_parquet(path)
        except Exception as err:
            raise checkpoint.CheckpointError(f"{path} is missing or unreadable ({type(err).__name__})") from None
        kept = rows.filter(pl.col("update") <= ckpt.update)
        if kept.height != meta["rows"]:
            raise checkpoint.CheckpointError(
                f"{path} holds {kept.height} rows up to update {ckpt.update}, the checkpoint expects {meta['rows']}"
            )
        if kept.height != rows.height:
            write_atomic(path, kept.write_parquet)
        progress.frames.append(kept)
    print(f"[{config.alg} {config.env}] resuming from update {ckpt.update}/{config.num_updates}", file=log, flush=True)
    return ckpt.states, ckpt.eval_key, progress


def checkpoint_due(config: Config, before: int, after: int) -> bool:
    """A checkpoint every ``checkpoint.every`` updates (0: at each evaluation point) and at the end."""
    every = config.checkpoint.every or config.eval_interval
    return after // every > before // every or after == config.num_updates


def non_finite(config: Config, metrics: dict[str, np.ndarray], n: int, first_update: int) -> str | None:
    """Describe the earliest NaN/inf loss-type metric of a chunk (None when all are finite)."""
    columns = list(LOSS_COLUMNS)
    if config.planning:
        columns += list(MODEL_LOSS_COLUMNS) + list(PLANNING_LOSS_COLUMNS)
    worst: tuple[int, int, str] | None = None
    for name in columns:
        if name not in metrics:
            continue
        values = metrics[name][:, :n]
        bad = ~np.isfinite(values)
        if name in PLANNING_LOSS_COLUMNS and "planning_active" in metrics:
            bad &= metrics["planning_active"][:, :n] > 0.5
        if bad.any():
            seed_index, step = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
            candidate = (int(step), int(seed_index), name)
            worst = candidate if worst is None or candidate[0] < worst[0] else worst
    if worst is None:
        return None
    step, seed_index, name = worst
    return f"{name} at update {first_update + step + 1} (seed {config.seed + seed_index})"


@eqx.filter_jit
def all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def params_finite(states: TrainState) -> bool:
    return bool(all_finite((states.q_net, states.model)))


def _run(config: Config, run_dir: Path, log: Any, hooks: SafeHooks, resume: bool) -> dict[str, Any]:
    trainer = Trainer(config)
    seeds = [config.seed + i for i in range(config.num_seeds)]
    states: TrainState = trainer.init_seeds()
    eval_key = initial_eval_key(config)
    if resume:
        states, eval_key, progress = restore(config, run_dir, states, eval_key, log)
    else:
        progress = Progress()
        if is_primary():
            checkpoint.write_config(run_dir, config)
    placement = seed_placement(config.num_seeds, log)
    states = placement.put(states)

    chunk, chunk_seconds = compiled(trainer.run_chunk, states, jnp.asarray(1, jnp.int32))
    evaluate, eval_seconds = compiled(trainer.evaluate, states, eval_key)
    compile_seconds = chunk_seconds + eval_seconds
    print(f"[{config.alg} {config.env}] compiled in {compile_seconds:.1f}s", file=log, flush=True)
    hooks.call("start", config, run_dir, seeds)

    def save(at_states: TrainState, at_key: jax.Array) -> None:
        if is_primary():
            meta = progress.meta(progress.train_seconds + time.perf_counter() - start)
            checkpoint.save_checkpoint(run_dir, config, at_states, at_key, meta)
        progress.checkpointed = progress.done

    start = time.perf_counter()
    with StopSignals() as stop:
        while progress.done < config.num_updates:
            done = progress.done
            next_eval = min((done // config.eval_interval + 1) * config.eval_interval, config.num_updates)
            n = min(config.chunk_size, next_eval - done)
            tick = time.perf_counter()
            new_states, metrics = chunk(states, jnp.asarray(n, jnp.int32))
            host_metrics = {k: to_host(v) for k, v in metrics.items()}
            progress.update_seconds += time.perf_counter() - tick
            problem = non_finite(config, host_metrics, n, done)
            if problem is None and not params_finite(new_states):
                problem = f"network parameters after updates {done + 1}-{done + n}"
            if problem is not None:
                if progress.checkpointed != done:
                    save(states, eval_key)
                raise NonFiniteError(
                    f"non-finite {problem}; stopped, last good checkpoint at update {done} in "
                    f"{checkpoint.checkpoint_dir(run_dir)}"
                )
            states = placement.put(new_states)
            frame = metric_rows(host_metrics, n, done, seeds).with_columns(target_return=pl.lit(float("nan")))
            progress.done = done = done + n
            if done == next_eval:
                eval_key, key = jax.random.split(eval_key)
                returns = to_host(evaluate(states, key))
                progress.last_eval = returns.astype(np.float64).tolist()
                frame = with_target_returns(frame, seeds, done, returns)
            progress.frames.append(frame)
            hooks.call("log", frame)
            all_rows = pl.concat(progress.frames, how="diagonal_relaxed")
            if is_primary():
                write_atomic(run_dir / METRICS_FILE, all_rows.write_parquet)
            if checkpoint_due(config, done - n, done) or stop.received is not None:
                save(states, eval_key)
            if stop.received is not None:
                raise Interrupted(stop.received, done)
            steps_per_second = done * config.env_steps_per_update * config.num_seeds / max(progress.update_seconds, 1e-9)
            print(progress_line(config, all_rows, done, steps_per_second, progress.last_target), file=log, flush=True)
    if progress.checkpointed != progress.done:  # resumed from a final checkpoint whose outputs were lost
        save(states, eval_key)
    train_seconds = progress.train_seconds + time.perf_counter() - start

    all_rows = pl.concat(progress.frames, how="diagonal_relaxed")
    final_eval = np.asarray(progress.last_eval, np.float64)
    summary = summarise(config, all_rows, final_eval, compile_seconds, train_seconds, progress.update_seconds)
    if is_primary():
        checkpoint.save_policy(run_dir, config, states)
        write_atomic(run_dir / SUMMARY_FILE, lambda p: p.write_text(json.dumps(summary, indent=2)))
    hooks.call("finish", summary)
    return summary


def with_target_returns(frame: pl.DataFrame, seeds: list[int], update: int, returns: np.ndarray) -> pl.DataFrame:
    """Fill ``target_return`` (each seed's mean greedy return) in the rows of ``update``."""
    seed_means = pl.DataFrame({"seed": seeds, "update": [update] * len(seeds), "_t": returns.mean(axis=1)})
    return (
        frame.join(seed_means, on=["seed", "update"], how="left")
        .with_columns(target_return=pl.coalesce("_t", "target_return"))
        .drop("_t")
    )


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
