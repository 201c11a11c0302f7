"""The planner protocol: what a planner is given once per update, and what it gives back."""

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.learner import Learner
from pdqn.metrics import Metric
from pdqn.rollout import Rollout

Metrics = dict[str, Array]


class Clock(eqx.Module):
    """Where training stands at this update: the update index and the schedules' values at it."""

    update: Int[Array, ""]
    epsilon: Float[Array, ""]
    """The behaviour policy's epsilon."""
    lr: Float[Array, ""]
    """The Q-network's learning rate (shared by real and imagined gradient steps)."""


class Planner(eqx.Module):
    """Abstract planner. Its knobs are static fields built once from the config (``from_config``); the data it
    keeps between updates (a world model's parameters, say) is a state that flows through :meth:`step`.

    Once per update, after the real-data update, the trainer calls ``step(learner, rollout, state, key,
    clock)``; the planner may train the learner further and returns it, its own new state and its metrics,
    exactly the names it declares in :attr:`metrics`.
    """

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray) -> Any: ...

    @abc.abstractmethod
    def step(
        self, learner: Learner, rollout: Rollout, state: Any, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, Any, Metrics]: ...

    @property
    @abc.abstractmethod
    def metrics(self) -> tuple[Metric, ...]: ...

    @property
    def needs_env_states(self) -> bool:
        """Whether the rollout must keep the real environment states (costs memory; off for PQN)."""
        return False


class NoPlanner(Planner):
    """PQN: the real-data update alone."""

    def init(self, key: PRNGKeyArray) -> None:
        return None

    def step(
        self, learner: Learner, rollout: Rollout, state: None, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, None, Metrics]:
        return learner, None, {}

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return ()
