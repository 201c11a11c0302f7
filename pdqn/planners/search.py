"""Search-improved targets: the Q-network regressed toward the root values of a search over the world model at
real states (the search itself, and acting with it, are in :mod:`pdqn.search`).

After the real update, the planner draws real states from the update's batch and searches from each with the
Q-network it receives. Every action the search visited gives a row

    target(s_t, a) = the root's backed-up value of a   (depth one: r'(s_t, a) + gamma (1 - p'(s_t, a)) max_b Q(s', b))

and the Q-network takes ``minibatches`` gradient steps on them. Unlike a Q(lambda) target of the taken action,
these rows cover every action at the state, and deeper simulations carry values from several imagined steps.
Targets are fixed once per update, as the real ones are. Before ``delay`` the rows carry no weight.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from pdqn.config import SearchConfig
from pdqn.learner import Learner, QFit, flatten_time
from pdqn.metrics import PLANNING_ACTIVE, SEARCH_MEAN_Q, SEARCH_METRICS, SEARCH_TARGET_GAP, SEARCH_TD_LOSS, Metric
from pdqn.models import WorldModel
from pdqn.planners.base import Clock, Context, Metrics, Planner, PlannerState
from pdqn.q_update import QBatch
from pdqn.rollout import Rollout
from pdqn.search import Search


class SearchPlanner(Planner):
    """Search at decision time (:attr:`search`, which the trainer acts with) and, with ``minibatches`` > 0,
    gradient steps toward its root values at real states."""

    model: WorldModel
    fit: QFit
    search: Search
    minibatches: int = eqx.field(static=True)
    states_per_minibatch: int = eqx.field(static=True)
    """Real states searched per gradient step: each gives a row per action, ``minibatch_size // num_actions`` states
    make a minibatch about as large as a real one."""
    delay: int = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)

    @classmethod
    def build(cls, config: SearchConfig, model: WorldModel, fit: QFit, context: Context) -> "SearchPlanner":
        search = Search(model=model, gamma=context.gamma, simulations=config.simulations, temperature=config.temperature)
        return cls(
            model=model,
            fit=fit,
            search=search,
            minibatches=config.minibatches,
            states_per_minibatch=max(1, context.minibatch_size // context.num_actions),
            delay=context.delay,
            num_actions=context.num_actions,
        )

    def init(self, key: PRNGKeyArray) -> PlannerState:
        return PlannerState(model=self.model.init(key))

    def step(
        self, learner: Learner, rollout: Rollout, state: PlannerState, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, PlannerState, Metrics]:
        k_model, k_targets, k_fit = jax.random.split(key, 3)
        model_state, metrics = self.model.update(state.model, rollout, k_model)
        if self.minibatches == 0:
            return learner, PlannerState(model=model_state), metrics
        batch, gap = self.targets(learner, model_state, rollout, k_targets)
        active = clock.update >= self.delay
        batch = eqx.tree_at(lambda b: b.weight, batch, batch.weight * active)
        learner, loss, mean_q = self.fit(learner, batch, k_fit, clock.lr, epochs=1, minibatches=self.minibatches)
        metrics |= {PLANNING_ACTIVE.name: active, SEARCH_TD_LOSS.name: loss, SEARCH_MEAN_Q.name: mean_q, SEARCH_TARGET_GAP.name: gap}
        return learner, PlannerState(model=model_state), metrics

    def targets(self, learner: Learner, model_state: object, rollout: Rollout, key: PRNGKeyArray) -> tuple[QBatch, jax.Array]:
        """A row per (searched real state, action) with the root's value as its target (weight 0 where the search
        did not visit the action); and the mean target minus Q(s, a) over the visited rows."""
        k_rows, k_search = jax.random.split(key)
        count = self.minibatches * self.states_per_minibatch
        rows = jax.random.randint(k_rows, (count,), 0, rollout.reward.size)
        obs = flatten_time(rollout.obs)[rows]
        carry = self.model.start(rollout, rows)
        q = learner.q_net(obs)
        values, visited = self.search(model_state, learner.q_net, obs, carry, k_search)
        weight = visited.astype(jnp.float32)
        gap = jnp.sum(weight * (values - q)) / jnp.maximum(jnp.sum(weight), 1.0)
        actions = jnp.arange(self.num_actions, dtype=jnp.int32)
        batch = QBatch(
            obs=jnp.repeat(obs, self.num_actions, axis=0),
            action=jnp.tile(actions, count),
            target=values.reshape(-1),
            weight=weight.reshape(-1),
        )
        return batch, gap

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self.model.metrics + (SEARCH_METRICS if self.minibatches else ())

    @property
    def needs_env_states(self) -> bool:
        return self.model.needs_env_states

