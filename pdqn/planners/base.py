"""The planner protocol: what a planner is given once per update, and what it gives back."""

import abc
import dataclasses
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.learner import Learner, QFit
from pdqn.metrics import Metric
from pdqn.models import WorldModel
from pdqn.rollout import Rollout

Metrics = dict[str, Array]


@dataclasses.dataclass(frozen=True)
class Context:
    """What a planner is told about the learner it trains, besides its own config: the few facts it needs."""

    gamma: float
    """The learner's discount."""
    td_lambda: float
    """Lambda of the learner's Q(lambda) targets."""
    minibatch_size: int
    """Rows per real minibatch (a planner's gradient step is as large)."""
    num_actions: int
    delay: int
    """Updates before planning starts (--dyna.planning-delay)."""


class PlannerState(eqx.Module):
    """What a planner with a world model keeps between updates."""

    model: Any
    """The world model's state (its parameters and optimiser state; None for the oracle)."""


class Clock(eqx.Module):
    """Where training stands at this update: the update index and the schedules' values at it."""

    update: Int[Array, ""]
    epsilon: Float[Array, ""]
    """The behaviour policy's epsilon."""
    lr: Float[Array, ""]
    """The Q-network's learning rate (shared by real and imagined gradient steps)."""


class Planner(eqx.Module):
    """Abstract planner. Its knobs are static fields built once from its own config (``build``); the data it
    keeps between updates (a world model's parameters, say) is a state that flows through :meth:`step`.

    Once per update, after the real-data update, the trainer calls ``step(learner, rollout, state, key,
    clock)``; the planner may train the learner further and returns it, its own new state and its metrics,
    exactly the names it declares in :attr:`metrics`.
    """

    @classmethod
    def build(cls, config: Any, model: WorldModel, fit: QFit, context: Context) -> "Planner":
        """The planner ``config`` (its own config class) describes, imagining with ``model`` and taking gradient
        steps with ``fit``."""
        raise NotImplementedError(f"{cls.__name__} is not built from a config")

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
