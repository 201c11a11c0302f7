"""The learner (the Q-network and its optimiser state) and the TD updates that train it.

:class:`QFit` is the one piece of code that takes gradient steps on the Q-network: the real-data update
(:class:`RealUpdate`) and every planner call it, so real and imagined data share optimiser, learning rate
and minibatch code.
"""

from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from pdqn.metrics import MEAN_Q, TD_LOSS, Metric
from pdqn.networks import QNetwork
from pdqn.q_update import QBatch, q_optimiser, sgd_epochs, td_loss
from pdqn.rollout import Rollout
from pdqn.targets import batched_q_lambda_targets

LossFn = Callable[[QNetwork, QBatch], tuple[Float[Array, ""], Float[Array, ""]]]
Metrics = dict[str, Array]


class Learner(eqx.Module):
    """The Q-network and its optimiser state: what every update (real or imagined) trains."""

    q_net: QNetwork
    opt_state: Any


class QFit(eqx.Module):
    """Epochs x shuffled minibatches of clipped-RAdam TD steps on a :class:`Learner`."""

    optimiser: optax.GradientTransformation = eqx.field(static=True)

    def __init__(self, max_grad_norm: float):
        self.optimiser = q_optimiser(max_grad_norm)

    def init(self, q_net: QNetwork) -> Learner:
        return Learner(q_net=q_net, opt_state=self.optimiser.init(eqx.filter(q_net, eqx.is_array)))

    def __call__(
        self,
        learner: Learner,
        batch: QBatch,
        key: PRNGKeyArray,
        lr: Float[Array, ""],
        *,
        epochs: int,
        minibatches: int,
        loss: LossFn = td_loss,
    ) -> tuple[Learner, Float[Array, ""], Float[Array, ""]]:
        """The trained learner, the mean loss and the mean Q(s, a) over the steps."""
        q_net, opt_state, (mean_loss, mean_q) = sgd_epochs(
            loss,
            self.optimiser,
            learner.q_net,
            learner.opt_state,
            batch,
            key=key,
            learning_rate=lr,
            num_epochs=epochs,
            num_minibatches=minibatches,
        )
        return Learner(q_net=q_net, opt_state=opt_state), mean_loss, mean_q


def flatten_time(x: Array) -> Array:
    """``[T, envs, ...]`` -> ``[T * envs, ...]``."""
    return x.reshape(-1, *x.shape[2:])


def subsample(key: PRNGKeyArray, data: Any, size: int) -> Any:
    """``size`` rows of a flat batch: shuffled passes over it, so no row repeats before every row was drawn."""
    rows = jax.tree.leaves(data)[0].shape[0]
    passes = -(-size // rows)
    order = jnp.concatenate([jax.random.permutation(k, rows) for k in jax.random.split(key, passes)])[:size]
    return jax.tree.map(lambda x: x[order], data)


def real_batch(rollout: Rollout, gamma: float, td_lambda: float) -> QBatch:
    """The rollout's transitions with their Q(lambda) targets, flattened for minibatching."""
    targets = batched_q_lambda_targets(
        rollout.reward, rollout.terminated, rollout.truncated, rollout.q_next_max, gamma=gamma, td_lambda=td_lambda
    )
    return QBatch(
        obs=flatten_time(rollout.obs),
        action=flatten_time(rollout.action),
        target=flatten_time(targets),
        weight=jnp.ones(targets.size),
    )


class RealUpdate(eqx.Module):
    """PQN's update on the real batch: epochs x minibatches, then (the compute- and wall-clock-matched controls)
    extra minibatches drawn from the same batch, in shuffled passes when there are more than one epoch's worth."""

    fit: QFit
    gamma: float = eqx.field(static=True)
    td_lambda: float = eqx.field(static=True)
    epochs: int = eqx.field(static=True)
    minibatches: int = eqx.field(static=True)
    extra_minibatches: int = eqx.field(static=True)
    minibatch_size: int = eqx.field(static=True)

    metrics: ClassVar[tuple[Metric, ...]] = (TD_LOSS, MEAN_Q)

    def __call__(
        self, learner: Learner, rollout: Rollout, key: PRNGKeyArray, lr: Float[Array, ""]
    ) -> tuple[Learner, Metrics]:
        k_epochs, k_extra = jax.random.split(key)
        batch = real_batch(rollout, self.gamma, self.td_lambda)
        learner, loss, mean_q = self.fit(
            learner, batch, k_epochs, lr, epochs=self.epochs, minibatches=self.minibatches
        )
        if self.extra_minibatches:
            extra = subsample(k_extra, batch, self.extra_minibatches * self.minibatch_size)
            learner, _, _ = self.fit(learner, extra, k_extra, lr, epochs=1, minibatches=self.extra_minibatches)
        return learner, {TD_LOSS.name: loss, MEAN_Q.name: mean_q}
