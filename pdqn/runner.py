"""The host loop: compiled chunks of updates, greedy evaluations, the NaN guard, checkpoints, and when the
outputs (:mod:`pdqn.outputs`: metric rows, progress lines, summary, episode GIF) are made. All I/O happens
between chunks; the compiled step never calls back to Python.

Every wait on compiled work (compiling, a chunk, an evaluation) polls for SIGINT/SIGTERM, so a stop request is
answered within a fraction of a second: the newest completed state is checkpointed and
:class:`Interrupted` is raised (the work in flight is abandoned and redone on ``--resume``).

A multi-process run (:mod:`pdqn.devices`) cannot abandon work that the other processes take part in: each process
finishes its compiled work, and at every chunk boundary the processes agree on the chunk length (process 0's)
and on stopping (when any of them received a signal), so all of them checkpoint and stop at the same update.
"""

import dataclasses
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from pdqn import checkpoint
from pdqn.config import Config
from pdqn.devices import all_processes, barrier, gather, is_primary, seed_placement, to_host
from pdqn.hooks import RunHooks, RunInfo, SafeHooks
from pdqn.metrics import ENV_STEP, SEED, TARGET_RETURN, UPDATE, Metric
from pdqn.outputs import (
    ProgressLines,
    env_card,
    first_seed,
    metric_rows,
    run_tag,
    summarise,
    with_target_returns,
    write_episode_gif,
    write_metrics,
    write_summary,
)
from pdqn.rundir import METRICS_FILE, write_config
from pdqn.signals import StopSignals
from pdqn.state import TrainState
from pdqn.train import Trainer

CHUNK_SECONDS = 2.0
"""Wall-clock length a chunk is sized to (without ``--log-every``): the longest a stop request waits."""


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN/inf; the run stopped after keeping its last good checkpoint."""


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; the newest completed state was checkpointed before stopping (``saved``), or
    the run stopped before it had a state (its config is saved: resuming it starts it from the beginning)."""

    def __init__(self, signum: int, update: int, saved: bool = True):
        self.signum, self.update, self.saved = signum, update, saved
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} after update {update}; checkpoint saved"
            if saved
            else f"stopped by {name} before training started"
        )


# ---- host-side progress -----------------------------------------------------------------


@dataclasses.dataclass
class Progress:
    """Host-side state of a run between chunks (saved in each checkpoint's metadata)."""

    done: int = 0
    evaluated: int = 0
    """The last update whose greedy evaluation is recorded (0: none yet)."""
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
            "evaluated": self.evaluated,
            "rows": self.rows,
            "last_eval": self.last_eval,
            "update_seconds": self.update_seconds,
            "train_seconds": train_seconds,
        }

    def all_rows(self) -> pl.DataFrame:
        return pl.concat(self.frames, how="diagonal_relaxed")


def initial_eval_key(config: Config) -> jax.Array:
    return jax.random.PRNGKey(config.seed + 1_000_003)


def restore(config: Config, run_dir: Path, like: dict[str, Any], log: Any) -> tuple[Any, Any, Progress]:
    """The newest checkpoint (states, eval key) and the metric rows it covers (later rows are dropped from disk)."""
    ckpt = checkpoint.load_latest(run_dir, config, like)
    meta = ckpt.meta
    progress = Progress(
        done=ckpt.update,
        evaluated=int(meta.get("evaluated", ckpt.update)),
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
        kept = rows.filter(pl.col(UPDATE) <= ckpt.update)
        if kept.height != meta["rows"]:
            raise checkpoint.CheckpointError(
                f"{path} holds {kept.height} rows up to update {ckpt.update}, the checkpoint expects {meta['rows']}"
            )
        if kept.height != rows.height and is_primary():
            write_metrics(run_dir, kept)
        progress.frames.append(kept)
    print(f"{run_tag(config)} resuming from update {ckpt.update}/{config.num_updates}", file=log, flush=True)
    return ckpt.states, ckpt.eval_key, progress


# ---- the NaN guard ----------------------------------------------------------------------


def non_finite(
    metrics: Sequence[Metric], values: dict[str, np.ndarray], n: int, first_update: int, seeds: Sequence[int]
) -> str | None:
    """Describe the earliest NaN/inf among the guarded metrics of a chunk (None when all are finite)."""
    worst: tuple[int, int, str] | None = None
    for metric in metrics:
        if not metric.guarded:
            continue
        bad = ~np.isfinite(values[metric.name][:, :n])
        if metric.guarded_while is not None:
            bad &= values[metric.guarded_while][:, :n] > 0.5
        if bad.any():
            where = np.argwhere(bad)
            seed_index, step = where[np.argmin(where[:, 1])]
            candidate = (int(step), int(seed_index), metric.name)
            worst = candidate if worst is None or candidate[0] < worst[0] else worst
    if worst is None:
        return None
    step, seed_index, name = worst
    return f"{name} at update {first_update + step + 1} (seed {seeds[seed_index]})"


@eqx.filter_jit
def all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def params_finite(states: TrainState) -> bool:
    return bool(all_finite((states.learner.q_net, states.planner)))


# ---- the loop ---------------------------------------------------------------------------


def run(
    config: Config,
    run_dir: Path,
    log: Any = None,
    hooks: Sequence[RunHooks] = (),
    resume: bool = False,
    stop: StopSignals | None = None,
) -> dict[str, Any]:
    """Train ``config`` to completion, writing ``metrics.parquet`` and ``summary.json`` to ``run_dir``.

    With ``resume`` the run continues from the newest checkpoint in ``run_dir`` (metric rows
    beyond it are dropped; with none yet, from the start) and ends exactly as an uninterrupted run would.
    ``stop``: stop signals a caller already listens to (a stop that arrived before the run is answered at
    its start); by default the run listens from its own start. ``log``: where progress goes (None: ``sys.stderr``
    as it is when the run starts, so a redirected stderr gets it).
    """
    log = sys.stderr if log is None else log
    observers = SafeHooks(hooks, log)
    try:
        if stop is not None:
            return HostLoop(config, run_dir, log, observers, stop).run(resume)
        with StopSignals() as own:
            return HostLoop(config, run_dir, log, observers, own).run(resume)
    finally:
        observers.call("close")


class HostLoop:
    """One run's host side: the compiled programs, the states between chunks and the outputs."""

    def __init__(self, config: Config, run_dir: Path, log: Any, hooks: SafeHooks, stop: StopSignals):
        self.config, self.run_dir, self.log, self.hooks, self.stop = config, run_dir, log, hooks, stop
        self.trainer = Trainer(config)
        self.metrics = self.trainer.metrics
        self.tag = run_tag(config)
        self.placement = seed_placement(config.num_seeds, log)
        stop.deferred = self.placement.multiprocess
        self.started = time.perf_counter()
        self.chunk_updates = config.log_every or 1
        self.lines = ProgressLines(config, self.metrics, log)
        self.progress = Progress()
        self.states: Any = None

    def run(self, resume: bool) -> dict[str, Any]:
        if resume and not checkpoint.list_checkpoints(self.run_dir):
            print(f"{self.tag} no checkpoint yet: starting from update 0", file=self.log, flush=True)
            resume = False
        if resume:
            like = {"states": eqx.filter_eval_shape(self.trainer.init_seeds), "eval_key": initial_eval_key(self.config)}
            states, eval_key, self.progress = restore(self.config, self.run_dir, like, self.log)
        else:
            if is_primary():
                write_config(self.run_dir, self.config)
            states, eval_key = self.stop.call(self.trainer.init_seeds), initial_eval_key(self.config)
            if states is None:  # seconds of eager work for a large config: stoppable like a compile
                self.interrupted()
        self.states, self.eval_key = self.placement.put(states), self.placement.replicate(eval_key)
        print(f"{self.tag} env: {env_card(self.config)}", file=self.log, flush=True)
        compile_seconds = self.compile()
        barrier("compiled")  # a multi-process run's training time starts when every process has compiled
        self.hooks.call("start", RunInfo(self.config, self.run_dir, self.metrics + (TARGET_RETURN,)))
        self.started = time.perf_counter()
        while self.progress.done < self.config.num_updates or self.evaluation_owed():
            self.synchronise()
            if self.evaluation_owed():
                self.evaluate()
            else:
                self.train_chunk()
        if self.progress.checkpointed != self.progress.done:  # resumed from a final checkpoint whose outputs were lost
            self.save()
        self.states = gather(self.states)  # every process takes part; process 0 writes the policy
        return self.finish(compile_seconds)

    def synchronise(self) -> None:
        """Multi-process: run chunks of process 0's length, and stop all together once any process got a signal."""
        if not self.placement.multiprocess:
            return
        table = all_processes(np.asarray([self.stop.received or 0, self.chunk_updates], np.int32))
        self.chunk_updates = int(table[0, 1])
        if table[:, 0].max() > 0:
            self.stop.received = self.stop.received or int(table[:, 0].max())
            self.interrupted()

    def compile(self) -> float:
        """Compile the chunk and the evaluation (interruptibly); their compile seconds."""
        chunk = self.stop.compile(self.trainer.run_chunk, self.states, self.placement.replicate(jnp.asarray(1, jnp.int32)))
        if chunk is None:
            self.interrupted()
        evaluate = self.stop.compile(self.trainer.evaluate, self.states, self.eval_key)
        if evaluate is None:
            self.interrupted()
        (self.chunk, chunk_seconds), (self.evaluate_fn, eval_seconds) = chunk, evaluate
        print(f"{self.tag} compiled in {chunk_seconds + eval_seconds:.1f}s", file=self.log, flush=True)
        return chunk_seconds + eval_seconds

    def next_stop(self) -> int:
        """The next update that must end a chunk: an evaluation, a checkpoint, or the end."""
        config, done = self.config, self.progress.done
        stops = [(done // config.eval_interval + 1) * config.eval_interval, config.num_updates]
        if config.checkpoint.every is not None:
            stops.append((done // config.checkpoint.every + 1) * config.checkpoint.every)
        return min(stops)

    def evaluation_owed(self) -> bool:
        done, config = self.progress.done, self.config
        at_point = done % config.eval_interval == 0 or done == config.num_updates
        return done > 0 and at_point and self.progress.evaluated < done

    def train_chunk(self) -> None:
        """One compiled chunk: the NaN guard, the new rows, then (unless an evaluation is owed first) the
        trackers, a checkpoint if due and a progress line."""
        done = self.progress.done
        n = min(self.chunk_updates, self.next_stop() - done, self.config.chunk_size)
        tick = time.perf_counter()
        new_states, values = self.chunk(self.states, self.placement.replicate(jnp.asarray(n, jnp.int32)))
        if not self.stop.wait((new_states, values)):
            self.interrupted()
        host = {k: np.asarray(v) for k, v in gather(values).items()}
        seconds = time.perf_counter() - tick
        self.progress.update_seconds += seconds
        self.guard(host, n, new_states)
        self.states = self.placement.put(new_states)
        self.progress.done = done + n
        rows = metric_rows(host, n, done, self.config.seeds, self.metrics)
        self.progress.frames.append(rows)
        self.write_rows()
        self.hooks.call("log", rows)
        if not self.config.log_every:
            self.chunk_updates = max(1, int(CHUNK_SECONDS * n / max(seconds, 1e-9)))
        if not self.evaluation_owed():
            self.after_rows(done)

    def evaluate(self) -> None:
        """The greedy evaluation owed at this update; its returns fill the rows' ``target_return``."""
        eval_key, key = jax.random.split(self.eval_key)
        returns = self.evaluate_fn(self.states, key)
        if not self.stop.wait(returns):
            self.interrupted()
        host = to_host(returns)
        done, seeds = self.progress.done, self.config.seeds
        self.eval_key = eval_key
        self.progress.evaluated = done
        self.progress.last_eval = host.astype(np.float64).tolist()
        self.progress.frames[-1] = with_target_returns(self.progress.frames[-1], seeds, done, host)
        self.write_rows()
        evaluated = self.progress.frames[-1].filter(pl.col(UPDATE) == done)
        self.hooks.call("log", evaluated.select(SEED, UPDATE, ENV_STEP, TARGET_RETURN.name))
        self.after_rows(self.progress.checkpointed, force_line=True)

    def after_rows(self, before: int, force_line: bool = False) -> None:
        """Checkpoint if one is due since update ``before``, and print a progress line now and then."""
        done, config = self.progress.done, self.config
        every = config.eval_interval if config.checkpoint.every is None else config.checkpoint.every
        if done // every > max(before, 0) // every or done == config.num_updates:
            self.save()
        if self.lines.due(force=force_line or done == config.num_updates):
            steps = done * config.env_steps_per_update * config.num_seeds
            rate = steps / max(self.progress.update_seconds, 1e-9)
            self.lines.show(self.progress.all_rows(), rate, self.progress.last_target)

    def guard(self, host: dict[str, np.ndarray], n: int, new_states: TrainState) -> None:
        """Stop at the last good state if a guarded metric or a parameter is not finite."""
        done = self.progress.done
        problem = non_finite(self.metrics, host, n, done, self.config.seeds)
        if problem is None and not params_finite(new_states):
            problem = f"network parameters after updates {done + 1}-{done + n}"
        if problem is not None:
            if self.progress.checkpointed != done:
                self.save()
            raise NonFiniteError(
                f"non-finite {problem}; stopped, last good checkpoint at update {done} in "
                f"{checkpoint.checkpoint_dir(self.run_dir)}"
            )

    def write_rows(self) -> None:
        if is_primary():
            write_metrics(self.run_dir, self.progress.all_rows())

    def save(self) -> None:
        states, eval_key = gather((self.states, self.eval_key))  # every process takes part; process 0 writes
        if is_primary():
            meta = self.progress.meta(self.progress.train_seconds + time.perf_counter() - self.started)
            checkpoint.save_checkpoint(self.run_dir, self.config, states, eval_key, meta)
        self.progress.checkpointed = self.progress.done

    def write_episode_gif(self) -> None:
        """The first seed's final policy plays ``episode.gif`` (:func:`pdqn.outputs.write_episode_gif`)."""
        if not self.config.episode_gif:
            return
        # every process gathers; process 0 plays, acting as the run's evaluations do (the planner's state only then)
        acts = self.trainer.acts_beyond_q(evaluation=True)
        q_net, planner_state = first_seed((self.states.learner.q_net, self.states.planner if acts else None))
        acting_q = self.trainer.acting_q(planner_state, evaluation=True)
        if is_primary() and not write_episode_gif(self.config, self.run_dir, q_net, self.stop.call, self.log, acting_q=acting_q):
            self.interrupted()

    def interrupted(self) -> NoReturn:
        """Checkpoint the newest completed state (the work in flight is abandoned) and stop."""
        signum = self.stop.received or signal.SIGINT
        if self.states is None:
            raise Interrupted(signum, 0, saved=False)
        if self.progress.checkpointed != self.progress.done:
            self.save()
        raise Interrupted(signum, self.progress.done)

    def finish(self, compile_seconds: float) -> dict[str, Any]:
        progress = self.progress
        train_seconds = progress.train_seconds + time.perf_counter() - self.started
        seconds = {"compile": compile_seconds, "train": train_seconds, "update": progress.update_seconds}
        final_eval = np.asarray(progress.last_eval, np.float64)
        summary = summarise(self.config, progress.all_rows(), final_eval, seconds)
        if is_primary():
            checkpoint.save_policy(self.run_dir, self.config, self.states)
        self.write_episode_gif()
        if is_primary():
            write_summary(self.run_dir, summary)
        self.hooks.call("finish", summary)
        return summary
