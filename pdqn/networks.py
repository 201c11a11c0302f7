"""The PQN MinAtar Q-network, with an optional termination head on its conv features.

The head (``termination_head=True``, :class:`TerminationHead`) reads the conv layer's features, one vector per 3x3
window, and gives every action's logit that the step ends the episode. An auxiliary loss trains it and the conv
layer under it (:class:`pdqn.learner.TerminationHeadLoss`), so the termination veto (:mod:`pdqn.acting`) costs the
head alone.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.layers import Conv3x3, Dense, MaybeNorm


class TerminationHead(eqx.Module):
    """Every action's termination logit from features per cell: a linear logit per cell and action (the step ends
    the episode there: a collision the window shows) and one per action from the cells' mean and max through a
    hidden layer (a global reason), pooled by log-sum-exp::

        logit_a = logsumexp(w_a . h_c + b_a for every cell c,  g_a(mean_c h_c, max_c h_c))

    Linear per cell, unlike the termination model's "cells" head (:class:`pdqn.models.conv.CellsTermination`), so
    that the loss on the taken action needs one dot product per cell: the auxiliary loss trains the features for it."""

    cell_out: Dense
    global_hidden: Dense
    global_out: Dense

    def __init__(self, features: int, num_actions: int, *, key: PRNGKeyArray):
        k_cell, k_hidden, k_out = jax.random.split(key, 3)
        self.cell_out = Dense(features, num_actions, key=k_cell)
        self.global_hidden = Dense(2 * features, features, key=k_hidden)
        self.global_out = Dense(features, num_actions, key=k_out)

    def global_logits(self, h: Float[Array, "batch rows cols features"]) -> Float[Array, "batch actions"]:
        pooled = jnp.concatenate([jnp.mean(h, axis=(1, 2)), jnp.max(h, axis=(1, 2))], axis=-1)
        return self.global_out(jax.nn.relu(self.global_hidden(pooled)))

    def __call__(self, h: Float[Array, "batch rows cols features"]) -> Float[Array, "batch actions"]:
        """Every action's logit."""
        cells = self.cell_out(h).reshape(h.shape[0], -1, self.cell_out.bias.shape[0])
        return jax.nn.logsumexp(jnp.concatenate([cells, self.global_logits(h)[:, None, :]], axis=1), axis=1)

    def taken(self, h: Float[Array, "batch rows cols features"], action: Int[Array, " batch"]) -> Float[Array, " batch"]:
        """``self(h)[i, action[i]]``, computing the cells' logits of that action alone."""
        weight, bias = self.cell_out.weight[:, action].T, self.cell_out.bias[action]
        cells = jnp.einsum("brcf,bf->brc", h, weight).reshape(h.shape[0], -1) + bias[:, None]
        overall = jnp.take_along_axis(self.global_logits(h), action[:, None], axis=1)
        return jax.nn.logsumexp(jnp.concatenate([cells, overall], axis=1), axis=1)


class QNetwork(eqx.Module):
    """conv 16x3x3 VALID -> norm -> ReLU -> dense 128 -> norm -> ReLU -> linear over actions; with a termination
    head, also conv features -> :class:`TerminationHead` -> a termination logit per action."""

    conv: Conv3x3
    conv_norm: MaybeNorm
    hidden: Dense
    hidden_norm: MaybeNorm
    head: Dense
    termination: TerminationHead | None

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        *,
        key: PRNGKeyArray,
        norm: str = "layer_norm",
        conv_features: int = 16,
        hidden_size: int = 128,
        termination_head: bool = False,
    ):
        height, width, channels = obs_shape
        k_conv, k_hidden, k_head = jax.random.split(key, 3)
        self.conv = Conv3x3(channels, conv_features, key=k_conv)
        self.conv_norm = MaybeNorm(conv_features, norm)
        flat = (height - 2) * (width - 2) * conv_features
        self.hidden = Dense(flat, hidden_size, key=k_hidden)
        self.hidden_norm = MaybeNorm(hidden_size, norm)
        self.head = Dense(hidden_size, num_actions, key=k_head)
        # Its own key, folded in, so that the rest starts as a Q-network without the head does.
        k_termination = jax.random.fold_in(key, 1)
        self.termination = TerminationHead(conv_features, num_actions, key=k_termination) if termination_head else None

    def cell_features(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch rows cols features"]:
        """The conv layer's features (after its norm and ReLU), one vector per 3x3 window of the observation."""
        return jax.nn.relu(self.conv_norm(self.conv(obs)))

    def q_values(self, features: Float[Array, "batch rows cols features"]) -> Float[Array, "batch actions"]:
        x = features.reshape(features.shape[0], -1)
        x = jax.nn.relu(self.hidden_norm(self.hidden(x)))
        return self.head(x)

    def __call__(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        return self.q_values(self.cell_features(obs))

    def q_and_taken_termination_logit(
        self, obs: Float[Array, "batch height width channels"], action: Int[Array, " batch"]
    ) -> tuple[Float[Array, "batch actions"], Float[Array, " batch"]]:
        """The Q-values and the termination logit of each row's ``action``, from one pass of the conv layer (what the
        auxiliary loss needs)."""
        features = self.cell_features(obs)
        return self.q_values(features), self.head_or_raise().taken(features, action)

    def termination_logits(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        """Every action's termination logit (the head on the conv features)."""
        return self.head_or_raise()(self.cell_features(obs))

    def head_or_raise(self) -> TerminationHead:
        if self.termination is None:
            raise ValueError("this Q-network has no termination head (build it with termination_head=True)")
        return self.termination


def greedy_value(q: Float[Array, "*batch actions"]) -> Float[Array, "*batch"]:
    return jnp.max(q, axis=-1)
