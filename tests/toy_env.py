"""A deterministic chain environment with known optimal Q-values, in gymnax's interface.

States 0..L-1 are shown as one lit cell of a 3x3x1 grid. Action 0 ("forward") moves one
state on; leaving the last state gives reward 1 and terminates. Action 1 ("quit")
terminates at once with reward ``quit_reward``. Hence, with discount gamma,

    Q*(s, forward) = gamma ** (L - 1 - s),    Q*(s, quit) = quit_reward.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ChainState(environment.EnvState):
    position: jax.Array
    time: int


@struct.dataclass
class ChainParams(environment.EnvParams):
    max_steps_in_episode: int = 100


class Chain(environment.Environment[ChainState, ChainParams]):
    def __init__(self, length: int = 3, quit_reward: float = 0.1):
        super().__init__()
        self.length = length
        self.quit_reward = quit_reward

    @property
    def default_params(self) -> ChainParams:
        return ChainParams()

    def step_env(self, key: jax.Array, state: ChainState, action: Any, params: ChainParams):
        forward = action == 0
        at_end = state.position == self.length - 1
        reward = jnp.where(forward, jnp.where(at_end, 1.0, 0.0), self.quit_reward)
        terminated = jnp.logical_or(~forward, at_end)
        position = jnp.where(forward & ~at_end, state.position + 1, state.position)
        state = ChainState(position=position, time=state.time + 1)
        return self.get_obs(state), state, reward.astype(jnp.float32), terminated, {}

    def reset_env(self, key: jax.Array, params: ChainParams):
        state = ChainState(position=jnp.asarray(0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state: ChainState, params=None, key=None) -> jax.Array:
        return jnp.zeros((9,)).at[state.position].set(1.0).reshape(3, 3, 1)

    def is_terminated(self, state: ChainState, params: ChainParams) -> jax.Array:
        return jnp.asarray(False)

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params: ChainParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params: ChainParams) -> spaces.Box:
        return spaces.Box(0, 1, (3, 3, 1))

    def optimal_q(self, gamma: float) -> jax.Array:
        forward = jnp.asarray([gamma ** (self.length - 1 - s) for s in range(self.length)])
        return jnp.stack([forward, jnp.full(self.length, self.quit_reward)], axis=-1)

    def all_observations(self) -> jax.Array:
        return jax.vmap(lambda p: self.get_obs(ChainState(position=p, time=0)))(jnp.arange(self.length))


@struct.dataclass
class EchoState(environment.EnvState):
    time: int


@struct.dataclass
class EchoParams(environment.EnvParams):
    max_steps_in_episode: int = 1000


class Echo(environment.Environment[EchoState, EchoParams]):
    """Shows the action it last executed: the observation is a 1 x ``num_actions`` x 1 one-hot row
    (all zeros before the first step); every episode terminates after ``length`` steps."""

    def __init__(self, num_actions: int = 3, length: int = 8):
        super().__init__()
        self.actions = num_actions
        self.length = length

    @property
    def default_params(self) -> EchoParams:
        return EchoParams()

    def step_env(self, key: jax.Array, state: EchoState, action: Any, params: EchoParams):
        state = EchoState(time=state.time + 1)
        obs = jnp.zeros((1, self.actions, 1)).at[0, action, 0].set(1.0)
        return obs, state, jnp.asarray(0.0), state.time >= self.length, {}

    def reset_env(self, key: jax.Array, params: EchoParams):
        return jnp.zeros((1, self.actions, 1)), EchoState(time=0)

    def is_terminated(self, state: EchoState, params: EchoParams) -> jax.Array:
        return jnp.asarray(False)

    @property
    def num_actions(self) -> int:
        return self.actions

    def action_space(self, params: EchoParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.actions)

    def observation_space(self, params: EchoParams) -> spaces.Box:
        return spaces.Box(0, 1, (1, self.actions, 1))
