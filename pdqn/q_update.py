"""Epochs x minibatches of TD updates of the Q-network; shared by real and imagined data."""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from pdqn.networks import QNetwork


class QBatch(eqx.Module):
    """Flat transitions with fixed Q(lambda) targets."""

    obs: Float[Array, "batch height width channels"]
    action: Int[Array, " batch"]
    target: Float[Array, " batch"]
    weight: Float[Array, " batch"]
    """1 for a transition to learn from, 0 for padding (imagined steps after termination)."""
    terminated: Float[Array, " batch"] | None = None
    """1 where the step ended the episode (real rows, for the Q-network's termination head; None: not kept)."""
    terminated_every: Float[Array, "batch actions"] | None = None
    """1 where each action would have ended the episode, 0 where not, -1 where not labelled (None: only the taken
    actions')."""


def td_loss(q_net: QNetwork, batch: QBatch) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Half the weighted mean squared error between Q(s, a) and its target; also mean Q(s, a).

    The mean is over the weighted rows, so a minibatch with few live rows still takes a full-size step.
    """
    return td_loss_of_values(q_net(batch.obs), batch)


def td_loss_of_values(q: Float[Array, "batch actions"], batch: QBatch) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """:func:`td_loss` from the Q-values of ``batch.obs`` (for a loss that computes them with more)."""
    q_sa = jnp.take_along_axis(q, batch.action[:, None], axis=-1)[:, 0]
    total = jnp.maximum(jnp.sum(batch.weight), 1.0)
    loss = 0.5 * jnp.sum(batch.weight * jnp.square(q_sa - batch.target)) / total
    return loss, jnp.sum(batch.weight * q_sa) / total


def batch_mean_td_loss(q_net: QNetwork, batch: QBatch) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """``td_loss`` scaled by the minibatch's live fraction: the weighted squared error summed and divided
    by the number of rows, so a minibatch whose rows are mostly untrusted moves the network less."""
    loss, mean_q = td_loss(q_net, batch)
    live_fraction = jnp.sum(batch.weight) / batch.weight.shape[0]
    return loss * live_fraction, mean_q


def minibatches(key: PRNGKeyArray, data: PyTree, num_minibatches: int) -> PyTree:
    """Shuffle a flat batch and split it into ``num_minibatches`` equal minibatches."""
    size = jax.tree.leaves(data)[0].shape[0]
    perm = jax.random.permutation(key, size)
    return jax.tree.map(lambda x: x[perm].reshape(num_minibatches, -1, *x.shape[1:]), data)


def sgd_epochs(
    loss_fn: Callable[[Any, Any], tuple[Float[Array, ""], Any]],
    optimiser: optax.GradientTransformation,
    params: PyTree,
    opt_state: PyTree,
    data: PyTree,
    *,
    key: PRNGKeyArray,
    learning_rate: Float[Array, ""],
    num_epochs: int,
    num_minibatches: int,
) -> tuple[PyTree, PyTree, tuple[Float[Array, ""], Any]]:
    """``num_epochs`` shuffled passes of minibatch gradient steps; returns mean loss and aux.

    ``optimiser`` produces unit-rate directions (e.g. clipped RAdam); ``learning_rate``
    scales them, so one schedule can serve real and imagined steps alike.
    """

    def step(carry, minibatch):
        params, opt_state = carry
        (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params, minibatch)
        updates, new_opt_state = optimiser.update(grads, opt_state, eqx.filter(params, eqx.is_array))
        updates = jax.tree.map(lambda u: -learning_rate * u, updates)
        # A minibatch with no signal (all weights zero) must not move the optimiser: Adam-style
        # momentum would otherwise keep stepping on a zero gradient.
        live = optax.tree.norm(grads) > 0
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(live, a, b), new, old)  # noqa: E731
        params = keep(eqx.apply_updates(params, updates), params)
        return (params, keep(new_opt_state, opt_state)), (loss, aux)

    def epoch(carry, key):
        return jax.lax.scan(step, carry, minibatches(key, data, num_minibatches))

    (params, opt_state), (loss, aux) = jax.lax.scan(
        epoch, (params, opt_state), jax.random.split(key, num_epochs)
    )
    return params, opt_state, (jnp.mean(loss), jax.tree.map(jnp.mean, aux))


def q_optimiser(max_grad_norm: float) -> optax.GradientTransformation:
    """Global-norm clipping (of the termination head's gradient apart) then RAdam's direction; the learning rate is
    applied by the caller."""
    return optax.chain(clip_head_apart(max_grad_norm), optax.scale_by_radam())


def clip_head_apart(max_norm: float) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` of the Q-network's gradient, and of its termination head's apart, so that the
    head's loss never scales the Q-network's step (with the head, the Q-network learns as PQN's)."""
    clip = optax.clip_by_global_norm(max_norm)

    def update(
        updates: optax.Updates, state: optax.OptState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.OptState]:
        head = getattr(updates, "termination", None)
        if head is None:
            return clip.update(updates, state)[0], state
        is_head = lambda x: x is None  # noqa: E731
        rest = clip.update(eqx.tree_at(lambda n: n.termination, updates, None), state)[0]
        return eqx.tree_at(lambda n: n.termination, rest, clip.update(head, state)[0], is_leaf=is_head), state

    return optax.GradientTransformation(clip.init, update)


def linear_decay(update: Int[Array, ""], initial: float, num_updates: int, decay: bool) -> Float[Array, ""]:
    """Learning rate decayed linearly from ``initial`` towards zero over ``num_updates``."""
    if not decay:
        return jnp.asarray(initial, jnp.float32)
    return initial * (1.0 - jnp.asarray(update, jnp.float32) / num_updates)
