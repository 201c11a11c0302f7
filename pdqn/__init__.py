"""pdqn: PQN and its Dyna-style extension PDQN for MinAtar, in JAX and Equinox.

The public names (``pdqn.Trainer``, ``pdqn.Config``, ...) are listed in :mod:`pdqn._api` and imported on first
use: importing gymnax creates arrays, which starts JAX's backend, and a multi-process run must call
``jax.distributed.initialize()`` before that happens (``pdqn.experiments.minatar`` does, after parsing its flags).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pdqn._api import *  # noqa: F403
    from pdqn._api import __all__


def __getattr__(name: str) -> Any:
    _api = importlib.import_module("pdqn._api")
    if name == "__all__" or name in _api.__all__:
        return getattr(_api, name)
    raise AttributeError(f"module 'pdqn' has no attribute {name!r}")
