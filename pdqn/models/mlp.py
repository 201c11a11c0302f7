"""The MLP dynamics network: next observation, reward and termination from (observation, action).

MinAtar observations are binary grids, so each next-observation cell and the termination flag are Bernoulli
variables (logits, binary cross-entropy); the reward is regressed. The next-observation logits get the current
observation as a skip connection, so "nothing changes here" is the easy default the model refines.
"""

import jax
import jax.numpy as jnp
import equinox as eqx
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.layers import Dense, LayerNorm
from pdqn.models.base import CERTAIN_LOGIT, Prediction, every_action_terminated_logits


class DynamicsModel(eqx.Module):
    """An MLP over the flattened observation and the one-hot action, with three heads.

    With ``frames > 1`` the observation is a stack of frames (oldest first along the channels) and
    the model predicts only the newest frame of the next stack; the older ones are the current
    stack shifted by one frame, which the prediction copies with certainty.
    """

    encoder: Dense
    encoder_norm: LayerNorm
    trunk: Dense
    trunk_norm: LayerNorm
    obs_head: Dense
    reward_head: Dense
    terminated_head: Dense
    skip_scale: Float[Array, " channels"]
    obs_shape: tuple[int, int, int] = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    frames: int = eqx.field(static=True)

    def __init__(
        self,
        obs_shape: tuple[int, int, int],
        num_actions: int,
        hidden: int,
        *,
        key: PRNGKeyArray,
        frames: int = 1,
    ):
        if obs_shape[2] % frames:
            raise ValueError(f"{obs_shape[2]} observation channels do not split into {frames} frames")
        k_enc, k_trunk, k_obs, k_rew, k_term = jax.random.split(key, 5)
        flat = obs_shape[0] * obs_shape[1] * obs_shape[2]
        self.obs_shape = obs_shape
        self.num_actions = num_actions
        self.frames = frames
        self.encoder = Dense(flat + num_actions, hidden, key=k_enc)
        self.encoder_norm = LayerNorm(hidden)
        self.trunk = Dense(hidden + num_actions, hidden, key=k_trunk)
        self.trunk_norm = LayerNorm(hidden)
        self.obs_head = Dense(hidden, flat // frames, key=k_obs)
        self.reward_head = Dense(hidden, 1, key=k_rew)
        self.terminated_head = Dense(hidden, 1, key=k_term)
        self.skip_scale = jnp.full((obs_shape[2] // frames,), 2.0, jnp.float32)

    @property
    def frame_channels(self) -> int:
        return self.obs_shape[2] // self.frames

    def __call__(
        self, obs: Float[Array, "batch height width channels"], action: Int[Array, " batch"]
    ) -> Prediction:
        batch = obs.shape[0]
        one_hot = jax.nn.one_hot(action, self.num_actions)
        return self.predict(obs, self.encoder(jnp.concatenate([obs.reshape(batch, -1), one_hot], axis=-1)), one_hot)

    def predict(
        self, obs: Float[Array, "batch height width channels"], first: Float[Array, "batch hidden"], one_hot: Float[Array, "batch actions"]
    ) -> Prediction:
        """The prediction from the encoder's output ``first`` (before its normalisation)."""
        x = jax.nn.relu(self.encoder_norm(first))
        x = jax.nn.relu(self.trunk_norm(self.trunk(jnp.concatenate([x, one_hot], axis=-1))))
        newest = obs[..., obs.shape[-1] - self.frame_channels :]
        logits = self.obs_head(x).reshape(newest.shape) + (2.0 * newest - 1.0) * self.skip_scale
        if self.frames > 1:
            older = obs[..., self.frame_channels :]
            logits = jnp.concatenate([CERTAIN_LOGIT * (2.0 * older - 1.0), logits], axis=-1)
        return Prediction(
            next_obs_logits=logits,
            reward=self.reward_head(x)[:, 0],
            terminated_logit=self.terminated_head(x)[:, 0],
        )

    def terminated_logits(self, obs: Float[Array, "batch height width channels"]) -> Float[Array, "batch actions"]:
        """Every action's termination logit, ``self(obs, a).terminated_logit`` for each ``a``, with the observation's
        part of the encoder computed once (the one-hot action is the encoder's last inputs)."""
        batch = obs.shape[0]
        no_action = self.encoder(jnp.concatenate([obs.reshape(batch, -1), jnp.zeros((batch, self.num_actions))], axis=-1))
        return every_action_terminated_logits(self.predict, obs, no_action, self.encoder.weight[-self.num_actions :])
