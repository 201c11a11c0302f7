"""Stop signals: SIGINT, SIGTERM and SIGUSR2 become a flag that every wait on compiled work polls.

Importing this module does not start JAX's backend, so an entry point can listen to signals from its first
line, before a multi-process run is started.
"""

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax

POLL_SECONDS = 0.05


class StopSignals:
    """Turn the first SIGINT/SIGTERM/SIGUSR2 into a flag the loop polls; a second one acts at once.
    (SIGUSR2 is what SLURM sends ahead of a time limit with ``--signal=USR2@SECONDS``, as submitit asks.)"""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

    def __init__(self, at_once: Callable[[int], None] | None = None) -> None:
        """``at_once(signum)``: what a second signal does (an entry point ends the process there, so that a second
        Ctrl-C at any moment, teardown included, ends it with one line); None: the handler that was there before."""
        self.at_once = at_once
        self.received: int | None = None
        self.previous: dict[int, Any] = {}
        self.deferred = False
        """Multi-process: a signal does not abandon compiled work (the other processes take part in it); the
        host loop stops every process together at the next chunk boundary."""

    @property
    def stopping(self) -> bool:
        return self.received is not None and not self.deferred

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and self.at_once is not None:
            self.at_once(signum)
        self.received = signum
        if self.at_once is None:
            signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def wait(self, result: Any) -> bool:
        """Block until every array of ``result`` is computed; False as soon as a stop signal arrives."""
        leaves = [x for x in jax.tree.leaves(result) if isinstance(x, jax.Array)]
        while not all(x.is_ready() for x in leaves):  # pyright: ignore[reportAttributeAccessIssue] (untyped)
            if self.stopping:
                return False
            time.sleep(POLL_SECONDS)
        return not self.stopping

    def compile(self, fn: Any, *args: Any) -> tuple[Any, float] | None:
        """:func:`compiled` in a background thread; None if a stop signal arrives first."""
        from pdqn.train import compiled  # the trainer starts JAX's backend: not before a multi-process start-up

        return self.call(compiled, fn, *args)

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a background thread (abandoned on a stop), so that the main thread
        answers a stop signal while it runs; None if a stop signal arrives first."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = fn(*args, **kwargs)
            except BaseException as err:  # re-raised in the main thread
                box["error"] = err

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while thread.is_alive():
            if self.stopping:
                return None
            thread.join(POLL_SECONDS)
        if "error" in box:
            raise box["error"]
        return box["result"]
