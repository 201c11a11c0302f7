"""The PQN MinAtar Q-network."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from pdqn.layers import Conv3x3, Dense, MaybeNorm


class QNetwork(eqx.Module):
    """conv 16x3x3 VALID -> norm -> ReLU -> dense 128 -> norm -> ReLU -> linear over actions."""

    conv: Conv3x3
    conv_norm: MaybeNorm
    hidden: Dense
    hidden_norm: MaybeNorm
    head: Dense

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        *,
        key: PRNGKeyArray,
        norm: str = "layer_norm",
        conv_features: int = 16,
        hidden_size: int = 128,
    ):
        height, width, channels = obs_shape
        k_conv, k_hidden, k_head = jax.random.split(key, 3)
        self.conv = Conv3x3(channels, conv_features, key=k_conv)
        self.conv_norm = MaybeNorm(conv_features, norm)
        flat = (height - 2) * (width - 2) * conv_features
        self.hidden = Dense(flat, hidden_size, key=k_hidden)
        self.hidden_norm = MaybeNorm(hidden_size, norm)
        self.head = Dense(hidden_size, num_actions, key=k_head)

    def cell_features(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch rows cols features"]:
        """The conv layer's features (after its norm and ReLU), one vector per 3x3 window of the observation."""
        return jax.nn.relu(self.conv_norm(self.conv(obs)))

    def __call__(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        x = self.cell_features(obs)
        x = x.reshape(x.shape[0], -1)
        x = jax.nn.relu(self.hidden_norm(self.hidden(x)))
        return self.head(x)


def greedy_value(q: Float[Array, "*batch actions"]) -> Float[Array, "*batch"]:
    return jnp.max(q, axis=-1)
