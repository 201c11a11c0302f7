"""The PQN MinAtar Q-network, with an optional termination head.

The head (``termination_channels=K``, :class:`TerminationHead`) gives every action's logit that the step ends the
episode from features per 3x3 window: the Q-network's conv features, behind a stop-gradient, beside K conv channels of
its own. Its loss (:class:`pdqn.learner.TerminationHeadLoss`) trains only the head, so the Q-network learns as PQN's,
and the termination veto (:mod:`pdqn.acting`) costs the head alone: the greedy step computes the rest.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.layers import Conv3x3, Dense, MaybeNorm, patches3x3


class TerminationHead(eqx.Module):
    """Every action's termination logit from features per cell ``h``: the Q-network's conv features (a stop-gradient
    keeps the head's loss out of them) beside the head's own conv channels. A linear logit per cell and action (the
    step ends the episode there: a collision the window shows) and one per action from the cells' mean and max
    through a hidden layer (a global reason), pooled by log-sum-exp::

        logit_a = logsumexp(w_a . h_c + b_a for every cell c,  g_a(mean_c h_c, max_c h_c))

    Linear per cell, unlike the termination model's "cells" head (:class:`pdqn.models.conv.CellsTermination`), so
    that the loss on the taken action needs one dot product per cell. Why channels of its own: on Asterix the
    Q-network's features lack the event (a head on them alone learned nothing a veto can use), and training those
    features for it (an auxiliary loss) wrecked Seaquest's Q-network (experiments/decision-time)."""

    own_conv: Dense
    own_norm: MaybeNorm
    cell_out: Dense
    global_hidden: Dense
    global_out: Dense

    def __init__(
        self, patch_size: int, shared_features: int, own_channels: int, num_actions: int, norm: str, *, key: PRNGKeyArray
    ):
        k_conv, k_cell, k_hidden, k_out = jax.random.split(key, 4)
        features = shared_features + own_channels
        self.own_conv = Dense(patch_size, own_channels, key=k_conv)
        self.own_norm = MaybeNorm(own_channels, norm)
        self.cell_out = Dense(features, num_actions, key=k_cell)
        self.global_hidden = Dense(2 * features, features, key=k_hidden)
        self.global_out = Dense(features, num_actions, key=k_out)

    def features(
        self, patches: Float[Array, "batch rows cols patch"], shared: Float[Array, "batch rows cols shared"]
    ) -> Float[Array, "batch rows cols features"]:
        """The Q-network's features (no gradient flows back into them) and the head's own, per cell."""
        own = jax.nn.relu(self.own_norm(self.own_conv(patches)))
        return jnp.concatenate([jax.lax.stop_gradient(shared), own], axis=-1)

    def global_logits(self, h: Float[Array, "batch rows cols features"]) -> Float[Array, "batch actions"]:
        pooled = jnp.concatenate([jnp.mean(h, axis=(1, 2)), jnp.max(h, axis=(1, 2))], axis=-1)
        return self.global_out(jax.nn.relu(self.global_hidden(pooled)))

    def __call__(
        self, patches: Float[Array, "batch rows cols patch"], shared: Float[Array, "batch rows cols shared"]
    ) -> Float[Array, "batch actions"]:
        """Every action's logit."""
        h = self.features(patches, shared)
        cells = self.cell_out(h).reshape(h.shape[0], -1, self.cell_out.bias.shape[0])
        return jax.nn.logsumexp(jnp.concatenate([cells, self.global_logits(h)[:, None, :]], axis=1), axis=1)

    def taken(
        self,
        patches: Float[Array, "batch rows cols patch"],
        shared: Float[Array, "batch rows cols shared"],
        action: Int[Array, " batch"],
    ) -> Float[Array, " batch"]:
        """``self(patches, shared)[i, action[i]]``, computing the cells' logits of that action alone."""
        h = self.features(patches, shared)
        weight, bias = self.cell_out.weight[:, action].T, self.cell_out.bias[action]
        cells = jnp.einsum("brcf,bf->brc", h, weight).reshape(h.shape[0], -1) + bias[:, None]
        overall = jnp.take_along_axis(self.global_logits(h), action[:, None], axis=1)
        return jax.nn.logsumexp(jnp.concatenate([cells, overall], axis=1), axis=1)


class QNetwork(eqx.Module):
    """conv 16x3x3 VALID -> norm -> ReLU -> dense 128 -> norm -> ReLU -> linear over actions; with a termination
    head, also (the conv features, the head's own conv channels) -> :class:`TerminationHead` -> a termination logit
    per action."""

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
        termination_channels: int | None = None,
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
        self.termination = (
            None
            if termination_channels is None
            else TerminationHead(9 * channels, conv_features, termination_channels, num_actions, norm, key=k_termination)
        )

    def cell_features(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch rows cols features"]:
        """The conv layer's features (after its norm and ReLU), one vector per 3x3 window of the observation."""
        return self.features_of_patches(patches3x3(obs))

    def features_of_patches(self, patches: Float[Array, "batch rows cols patch"]) -> Float[Array, "batch rows cols features"]:
        return jax.nn.relu(self.conv_norm(self.conv.kernel(patches)))

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
        head's loss needs)."""
        patches = patches3x3(obs)
        features = self.features_of_patches(patches)
        return self.q_values(features), self.head_or_raise().taken(patches, features, action)

    def q_and_termination_logits(
        self, obs: Float[Array, "batch height width channels"]
    ) -> tuple[Float[Array, "batch actions"], Float[Array, "batch actions"]]:
        """The Q-values and every action's termination logit, from one pass of the conv layer."""
        patches = patches3x3(obs)
        features = self.features_of_patches(patches)
        return self.q_values(features), self.head_or_raise()(patches, features)

    def termination_logits(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        """Every action's termination logit."""
        patches = patches3x3(obs)
        return self.head_or_raise()(patches, self.features_of_patches(patches))

    def head_or_raise(self) -> TerminationHead:
        if self.termination is None:
            raise ValueError("this Q-network has no termination head (build it with termination_channels=K)")
        return self.termination


def greedy_value(q: Float[Array, "*batch actions"]) -> Float[Array, "*batch"]:
    return jnp.max(q, axis=-1)
