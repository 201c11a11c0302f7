"""Host-side observers of a run (experiment trackers) and the wrapper that keeps a failing one from
stopping training."""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pdqn.config import Config
from pdqn.metrics import Metric


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What an observer is told when a run starts."""

    config: Config
    run_dir: Path
    metrics: tuple[Metric, ...]
    """The metric columns of every row :meth:`RunHooks.log` receives (besides seed, update and env_step)."""


class RunHooks:
    """Observers of a run. Every method may be a no-op.

    They are called between compiled chunks only; a hook that fails must not stop training, so the runner
    reports its error once and carries on without it (:class:`SafeHooks`).
    """

    def start(self, run: RunInfo) -> None:
        """Called once before the first chunk."""

    def log(self, rows: pl.DataFrame) -> None:
        """Called after each chunk with that chunk's new rows (one per seed and update)."""

    def finish(self, summary: dict[str, Any]) -> None:
        """Called once at the end with the run's summary."""

    def close(self) -> None:
        """Called always, also when training stops early."""


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
