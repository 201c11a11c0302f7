"""What a run leaves behind and shows: its metric rows (``metrics.parquet``), the progress lines, the env card,
the summary (``summary.json``) and the end-of-run ``episode.gif``.

The host loop (:mod:`pdqn.runner`) decides when each is made and which process writes it (process 0); this
module only makes them.
"""

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
import polars as pl

from pdqn.config import Config
from pdqn.devices import to_host
from pdqn.envs import make_env
from pdqn.metrics import BEHAVIOUR_RETURN, ENV_STEP, SEED, TARGET_RETURN, UPDATE, Metric
from pdqn.render import write_policy_gif
from pdqn.rollout import ActingQ
from pdqn.rundir import EPISODE_GIF, METRICS_FILE, SUMMARY_FILE, config_dict, first_line, write_atomic
from pdqn.state import TrainState

PROGRESS_SECONDS = 10.0
"""At most one progress line per this many seconds (and one at each evaluation and at the end)."""


def run_tag(config: Config) -> str:
    """``[alg env]``: how every line a run prints begins."""
    return f"[{config.alg} {config.env}]"


# ---- metric rows ------------------------------------------------------------------------


def metric_rows(
    values: dict[str, np.ndarray], n: int, first_update: int, seeds: Sequence[int], metrics: Sequence[Metric]
) -> pl.DataFrame:
    """One row per seed and update from a chunk's ``[seed, update]`` metric arrays, in declaration order; rows in
    (update, seed) order, so that a run's rows do not depend on how its updates were cut into chunks (by time)."""
    frames = []
    for i, seed in enumerate(seeds):
        columns: dict[str, Any] = {
            SEED: np.full(n, seed, np.int64),
            UPDATE: np.arange(first_update + 1, first_update + n + 1, dtype=np.int64),
            ENV_STEP: values[ENV_STEP][i, :n].astype(np.int64),
        }
        for metric in metrics:
            columns[metric.name] = values[metric.name][i, :n].astype(np.float64)
        columns[TARGET_RETURN.name] = np.full(n, np.nan)
        frames.append(pl.DataFrame(columns))
    return pl.concat(frames).sort(UPDATE, SEED, maintain_order=True)


def with_target_returns(frame: pl.DataFrame, seeds: Sequence[int], update: int, returns: np.ndarray) -> pl.DataFrame:
    """Fill ``target_return`` (each seed's mean greedy return) in the rows of ``update``."""
    name = TARGET_RETURN.name
    seed_means = pl.DataFrame({SEED: list(seeds), UPDATE: [update] * len(seeds), "_t": returns.mean(axis=1)})
    return frame.join(seed_means, on=[SEED, UPDATE], how="left").with_columns(
        pl.coalesce("_t", name).alias(name)
    ).drop("_t")


def write_metrics(run_dir: Path, rows: pl.DataFrame) -> None:
    """``RUN_DIR/metrics.parquet``, rewritten whole (atomically) after every chunk."""
    write_atomic(run_dir / METRICS_FILE, rows.write_parquet)


# ---- progress lines ---------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(
    config: Config, metrics: Sequence[Metric], frame: pl.DataFrame, steps_per_second: float, last_target: float
) -> str:
    """``[alg env] steps | speed | ETA | behaviour | greedy | <each metric declared with show>``."""
    update = int(frame[UPDATE].max())  # type: ignore[arg-type]
    steps = update * config.env_steps_per_update
    total = config.num_updates * config.env_steps_per_update
    remaining = (total - steps) * config.num_seeds / steps_per_second if steps_per_second > 0 else math.inf
    recent = frame.filter(pl.col(UPDATE) > update - max(1, config.num_updates // 50))
    behaviour = recent[BEHAVIOUR_RETURN.name].drop_nans().mean()
    parts = [
        f"{run_tag(config)} {steps:,}/{total:,} steps ({100 * steps / total:.0f}%)",
        f"{steps_per_second:,.0f} steps/s",
        f"ETA {format_duration(remaining)}",
        f"behaviour {behaviour if behaviour is not None else float('nan'):.2f}",
        f"greedy {last_target:.2f}" if math.isfinite(last_target) else "greedy – (not evaluated yet)",
    ]
    latest = frame.filter(pl.col(UPDATE) == update)
    for metric in metrics:
        if metric.show is not None:
            label, spec = metric.show
            value = latest[metric.name].drop_nans().mean()  # NaN while a metric waits (e.g. planning's delay)
            parts.append(f"{label} {value:{spec}}" if isinstance(value, float) and math.isfinite(value) else f"{label} –")
    return " | ".join(parts)


class ProgressLines:
    """When to print a progress line: at most one per :data:`PROGRESS_SECONDS`, unless one is forced."""

    def __init__(self, config: Config, metrics: Sequence[Metric], log: Any):
        self.config, self.metrics, self.log = config, metrics, log
        self.last_line = -math.inf

    def due(self, force: bool = False) -> bool:
        """Whether a line is due now (it is then counted as printed)."""
        now = time.perf_counter()
        if not force and now - self.last_line < PROGRESS_SECONDS:
            return False
        self.last_line = now
        return True

    def show(self, rows: pl.DataFrame, steps_per_second: float, last_target: float) -> None:
        print(progress_line(self.config, self.metrics, rows, steps_per_second, last_target), file=self.log, flush=True)


# ---- env card and summary ---------------------------------------------------------------


def env_card(config: Config) -> str:
    """The environments a run trains and evaluates on, in one line (printed at the start, kept in the summary)."""
    env = make_env(config.env, config.pqn.num_envs, config.frame_stack, sticky_actions=config.sticky_actions)
    return f"{env.card}; {config.pqn.num_envs} training envs per seed, {config.eval_envs} greedy evaluation envs"


def summarise(config: Config, rows: pl.DataFrame, final_eval: np.ndarray, seconds: dict[str, float]) -> dict[str, Any]:
    """The run's headline figures; the behaviour return is the mean over the last 10 % of updates.
    ``seconds`` holds ``compile``, ``train`` and ``update`` seconds."""
    total_steps = config.num_updates * config.env_steps_per_update * config.num_seeds
    last_updates = rows.filter(pl.col(UPDATE) > config.num_updates - max(1, config.num_updates // 10))
    name = BEHAVIOUR_RETURN.name
    behaviour = (
        last_updates.with_columns(pl.col(name).fill_nan(None)).group_by(SEED).agg(pl.col(name).mean()).sort(SEED)
    )[name].to_list()
    return {
        "alg": config.alg,
        "env": config.env,
        "total_timesteps": config.total_timesteps,
        "env_steps_per_seed": config.num_updates * config.env_steps_per_update,
        "num_seeds": config.num_seeds,
        "seeds": config.seeds,
        "compile_seconds": seconds["compile"],
        "train_seconds": seconds["train"],
        "update_seconds": seconds["update"],
        "steps_per_second": total_steps / seconds["train"],
        "final_behaviour_return": [float("nan") if v is None else v for v in behaviour],
        "final_target_return": final_eval.mean(axis=1).tolist(),
        "final_target_episodes": int(final_eval.shape[1]),
        "jax_backend": jax.default_backend(),
        "env_card": env_card(config),
        "config": config_dict(config),
    }


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """``RUN_DIR/summary.json``, written last: its presence marks a finished run."""
    write_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))


# ---- the episode GIF --------------------------------------------------------------------


def first_seed(tree: Any) -> Any:
    """The first seed's slice of a seed-stacked pytree as host arrays (a collective when the states span processes:
    every process must call it)."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree.map(lambda x: to_host(x)[0], arrays), static)


def write_episode_gif(
    config: Config, run_dir: Path, q_net: Any, call: Callable[..., Any], log: Any, *, acting_q: ActingQ | None = None
) -> bool:
    """``RUN_DIR/episode.gif``: one greedy episode of ``q_net`` (see :func:`pdqn.render.write_policy_gif`), acting as
    the run's evaluations do (``acting_q``: the veto or search, or None), played through ``call``
    (:meth:`pdqn.signals.StopSignals.call`: None when a stop signal came first).

    It is a picture, not a result: a failure is one warning line. False when a stop signal ended it."""
    path = run_dir / EPISODE_GIF
    try:
        played = call(
            write_policy_gif, path, env_name=config.env, frame_stack=config.frame_stack, q_net=q_net,
            key=config.seed, sticky_actions=config.sticky_actions, acting_q=acting_q,
        )  # fmt: skip
    except Exception as err:
        print(f"{run_tag(config)} warning: {path} not written ({type(err).__name__}: {first_line(err)})", file=log)
        return True
    return played is not None
