"""Several devices and processes: seeds sharded over a one-axis mesh, and the start-up of a multi-process run.

With more than one device and ``num_seeds`` divisible by the device count, every leaf of the seed-stacked
training state is placed with ``NamedSharding(Mesh(devices, ("seeds",)), PartitionSpec("seeds"))``; XLA then
runs each device's seeds on that device (the vmapped step has no cross-seed communication).

A multi-process run (``jax.distributed``) spans the devices of every process: each process builds the whole
state and feeds only its own rows (``jax.make_array_from_process_local_data``), values every process shares
(the evaluation key, a chunk's length) are replicated, and whatever the host needs (metrics, evaluations,
checkpoints) is gathered with ``multihost_utils.process_allgather``, a collective every process takes part in.
Process 0 alone writes files.

The settings of a multi-process run are resolved in one place, :func:`resolve_distributed`, and the run is
started by :func:`start_distributed`, which must come before anything starts JAX's backend.
"""

import contextlib
import dataclasses
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pdqn.config import ConfigError, DistributedConfig

SEED_AXIS = "seeds"
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
DISTRIBUTED_FLAGS = ("--distributed.coordinator", "--distributed.num-processes", "--distributed.process-id")


class DistributedError(ValueError):
    """Multi-process settings that cannot work (reported before anything is compiled)."""


# ---- multi-process start-up ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Launch:
    """The resolved settings of a multi-process run."""

    coordinator: str | None
    """None: JAX's cluster detection finds it (SLURM, Open MPI)."""
    num_processes: int
    process_id: int
    timeout: int
    source: str
    """Where the settings came from, for the start-up note."""


def detect_cluster(environ: Mapping[str, str]) -> tuple[str, int, int] | None:
    """``(name, processes, process id)`` of a SLURM step or Open MPI job JAX's cluster detection would use."""
    slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
    try:
        if all(name in environ for name in slurm):
            return "SLURM", int(environ["SLURM_NTASKS"]), int(environ["SLURM_PROCID"])
        if "OMPI_MCA_orte_hnp_uri" in environ:
            return "Open MPI", int(environ["OMPI_COMM_WORLD_SIZE"]), int(environ["OMPI_COMM_WORLD_RANK"])
    except (KeyError, ValueError):
        return None
    return None


def _env_int(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise DistributedError(f"{name}={text!r} is invalid: must be an integer") from None


def resolve_distributed(flags: DistributedConfig, environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The multi-process settings: each from its flag, else its JAX_* variable, else the detected cluster;
    None for a one-process run. :class:`DistributedError` for settings that cannot work."""
    coordinator = flags.coordinator or environ.get(ENV_COORDINATOR, "").strip() or None
    count, count_from = flags.num_processes, DISTRIBUTED_FLAGS[1]
    if count is None:
        count, count_from = _env_int(environ, ENV_NUM_PROCESSES), ENV_NUM_PROCESSES
    index, index_from = flags.process_id, DISTRIBUTED_FLAGS[2]
    if index is None:
        index, index_from = _env_int(environ, ENV_PROCESS_ID), ENV_PROCESS_ID
    given = (coordinator, count, index) != (None, None, None)
    cluster = detect_cluster(environ)
    if cluster is not None and cluster[1] > 1:
        if count is None:
            count, count_from = cluster[1], f"{cluster[0]}'s task count"
        if index is None:
            index, index_from = cluster[2], f"{cluster[0]}'s task id"
    elif not given:
        return None
    else:
        cluster = None
    missing = [flag for flag, value in zip(DISTRIBUTED_FLAGS, (coordinator or cluster, count, index)) if value is None]
    if missing or count is None or index is None:
        raise DistributedError(
            f"a multi-process run needs {', '.join(DISTRIBUTED_FLAGS)} (or {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, "
            f"{ENV_PROCESS_ID}); missing: {', '.join(missing)}"
        )
    if count < 1:
        raise DistributedError(f"{count} processes ({count_from}) is invalid: must be >= 1")
    if not 0 <= index < count:
        raise DistributedError(f"process id {index} ({index_from}) is invalid: must be in 0..{count - 1} for {count} processes")
    try:
        DistributedConfig(coordinator=coordinator)
    except ConfigError as err:
        raise DistributedError(str(err) + ("" if flags.coordinator else f" (from {ENV_COORDINATOR})")) from None
    if count == 1:
        return None
    source = cluster[0] if cluster is not None and not given else "flags/environment" + (f" and {cluster[0]}" if cluster else "")
    return Launch(coordinator, count, index, flags.timeout, source)


def check_seeds(launch: Launch | None, num_seeds: int) -> None:
    """Every process must hold whole seeds: ``num_seeds`` a multiple of the process count."""
    if launch is not None and num_seeds % launch.num_processes:
        raise DistributedError(
            f"num_seeds={num_seeds} does not divide over {launch.num_processes} processes; "
            f"use a multiple of {launch.num_processes} seeds"
        )


def start_distributed(launch: Launch, log: Any, on_timeout: Callable[[str], object]) -> None:
    """``jax.distributed.initialize`` with ``launch`` (before anything starts JAX's backend).

    JAX ends the process with a fatal error when not every process connects in time; ``on_timeout(message)``
    is called first, from a watchdog thread, after ``launch.timeout`` seconds (it should end the process).
    It is kept for the rest of the run: a collective that waits more than :data:`BARRIER_SECONDS` for the other
    processes calls it too.
    """
    global _on_stall
    where = launch.coordinator or "the detected coordinator"
    message = (
        f"process {launch.process_id} of {launch.num_processes}: not every process reached the coordinator "
        f"{where} within {launch.timeout}s (is every process started, and the address reachable from each?)"
    )
    watchdog = threading.Timer(launch.timeout, on_timeout, args=(message,))
    watchdog.daemon = True
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # cross-process collectives on CPU
    # JAX's preemption service would take SIGTERM for itself: the run's own stop signals must see it.
    jax.config.update("jax_enable_preemption_service", False)
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address=launch.coordinator,
            num_processes=launch.num_processes,
            process_id=launch.process_id,
            initialization_timeout=launch.timeout + 30,
        )
        # The first collective sets up the CPU collectives' connections (gloo), and gives up when the other
        # processes are more than 30 s away; later ones wait. The processes have just met at the coordinator:
        # make that first one now, not at a later collective that they may reach minutes apart.
        multihost_utils.sync_global_devices("pdqn-started")
    except Exception as err:  # JaxRuntimeError (e.g. the port is taken), RuntimeError (JAX already started)
        text = " ".join(str(err).split()) or type(err).__name__
        raise DistributedError(f"cannot start process {launch.process_id} of {launch.num_processes} at {where}: {text}") from None
    finally:
        watchdog.cancel()
    _on_stall = on_timeout
    print(
        f"note: process {jax.process_index()} of {jax.process_count()} ({launch.source}), "
        f"{jax.local_device_count()} of {jax.device_count()} devices here",
        file=log,
        flush=True,
    )


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


# ---- collectives ------------------------------------------------------------------------------

BARRIER_SECONDS = 3600.0
"""The longest a collective waits for the other processes (one compiling while another found the program in the
persistent cache, process 0 writing a checkpoint) before the run is abandoned."""
_barriers = itertools.count()
"""Every process makes the same sequence of barriers, so the n-th one has the same name everywhere."""
_on_stall: Callable[[str], object] | None = None
"""What :func:`start_distributed` was told to call on a time-out (it ends the process); None before it ran."""


@contextlib.contextmanager
def waiting_for_all(name: str, timeout: float = BARRIER_SECONDS) -> Iterator[None]:
    """Bound the wait of the collective ``name`` for the other processes: past ``timeout`` seconds the run is
    abandoned through :func:`start_distributed`'s ``on_timeout`` (a thread cannot interrupt a collective, only
    end the process).

    Without it (JAX started by a caller of its own) the collective waits as long as JAX lets it. A process that
    dies is noticed sooner, by the heartbeats of JAX's coordination service, which then ends every process."""
    on_stall = _on_stall
    if on_stall is None or jax.process_count() == 1:
        yield
        return
    message = (
        f"process {jax.process_index()} of {jax.process_count()}: not every process reached the collective "
        f"{name!r} within {timeout:g}s (did another process stop or hang?)"
    )
    watchdog = threading.Timer(timeout, on_stall, args=(message,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


def barrier(name: str, timeout: float = BARRIER_SECONDS) -> None:
    """Wait until every process reaches this barrier (a no-op in a one-process run); past ``timeout`` seconds
    the run is abandoned (:func:`waiting_for_all`).

    A collective of its own (``multihost_utils.sync_global_devices``), which also checks that every process
    reached the barrier of the same name."""
    if jax.process_count() == 1:
        return
    unique = f"pdqn-{name}-{next(_barriers)}"
    with waiting_for_all(unique, timeout):
        multihost_utils.sync_global_devices(unique)


def stop_distributed() -> None:
    """Leave a multi-process run: waits (JAX's shutdown barrier) until every process has finished its work, so
    none is reported dead while process 0 still writes the outputs."""
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def _spans_processes(x: Any) -> bool:
    return isinstance(x, jax.Array) and not x.is_fully_addressable


def to_host(x: Any) -> np.ndarray:
    """A (possibly sharded, possibly multi-process) array as one NumPy array on this host (a collective when
    the array spans processes: every process must call it)."""
    if _spans_processes(x):
        with waiting_for_all("to-host"):
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def gather(tree: Any) -> Any:
    """``tree`` with every leaf that spans processes replaced by its NumPy copy (a collective when there is
    one: every process must call it); other leaves are kept as they are."""
    leaves, treedef = jax.tree.flatten(tree)
    spread = [i for i, x in enumerate(leaves) if _spans_processes(x)]
    if spread:
        with waiting_for_all("gather"):
            copies = multihost_utils.process_allgather([leaves[i] for i in spread], tiled=True)
        for i, copy in zip(spread, copies):
            leaves[i] = np.asarray(copy)
    return jax.tree.unflatten(treedef, leaves)


def all_processes(value: np.ndarray) -> np.ndarray:
    """``value`` of every process, stacked along a new leading axis (a collective)."""
    with waiting_for_all("all-processes"):
        return np.asarray(multihost_utils.process_allgather(np.asarray(value)))


# ---- seed placement ---------------------------------------------------------------------------


class SeedPlacement:
    """Where seed-stacked arrays live: one device (``sharding is None``) or sharded over seeds."""

    def __init__(self, sharding: NamedSharding | None):
        self.sharding = sharding
        self.multiprocess = sharding is not None and len({d.process_index for d in sharding.device_set}) > 1

    @property
    def sharded(self) -> bool:
        return self.sharding is not None

    def put(self, tree: Any) -> Any:
        """Place every array leaf (leading axis = seeds); a no-op on one device."""
        if self.sharding is None:
            return tree
        return jax.tree.map(lambda x: self._put(x) if eqx.is_array(x) else x, tree)

    def _put(self, x: Any) -> jax.Array:
        sharding = self.sharding
        assert sharding is not None
        if isinstance(x, jax.Array) and x.sharding.is_equivalent_to(sharding, x.ndim):
            return x  # already placed (a compiled chunk's output)
        if not self.multiprocess or (isinstance(x, jax.Array) and not x.is_fully_addressable):
            return jax.device_put(x, sharding)
        host = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, host[self.local_rows(host.shape)], host.shape)

    def local_rows(self, shape: tuple[int, ...]) -> slice:
        """The seeds (rows) this process's devices hold."""
        assert self.sharding is not None
        rows = [index[0] for index in self.sharding.addressable_devices_indices_map(shape).values() if index]
        start = min(row.start or 0 for row in rows)
        stop = max(shape[0] if row.stop is None else row.stop for row in rows)
        return slice(start, stop)

    def replicate(self, x: Any) -> Any:
        """A value every process holds alike (the evaluation key, a chunk's length), as one array over all
        processes' devices; unchanged in a one-process run."""
        if not self.multiprocess:
            return x
        assert self.sharding is not None
        host = np.asarray(x)
        replicated = NamedSharding(self.sharding.mesh, PartitionSpec())
        return jax.make_array_from_process_local_data(replicated, host, host.shape)


def seed_placement(num_seeds: int, log: Any = None, devices: list[Any] | None = None) -> SeedPlacement:
    """Shard seeds over all devices (of every process) when their count divides ``num_seeds``.

    One process falls back to one device when it does not; a multi-process run raises :class:`DistributedError`.
    """
    devices = sorted(jax.devices() if devices is None else devices, key=lambda d: (d.process_index, d.id))
    if len(devices) <= 1:
        return SeedPlacement(None)
    processes = len({d.process_index for d in devices})
    if num_seeds % len(devices):
        if processes > 1:
            raise DistributedError(
                f"num_seeds={num_seeds} does not divide over the {len(devices)} devices of {processes} processes; "
                f"use a multiple of {len(devices)} seeds"
            )
        if log is not None:
            print(
                f"note: {num_seeds} seeds do not divide over {len(devices)} devices; running on one device",
                file=log,
                flush=True,
            )
        return SeedPlacement(None)
    mesh = Mesh(np.asarray(devices), (SEED_AXIS,))
    if log is not None:
        where = f" of {processes} processes" if processes > 1 else ""
        print(f"note: {num_seeds} seeds sharded over {len(devices)} devices{where}", file=log, flush=True)
    return SeedPlacement(NamedSharding(mesh, PartitionSpec(SEED_AXIS)))
