"""The data-reuse control: PQN that also trains on its recent real rollouts (a model has to beat replay, not only
PQN).

After the real update, the Q-network takes ``minibatches`` more gradient steps on minibatches drawn uniformly from
the last ``rollouts`` rollouts stored before this one. Their Q(lambda) targets are recomputed at every update with
the current network, as the real batch's are with the behaviour network:

    target_t = r_t + gamma (1 - d_t) [(1 - lambda) max_a Q(s_{t+1}, a) + lambda target_{t+1}]

(:func:`pdqn.targets.q_lambda_targets`, truncation bootstrapping from the pre-reset frame). Then the update's own
rollout replaces the oldest stored one. It is a model-free "planner", so PQN keeps its one update function; the
store is its state.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.learner import Learner, QFit
from pdqn.metrics import REUSE_TD_LOSS, Metric
from pdqn.networks import greedy_value
from pdqn.planners.base import Clock, Metrics, Planner
from pdqn.q_update import QBatch
from pdqn.rollout import Rollout
from pdqn.targets import batched_q_lambda_targets


class Stored(eqx.Module):
    """Real transitions of rollouts, ``[rollouts, T, envs, ...]`` (or of one rollout, ``[T, envs, ...]``)."""

    obs: Float[Array, "*K T envs height width channels"]
    action: Int[Array, "*K T envs"]
    reward: Float[Array, "*K T envs"]
    terminated: Bool[Array, "*K T envs"]
    truncated: Bool[Array, "*K T envs"]
    next_obs: Float[Array, "*K T envs height width channels"]


class ReuseState(eqx.Module):
    stored: Stored
    inserted: Int[Array, ""]
    """Rollouts inserted so far: slots fill in order, then the oldest is replaced (slot ``inserted % rollouts``)."""


class Reuse(Planner):
    """Extra gradient steps on recent real rollouts, their targets recomputed (see the module docstring)."""

    fit: QFit
    rollouts: int = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    minibatch_size: int = eqx.field(static=True)
    gamma: float = eqx.field(static=True)
    td_lambda: float = eqx.field(static=True)
    rollout_shape: tuple[int, ...] = eqx.field(static=True)
    """``(T, envs)`` of one rollout."""
    obs_shape: tuple[int, ...] = eqx.field(static=True)

    def init(self, key: PRNGKeyArray) -> ReuseState:
        k = (self.rollouts, *self.rollout_shape)
        stored = Stored(
            obs=jnp.zeros((*k, *self.obs_shape)),
            action=jnp.zeros(k, jnp.int32),
            reward=jnp.zeros(k),
            terminated=jnp.zeros(k, bool),
            truncated=jnp.zeros(k, bool),
            next_obs=jnp.zeros((*k, *self.obs_shape)),
        )
        return ReuseState(stored=stored, inserted=jnp.asarray(0, jnp.int32))

    def step(
        self, learner: Learner, rollout: Rollout, state: ReuseState, key: PRNGKeyArray, clock: Clock
    ) -> tuple[Learner, ReuseState, Metrics]:
        k_rows, k_fit = jax.random.split(key)
        batch = self.reused_batch(learner, state, k_rows)
        learner, loss, _ = self.fit(learner, batch, k_fit, clock.lr, epochs=1, minibatches=self.minibatches)
        return learner, self.store(state, rollout), {REUSE_TD_LOSS.name: loss}

    def targets(self, learner: Learner, stored: Stored) -> Float[Array, "K T envs"]:
        """Q(lambda) targets of every stored rollout under the current Q-network."""
        q_next_max = greedy_value(learner.q_net(stored.next_obs.reshape(-1, *self.obs_shape))).reshape(stored.reward.shape)
        one = lambda r, term, trunc, q: batched_q_lambda_targets(r, term, trunc, q, gamma=self.gamma, td_lambda=self.td_lambda)  # noqa: E731
        return jax.vmap(one)(stored.reward, stored.terminated, stored.truncated, q_next_max)

    def reused_batch(self, learner: Learner, state: ReuseState, key: PRNGKeyArray) -> QBatch:
        """``minibatches * minibatch_size`` rows drawn uniformly from the stored rollouts (weight 0 while none is)."""
        stored = state.stored
        per_rollout = stored.reward[0].size
        size = self.minibatches * self.minibatch_size
        filled = jnp.minimum(state.inserted, self.rollouts)
        rows = jax.random.randint(key, (size,), 0, jnp.maximum(filled, 1) * per_rollout)
        flat = lambda x: x.reshape(-1, *x.shape[3:])  # noqa: E731  [K, T, envs, ...] -> [K * T * envs, ...]
        return QBatch(
            obs=flat(stored.obs)[rows],
            action=flat(stored.action)[rows],
            target=flat(self.targets(learner, stored))[rows],
            weight=jnp.full(size, filled > 0, jnp.float32),
        )

    def store(self, state: ReuseState, rollout: Rollout) -> ReuseState:
        """The update's rollout in the next slot (the oldest one's, once every slot is filled)."""
        slot = state.inserted % self.rollouts
        new = Stored(
            obs=rollout.obs, action=rollout.action, reward=rollout.reward, terminated=rollout.terminated,
            truncated=rollout.truncated, next_obs=rollout.next_obs,
        )  # fmt: skip
        stored = jax.tree.map(lambda all_, one: all_.at[slot].set(one), state.stored, new)
        return ReuseState(stored=stored, inserted=state.inserted + 1)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return (REUSE_TD_LOSS,)
