"""Shared fixtures. The suite is bound by XLA compiling its tiny programs (running them takes milliseconds), so a
persistent XLA cache makes a program compiled once (also in CLI subprocesses, which inherit it) cheap to
compile again; CI starts it cold, so tests that train share configs where they can (same config, same program).
(Compiling without LLVM's optimisations was tried and rejected: two programs that shard the same seeds
differently then no longer agree bitwise on the schedules' epsilon and learning rate.)
"""

import os
import tempfile
from pathlib import Path

_CACHE = Path(os.environ.get("PDQN_TEST_JAX_CACHE", Path(tempfile.gettempdir()) / "pdqn-test-jax-cache"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

from pdqn.config import Config, PlanningConfig, PQNConfig  # noqa: E402
from pdqn.config_migration import build  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def tiny_config(**overrides) -> Config:
    """A config that compiles and runs in seconds: few envs, few steps, tiny eval."""
    pqn = dict(num_envs=8, num_steps=8, num_minibatches=4, num_epochs=1)
    pqn.update(overrides.pop("pqn", {}))
    dyna = tiny_planning(overrides.pop("dyna", {}))
    base = dict(
        env="breakout",
        total_timesteps=64 * 6,
        eval_envs=4,
        eval_every=0.5,
        pqn=PQNConfig(**pqn),
        dyna=dyna,
    )
    base.update(overrides)
    return Config(**base)


TINY_PLANNING = dict(
    planning_delay=0,
    counterfactual=dict(minibatches=2),
    dyna=dict(num_rollouts=16, horizon=2, minibatches=2),
    value_expansion=dict(horizon=2, minibatches=2),
    learned=dict(minibatches=2, hidden=32),
)
"""Tiny planners and model: ``tiny_config(dyna=...)`` overrides options of it, a group's options one by one."""


def tiny_planning(overrides: dict):
    planning = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY_PLANNING.items()}
    for key, value in overrides.items():
        if isinstance(value, dict):
            planning[key] = planning.get(key, {}) | value
        else:
            planning[key] = value
    return build(PlanningConfig, planning, "dyna.")


def tiny_planning_flags() -> list[str]:
    """:data:`TINY_PLANNING` as command-line flags: a CLI run with them is the same program as ``tiny_config``'s."""
    flag = lambda *names: "--" + ".".join(n.replace("_", "-") for n in ("dyna", *names))  # noqa: E731
    flags = []
    for key, value in TINY_PLANNING.items():
        pairs = value.items() if isinstance(value, dict) else [(None, value)]
        for option, setting in pairs:
            flags += [flag(key) if option is None else flag(key, option), str(setting)]
    return flags


@pytest.fixture
def tiny() -> type[Config]:
    return tiny_config  # type: ignore[return-value]


def cli_env() -> dict[str, str]:
    """Environment for CLI subprocesses: the repo importable, the shared compile cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    return env


def stop_process_group(proc, timeout: float = 30.0) -> None:
    """Stop a server started with ``start_new_session=True`` and every process it spawned.

    ``aim up`` serves through uvicorn children: terminating the CLI alone would leave them running.
    """
    import signal
    import subprocess
    import time

    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    for _ in range(100):  # whatever is left of the group (the leader, or children it started late) dies too
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    proc.wait(timeout=5)


@pytest.fixture
def no_training(monkeypatch):
    """For an entry point called in-process with input it must refuse: should it go on to train (a default-sized
    run) or to join a multi-process run (waiting for processes that never come), the test fails at once."""
    import pdqn.runner
    from pdqn.experiments import minatar

    def refuse(*args, **kwargs):
        raise AssertionError("the command went on to train or to start a multi-process run instead of refusing")

    monkeypatch.setattr(pdqn.runner, "run", refuse)
    monkeypatch.setattr(minatar, "start_distributed", refuse)
