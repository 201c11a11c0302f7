"""Termination measured where planning uses it: a world model's probability that each action ends the episode,
beside the real game's answer for every action, on the states a policy visits.

:func:`sample_terminations` plays a policy and, at every state, asks the model for every action and steps a copy
of the real state with every action (a key apart from the episode's); :func:`termination_scores` turns the sample
into figures: the base rate of terminating pairs, precision and recall at a threshold, the overall AUC, the
within-state pairwise AUC (what a veto relies on: is the fatal action ranked above the safe ones of the same state),
and the same for the actions the greedy policy takes. :func:`frame_scores` scores the model's thresholded next frame
for every action against the real one on the same states (search steps through those frames): wrong cells, exact
frames, and per channel the share of the real frame's cells the prediction keeps (on Asterix channel 0 is the
player, whose cell a model of the mostly empty screen can lose).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from pdqn.envs import VecEnv
from pdqn.models import WorldModel
from pdqn.models.base import threshold_cells
from pdqn.networks import QNetwork
from pdqn.schedules import epsilon_greedy


class TerminationSample(eqx.Module):
    """Per visited state (``time`` steps, one step inside the scan, of ``envs`` environments) and action: the model's and
    the game's answer."""

    predicted: Float[Array, "*time envs actions"]
    """The model's probability that the action ends the episode."""
    real: Bool[Array, "*time envs actions"]
    """Whether a step of a copy of the real state with that action ended it."""
    greedy: Int[Array, "*time envs"]
    """The policy's greedy action at the state."""
    wrong_cells: Int[Array, "*time envs actions"] | None = None
    """Cells of the newest frame where the model's thresholded prediction differs from the real next frame."""
    real_cells: Int[Array, "*time envs actions channels"] | None = None
    """Cells on in each channel of the real next frame."""
    kept_cells: Int[Array, "*time envs actions channels"] | None = None
    """Of those, the cells the model's thresholded prediction has on too."""


def sample_terminations(
    env: VecEnv,
    q_net: QNetwork,
    model: WorldModel,
    model_state: object,
    key: PRNGKeyArray,
    *,
    num_steps: int,
    epsilon: float = 0.0,
) -> TerminationSample:
    """Play ``q_net`` (epsilon-greedy) for ``num_steps`` steps of ``env``'s environments and record, at every state,
    the model's and the real game's termination and next frame for every action (from a model that does not imagine,
    its :meth:`WorldModel.termination_probabilities` and no frames)."""
    actions, channels = env.num_actions, env.frame_shape[-1]
    k_reset, k_run = jax.random.split(key)
    obs, state, stats = env.reset(k_reset)

    def step(carry, key):
        obs, state, stats = carry
        k_model, k_real, k_act, k_env = jax.random.split(key, 4)
        repeat = lambda x: jnp.repeat(x, actions, axis=0)  # noqa: E731
        tried = jnp.tile(jnp.arange(actions, dtype=jnp.int32), env.num_envs)
        real, _ = env.transition(k_real, jax.tree.map(repeat, state), tried)
        per_pair = lambda x: x.reshape(env.num_envs, actions, *x.shape[1:])  # noqa: E731
        carry = state if model.needs_env_states else None
        frames = {}
        if not model.imagines:
            predicted = model.termination_probabilities(model_state, obs, carry, k_model, actions)
        else:  # one step of every action gives both the termination and the frames
            pred, _ = model.stepper(model_state)(repeat(obs), jax.tree.map(repeat, carry), tried, k_model)
            predicted = per_pair(jax.nn.sigmoid(pred.terminated_logit))
            said = threshold_cells(pred.next_obs_logits[..., -channels:]) > 0.5
            seen = real.final_obs[..., -channels:] > 0.5
            frames = {
                "wrong_cells": per_pair(jnp.sum(said != seen, axis=(1, 2, 3))),
                "real_cells": per_pair(jnp.sum(seen, axis=(1, 2))),
                "kept_cells": per_pair(jnp.sum(seen & said, axis=(1, 2))),
            }
        q = q_net(obs)
        out, state, stats = env.step(k_env, state, stats, epsilon_greedy(k_act, q, epsilon))
        sample = TerminationSample(predicted=predicted, real=per_pair(real.terminated), greedy=jnp.argmax(q, axis=-1), **frames)
        return (out.obs, state, stats), sample

    _, sample = jax.lax.scan(step, (obs, state, stats), jax.random.split(k_run, num_steps))
    return sample


def pairwise_auc(predicted: np.ndarray, real: np.ndarray) -> float:
    """Within each state (row) with at least one terminating and one safe action: the share of (terminating, safe)
    pairs whose terminating action the model gives the higher probability (ties count one half), over all pairs."""
    fatal = real[:, :, None] & ~real[:, None, :]
    above = (predicted[:, :, None] > predicted[:, None, :]) + 0.5 * (predicted[:, :, None] == predicted[:, None, :])
    pairs = fatal.sum()
    return float((above * fatal).sum() / pairs) if pairs else float("nan")


def overall_auc(predicted: np.ndarray, real: np.ndarray) -> float:
    """The probability that a random terminating pair gets a higher prediction than a random safe one."""
    p, y = predicted.ravel(), real.ravel().astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sorted_p = p[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def precision_recall(predicted: np.ndarray, real: np.ndarray, threshold: float) -> tuple[float, float]:
    said = predicted > threshold
    true = int((said & real).sum())
    precision = true / int(said.sum()) if said.any() else float("nan")
    recall = true / int(real.sum()) if real.any() else float("nan")
    return precision, recall


def termination_scores(sample: TerminationSample, threshold: float) -> dict[str, float]:
    """The sample's figures (see the module docstring), pooled over its steps and environments."""
    actions = sample.predicted.shape[-1]
    predicted = np.asarray(sample.predicted, np.float64).reshape(-1, actions)
    real = np.asarray(sample.real, bool).reshape(-1, actions)
    greedy = np.asarray(sample.greedy).reshape(-1)
    rows = np.arange(len(greedy))
    taken_p, taken_real = predicted[rows, greedy], real[rows, greedy]
    precision, recall = precision_recall(predicted, real, threshold)
    greedy_precision, greedy_recall = precision_recall(taken_p, taken_real, threshold)
    avoidable = taken_real & ~real.all(axis=1)  # greedy's action is fatal and a safe one exists
    return {
        "states": float(len(greedy)),
        "terminating_pairs": float(real.mean()),
        "precision": precision,
        "recall": recall,
        "auc": overall_auc(predicted, real),
        "pairwise_auc": pairwise_auc(predicted, real),
        "max_p_on_terminating": float(predicted[real].max()) if real.any() else float("nan"),
        "median_p_on_terminating": float(np.median(predicted[real])) if real.any() else float("nan"),
        "greedy_terminating": float(taken_real.mean()),
        "greedy_precision": greedy_precision,
        "greedy_recall": greedy_recall,
        "avoidable_greedy_deaths": float(avoidable.sum()),
        "avoidable_vetoed": float((avoidable & (taken_p > threshold)).sum()),
    }


def frame_scores(sample: TerminationSample) -> dict[str, float]:
    """The model's next frames against the real ones over every (state, action) pair of the sample: mean wrong cells,
    the share of exact frames, and per channel ``c`` the share of the real frames' cells of ``c`` that the prediction
    keeps (``kept_c``; NaN where the channel is never on)."""
    if sample.wrong_cells is None or sample.real_cells is None or sample.kept_cells is None:
        raise ValueError("the sample holds no frames (made without the model's and the game's next frames)")
    wrong = np.asarray(sample.wrong_cells)
    real = np.asarray(sample.real_cells).reshape(-1, sample.real_cells.shape[-1]).sum(axis=0)
    kept = np.asarray(sample.kept_cells).reshape(-1, sample.kept_cells.shape[-1]).sum(axis=0)
    scores = {"wrong_cells": float(wrong.mean()), "exact_frames": float((wrong == 0).mean())}
    for c, (on, also) in enumerate(zip(real, kept)):
        scores[f"kept_{c}"] = float(also / on) if on else float("nan")
    return scores
