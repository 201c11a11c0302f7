"""Several devices and hosts: seeds sharded over a one-axis mesh, multi-host start-up.

With more than one visible device and ``num_seeds`` divisible by the device count, every
leaf of the seed-stacked training state is placed with
``NamedSharding(Mesh(jax.devices(), ("seeds",)), PartitionSpec("seeds"))``; XLA then runs
each device's seeds on that device (the vmapped step has no cross-seed communication).
"""

import os
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

SEED_AXIS = "seeds"

# Environment variables that mean "this process is one of several in a cluster job".
_CLUSTER_VARS = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")


def cluster_job() -> bool:
    """True when the usual multi-host variables are present (explicit coordinator, or a
    SLURM job with more than one task, or an Open MPI job with more than one rank)."""
    if any(os.environ.get(name) for name in _CLUSTER_VARS):
        return True
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and os.environ.get("SLURM_JOB_ID"):
        return True
    return int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1


def maybe_initialize_distributed(log: Any = None) -> bool:
    """Call ``jax.distributed.initialize()`` (before any other JAX call) in a cluster job."""
    if not cluster_job():
        return False
    jax.distributed.initialize()
    if log is not None:
        print(
            f"note: multi-host run, process {jax.process_index()} of {jax.process_count()}, "
            f"{jax.device_count()} devices in all",
            file=log,
            flush=True,
        )
    return True


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


def to_host(x: Any) -> np.ndarray:
    """A (possibly sharded, possibly multi-host) array as one NumPy array on this host."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


class SeedPlacement:
    """Where seed-stacked arrays live: one device (``sharding is None``) or sharded over seeds."""

    def __init__(self, sharding: NamedSharding | None):
        self.sharding = sharding

    @property
    def sharded(self) -> bool:
        return self.sharding is not None

    def put(self, tree: Any) -> Any:
        """Place every array leaf (leading axis = seeds); a no-op on one device."""
        if self.sharding is None:
            return tree
        sharding = self.sharding
        return jax.tree.map(lambda x: jax.device_put(x, sharding) if eqx.is_array(x) else x, tree)


def seed_placement(num_seeds: int, log: Any = None, devices: list[Any] | None = None) -> SeedPlacement:
    """Shard seeds over all visible devices when their count divides ``num_seeds``."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return SeedPlacement(None)
    if num_seeds % len(devices):
        if log is not None:
            print(
                f"note: {num_seeds} seeds do not divide over {len(devices)} devices; running on one device",
                file=log,
                flush=True,
            )
        return SeedPlacement(None)
    mesh = Mesh(np.asarray(devices), (SEED_AXIS,))
    if log is not None:
        print(f"note: {num_seeds} seeds sharded over {len(devices)} devices", file=log, flush=True)
    return SeedPlacement(NamedSharding(mesh, PartitionSpec(SEED_AXIS)))
