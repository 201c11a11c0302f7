"""The planner "none": the world model trains on every update's real batch and the Q-network gets nothing from it.

The model is there to act (the termination veto, ``--dyna.veto.*``): the Q-network learns from real data alone, as
PQN's does, so the run costs PQN's update plus the model's, and its greedy policy is PQN's up to the data the veto
changes (none with ``--dyna.veto.no-training``).
"""

from jaxtyping import PRNGKeyArray

from pdqn.learner import Learner, QFit
from pdqn.metrics import Metric
from pdqn.models import WorldModel
from pdqn.planners.base import Clock, Context, Metrics, Planner, PlannerState
from pdqn.rollout import Rollout


class ModelOnly(Planner):
    """See the module docstring."""

    model: WorldModel

    @classmethod
    def build(cls, config: None, model: WorldModel, fit: QFit, context: Context) -> "ModelOnly":
        """The planner "none" has no knobs (``config`` is None) and takes no gradient steps (``fit`` is not used)."""
        return cls(model=model)

    def init(self, key: PRNGKeyArray) -> PlannerState:
        return PlannerState(model=self.model.init(key))

    def step(
        self, learner: Learner, rollout: Rollout, state: PlannerState, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, PlannerState, Metrics]:
        model_state, metrics = self.model.update(state.model, rollout, key)
        return learner, PlannerState(model=model_state), metrics

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self.model.metrics

    @property
    def needs_env_states(self) -> bool:
        return self.model.needs_env_states
