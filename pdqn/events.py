"""Rare binary events of a step (the episode ends, a reward comes): the weighted loss that learns one, and the
rates that become its precision and recall."""

import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float

from pdqn.metrics import MODEL_REWARD_PRECISION, MODEL_REWARD_RECALL, MODEL_TERM_PRECISION, MODEL_TERM_RECALL

EVENTS = {"term": (MODEL_TERM_PRECISION, MODEL_TERM_RECALL), "reward": (MODEL_REWARD_PRECISION, MODEL_REWARD_RECALL)}
"""Sparse events scored by precision and recall: a termination, and a reward (predicted above 0.5).
Per minibatch their true-positive, predicted and actual rates are kept; the means over an epoch form the scores."""


def termination_loss(
    terminated_logit: Float[Array, " batch"],
    terminated: Float[Array, " batch"],
    weight: float,
    mask: Bool[Array, " batch"] | None = None,
) -> Float[Array, ""]:
    """Binary cross-entropy of the termination flag, a terminating step weighing ``weight`` times a safe one::

        loss = mean_i w_i BCE(logit_i, d_i),   w_i = weight if d_i else 1

    Terminations are rare (under 1 % of MinAtar steps), so with ``weight`` 1 the base rate is a cheap optimum."""
    bce = optax.sigmoid_binary_cross_entropy(terminated_logit, terminated)
    weighted = jnp.where(terminated > 0.5, weight, 1.0) * bce
    if mask is None:
        return jnp.mean(weighted)
    return jnp.sum(jnp.where(mask, weighted, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def event_rates(events: dict[str, tuple[Array, Array]]) -> dict[str, Array]:
    """Per event ``name: (predicted, actual)`` (booleans over a batch): the rates :func:`event_scores` turns into
    precision and recall, ``name_true_positive``, ``name_predicted`` and ``name_actual``."""
    return {
        f"{name}_{kind}": jnp.mean(value)
        for name, (predicted, actual) in events.items()
        for kind, value in (("true_positive", predicted & actual), ("predicted", predicted), ("actual", actual))
    }


def event_scores(metrics: dict[str, Array]) -> dict[str, Array]:
    """Replace the mean per-minibatch event rates by each event's precision and recall (NaN where undefined), for
    the events whose rates ``metrics`` holds."""
    metrics = dict(metrics)
    nan = jnp.asarray(jnp.nan, jnp.float32)
    for name, (precision, recall) in EVENTS.items():
        if f"{name}_true_positive" not in metrics:
            continue
        true_positive = metrics.pop(f"{name}_true_positive")
        predicted = metrics.pop(f"{name}_predicted")
        actual = metrics.pop(f"{name}_actual")
        metrics[precision.name] = jnp.where(predicted > 0, true_positive / predicted, nan)
        metrics[recall.name] = jnp.where(actual > 0, true_positive / actual, nan)
    return metrics
