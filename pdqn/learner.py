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

from pdqn.events import event_rates, event_scores, termination_loss
from pdqn.metrics import MEAN_Q, TD_LOSS, TERMINATION_HEAD_LOSS, TERMINATION_HEAD_METRICS, Metric
from pdqn.networks import QNetwork
from pdqn.q_update import QBatch, q_optimiser, sgd_epochs, td_loss, td_loss_of_values
from pdqn.rollout import Rollout
from pdqn.targets import batched_q_lambda_targets

LossFn = Callable[[QNetwork, QBatch], tuple[Float[Array, ""], Any]]
"""``(q_net, minibatch) -> (loss, aux)``; :func:`td_loss`'s aux is the mean Q(s, a)."""
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
    ) -> tuple[Learner, Float[Array, ""], Any]:
        """The trained learner, the mean loss and the mean of the loss's aux over the steps (the mean Q(s, a) for
        :func:`td_loss`)."""
        q_net, opt_state, (mean_loss, aux) = sgd_epochs(
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
        return Learner(q_net=q_net, opt_state=opt_state), mean_loss, aux


def flatten_time(x: Array) -> Array:
    """``[T, envs, ...]`` -> ``[T * envs, ...]``."""
    return x.reshape(-1, *x.shape[2:])


def subsample(key: PRNGKeyArray, data: Any, size: int) -> Any:
    """``size`` rows of a flat batch: shuffled passes over it, so no row repeats before every row was drawn."""
    rows = jax.tree.leaves(data)[0].shape[0]
    passes = -(-size // rows)
    order = jnp.concatenate([jax.random.permutation(k, rows) for k in jax.random.split(key, passes)])[:size]
    return jax.tree.map(lambda x: x[order], data)


def real_batch(rollout: Rollout, gamma: float, td_lambda: float, *, terminations: bool = False) -> QBatch:
    """The rollout's transitions with their Q(lambda) targets, flattened for minibatching (``terminations``: with
    their termination flags, for the Q-network's termination head)."""
    targets = batched_q_lambda_targets(
        rollout.reward, rollout.terminated, rollout.truncated, rollout.q_next_max, gamma=gamma, td_lambda=td_lambda
    )
    return QBatch(
        obs=flatten_time(rollout.obs),
        action=flatten_time(rollout.action),
        target=flatten_time(targets),
        weight=jnp.ones(targets.size),
        terminated=flatten_time(rollout.terminated).astype(jnp.float32) if terminations else None,
        terminated_every=(
            None
            if not terminations or rollout.terminated_every is None
            else flatten_time(rollout.terminated_every)
        ),
    )


class TerminationHeadLoss(eqx.Module):
    """PQN's TD loss plus the loss of the Q-network's termination head on the taken actions' outcomes
    (:func:`pdqn.events.termination_loss`)::

        loss = td_loss + mean_i w_i BCE(logit_{i, a_i}, d_i),   w_i = positive_weight if d_i else 1

    The head reads the Q-network's features behind a stop-gradient, so its loss trains the head alone and the TD
    loss the rest: the Q-network's gradient is PQN's. Its aux: the mean Q(s, a), the TD loss, the head's loss and the
    rates that become its precision and recall (on the minibatch before its gradient step).

    With every action labelled (``batch.terminated_every``), the mean is over every labelled row and action; the rates
    stay the taken actions'."""

    positive_weight: float = eqx.field(static=True, default=10.0)
    """A terminating step's weight against 1 for the others (the termination model's default)."""

    def __call__(self, q_net: QNetwork, batch: QBatch) -> tuple[Float[Array, ""], tuple[Float[Array, ""], Metrics]]:
        if batch.terminated is None:
            raise ValueError("the termination head's loss needs the batch's terminations (QBatch.terminated)")
        if batch.terminated_every is None:
            q, logit = q_net.q_and_taken_termination_logit(batch.obs, batch.action)
            head = termination_loss(logit, batch.terminated, self.positive_weight)
        else:
            q, logits = q_net.q_and_termination_logits(batch.obs)
            labels = batch.terminated_every.ravel()
            head = termination_loss(logits.ravel(), jnp.maximum(labels, 0.0), self.positive_weight, mask=labels >= 0)
            logit = jnp.take_along_axis(logits, batch.action[:, None], axis=1)[:, 0]
        td, mean_q = td_loss_of_values(q, batch)
        rates = event_rates({"term": (logit > 0, batch.terminated > 0.5)})
        return td + head, (mean_q, {TD_LOSS.name: td, TERMINATION_HEAD_LOSS.name: head, **rates})


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
    termination_head: TerminationHeadLoss | None = None
    """The loss of the Q-network's termination head, added on every real-data step (None: PQN's TD loss alone)."""

    metrics: ClassVar[tuple[Metric, ...]] = (TD_LOSS, MEAN_Q)

    def __call__(
        self, learner: Learner, rollout: Rollout, key: PRNGKeyArray, lr: Float[Array, ""]
    ) -> tuple[Learner, Metrics]:
        k_epochs, k_extra = jax.random.split(key)
        batch = real_batch(rollout, self.gamma, self.td_lambda, terminations=self.termination_head is not None)
        loss_fn: LossFn = td_loss if self.termination_head is None else self.termination_head
        learner, loss, aux = self.fit(
            learner, batch, k_epochs, lr, epochs=self.epochs, minibatches=self.minibatches, loss=loss_fn
        )
        if self.extra_minibatches:
            extra = subsample(k_extra, batch, self.extra_minibatches * self.minibatch_size)
            learner, _, _ = self.fit(
                learner, extra, k_extra, lr, epochs=1, minibatches=self.extra_minibatches, loss=loss_fn
            )
        if self.termination_head is None:
            return learner, {TD_LOSS.name: loss, MEAN_Q.name: aux}
        mean_q, head_metrics = aux
        return learner, {MEAN_Q.name: mean_q, **event_scores(head_metrics)}

    @property
    def head_metrics(self) -> tuple[Metric, ...]:
        """What the termination head adds to :attr:`metrics` (none without it)."""
        return () if self.termination_head is None else TERMINATION_HEAD_METRICS
