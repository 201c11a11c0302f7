"""A structured dynamics model for MinAtar: a per-cell network over each cell's 5x5 neighbourhood, with the
action on every cell and a global path.

MinAtar's dynamics are local (objects move a cell or two per step and collide with their neighbours; a ball's
trail two cells behind it gives its direction) with a few global events (spawns at the edges, a formation that
turns at a wall, the player put back at the start). So every cell's next value is predicted from its own 5x5
neighbourhood, its position and the action, by the same weights everywhere (a convolution whose first layer
is 5x5 and whose later layers are 1x1), and a pooled summary of all cells, FiLM-ed back onto every cell,
carries the global events:

    x    = [5x5 neighbourhood of every cell and of an "outside the grid" channel, row, column, one-hot action]
    h    = ReLU(LN(W1 x))                                    per cell
    g    = ReLU(W_g [mean_cells(h), max_cells(h), action])   the global path
    h    = ReLU(LN(W2 h) * (1 + scale(g)) + shift(g))        FiLM
    next = W_o h + skip * (2 * frame - 1)                    the residual "copy the current frame" path
    reward, terminated = heads([mean_cells(h), max_cells(h), g])

With ``termination_head="cells"`` the termination logit comes instead from the first layer's features without the
action (one pass answers every action, which the veto needs): a logit per action at every cell, for the deaths a
cell's neighbourhood shows (a collision), and one from the pooled cells, for those it does not (Seaquest's oxygen,
or surfacing with no diver: the submarine at the top row and the diver gauge at the bottom). They pool by
log-sum-exp, a soft "it ends at some cell or for a global reason".

The neighbourhood is read from the input, which needs no gradient, so every trained layer is a plain matrix
product over cells (fast on a CPU, unlike the gradient of a stack of 3x3 convolutions). With ``frames > 1``
it reads the stacked frames and predicts the newest frame of the next stack; the older ones are copied with
certainty, as the MLP model does.
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.models.base import CERTAIN_LOGIT, Prediction, every_action_terminated_logits
from pdqn.layers import Dense, LayerNorm

TerminationHead = Literal["summary", "cells"]
"""Where the termination logit comes from: the pooled summary of the action-conditioned features (one pass per
action), or every cell's action-free features with a logit per action (one pass for every action)."""

RADIUS = 2
"""Cells each side of a cell that its prediction reads: 5x5 neighbourhoods."""


def neighbourhoods(x: Float[Array, "batch height width channels"], radius: int = RADIUS) -> Float[Array, "batch height width patch"]:
    """Every cell's ``(2r+1) x (2r+1)`` neighbourhood, flattened over (row, column, channel), with one more channel
    that is 1 past the walls (zeros there would look like empty cells, and a wall bounces a ball)."""
    height, width = x.shape[1], x.shape[2]
    pad = ((0, 0), (radius, radius), (radius, radius), (0, 0))
    outside = jnp.pad(jnp.zeros((*x.shape[:3], 1), x.dtype), pad, constant_values=1.0)
    padded = jnp.concatenate([jnp.pad(x, pad), outside], axis=-1)
    size = 2 * radius + 1
    windows = [padded[:, i : i + height, j : j + width, :] for i in range(size) for j in range(size)]
    return jnp.concatenate(windows, axis=-1)


def cell_inputs(obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch height width inputs"]:
    """What every cell's first layer reads besides the action: its neighbourhood (:func:`neighbourhoods`) and its
    row and column in [-1, 1]."""
    batch, height, width, _ = obs.shape
    rows = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, height)[None, :, None, None], (batch, height, width, 1))
    cols = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, width)[None, None, :, None], (batch, height, width, 1))
    return jnp.concatenate([neighbourhoods(obs), rows, cols], axis=-1)


def cell_input_size(channels: int) -> int:
    """Inputs :func:`cell_inputs` gives every cell of observations with ``channels`` channels."""
    return (2 * RADIUS + 1) ** 2 * (channels + 1) + 2


def pooled(h: Float[Array, "batch height width features"]) -> Float[Array, "batch twice_features"]:
    """Mean and max over the cells: what the global path and the scalar heads see."""
    return jnp.concatenate([jnp.mean(h, axis=(1, 2)), jnp.max(h, axis=(1, 2))], axis=-1)


class CellsTermination(eqx.Module):
    """The "cells" termination head: from every cell's action-free features, a logit per action that the episode
    ends at that cell, and one per action from the pooled cells that it ends for a global reason; log-sum-exp over
    all of them."""

    cell_hidden: Dense
    cell_out: Dense
    global_hidden: Dense
    global_out: Dense

    def __init__(self, features: int, num_actions: int, *, key: PRNGKeyArray):
        keys = jax.random.split(key, 4)
        self.cell_hidden = Dense(features, features, key=keys[0])
        self.cell_out = Dense(features, num_actions, key=keys[1])
        self.global_hidden = Dense(2 * features, features, key=keys[2])
        self.global_out = Dense(features, num_actions, key=keys[3])

    def __call__(self, h: Float[Array, "batch height width features"]) -> Float[Array, "batch actions"]:
        cells = self.cell_out(jax.nn.relu(self.cell_hidden(h)))
        cells = cells.reshape(cells.shape[0], -1, cells.shape[-1])
        overall = self.global_out(jax.nn.relu(self.global_hidden(pooled(h))))
        return jax.nn.logsumexp(jnp.concatenate([cells, overall[:, None, :]], axis=1), axis=1)


class ConvDynamicsModel(eqx.Module):
    """See the module docstring."""

    local: Dense
    local_norm: LayerNorm
    global_in: Dense
    film: Dense
    mixed: Dense
    mixed_norm: LayerNorm
    obs_head: Dense
    reward_head: Dense
    terminated_head: Dense
    skip_scale: Float[Array, " channels"]
    cells_termination: CellsTermination | None
    obs_shape: tuple[int, int, int] = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    frames: int = eqx.field(static=True)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        features: int,
        *,
        key: PRNGKeyArray,
        frames: int = 1,
        termination_head: TerminationHead = "summary",
    ):
        if obs_shape[2] % frames:
            raise ValueError(f"{obs_shape[2]} observation channels do not split into {frames} frames")
        keys = jax.random.split(key, 7)
        self.obs_shape, self.num_actions, self.frames = obs_shape, num_actions, frames
        self.local = Dense(cell_input_size(obs_shape[2]) + num_actions, features, key=keys[0])
        self.local_norm = LayerNorm(features)
        self.global_in = Dense(2 * features + num_actions, features, key=keys[1])
        film = Dense(features, 2 * features, key=keys[2])
        self.film = eqx.tree_at(lambda d: d.weight, film, film.weight * 0.1)  # start near the identity
        self.mixed = Dense(features, features, key=keys[3])
        self.mixed_norm = LayerNorm(features)
        self.obs_head = Dense(features, obs_shape[2] // frames, key=keys[4])
        self.reward_head = Dense(3 * features, 1, key=keys[5])
        self.terminated_head = Dense(3 * features, 1, key=keys[6])
        self.skip_scale = jnp.full((obs_shape[2] // frames,), 2.0, jnp.float32)
        cells = termination_head == "cells"
        self.cells_termination = CellsTermination(features, num_actions, key=jax.random.fold_in(key, 1)) if cells else None

    @property
    def frame_channels(self) -> int:
        return self.obs_shape[2] // self.frames

    def __call__(
        self, obs: Float[Array, "batch height width channels"], action: Int[Array, " batch"]
    ) -> Prediction:
        one_hot = jax.nn.one_hot(action, self.num_actions)
        no_action = self.first_layer_without_action(obs)
        pred = self.predict(obs, no_action + self.local.weight[-self.num_actions :][action][:, None, None, :], one_hot)
        if self.cells_termination is None:
            return pred
        logits = self.cells_terminated_logits(no_action)
        return eqx.tree_at(lambda p: p.terminated_logit, pred, jnp.take_along_axis(logits, action[:, None], 1)[:, 0])

    def first_layer_without_action(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch height width features"]:
        """The first layer's output with no action: the one-hot action is the layer's last inputs, so each action
        adds its own row of the weights to this, and the neighbourhood part (most of the model's work) is shared."""
        inputs = jax.lax.stop_gradient(cell_inputs(obs))
        return inputs @ self.local.weight[: -self.num_actions] + self.local.bias

    def cells_terminated_logits(self, no_action: Float[Array, "batch height width features"]) -> Float[Array, "batch actions"]:
        """The "cells" head's logit for every action, from the first layer's output without the action."""
        assert self.cells_termination is not None
        return self.cells_termination(jax.nn.relu(self.local_norm(no_action)))

    def predict(
        self,
        obs: Float[Array, "batch height width channels"],
        first: Float[Array, "batch height width features"],
        one_hot: Float[Array, "batch actions"],
    ) -> Prediction:
        """The prediction from the first layer's output ``first`` (before its normalisation)."""
        h = jax.nn.relu(self.local_norm(first))
        g = jax.nn.relu(self.global_in(jnp.concatenate([pooled(h), one_hot], axis=-1)))
        scale, shift = jnp.split(self.film(g), 2, axis=-1)
        h = jax.nn.relu(self.mixed_norm(self.mixed(h)) * (1.0 + scale[:, None, None, :]) + shift[:, None, None, :])
        newest = obs[..., obs.shape[-1] - self.frame_channels :]
        logits = self.obs_head(h) + (2.0 * newest - 1.0) * self.skip_scale
        if self.frames > 1:
            older = obs[..., self.frame_channels :]
            logits = jnp.concatenate([CERTAIN_LOGIT * (2.0 * older - 1.0), logits], axis=-1)
        summary = jnp.concatenate([pooled(h), g], axis=-1)
        return Prediction(
            next_obs_logits=logits,
            reward=self.reward_head(summary)[:, 0],
            terminated_logit=self.terminated_head(summary)[:, 0],
        )

    def terminated_logits(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        """Every action's termination logit, ``self(obs, a).terminated_logit`` for each ``a``: from the shared
        first layer, one pass of the "cells" head, or the rest of the network once per action."""
        no_action = self.first_layer_without_action(obs)
        if self.cells_termination is not None:
            return self.cells_terminated_logits(no_action)
        return every_action_terminated_logits(self.predict, obs, no_action, self.local.weight[-self.num_actions :])
