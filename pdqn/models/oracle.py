"""The real game as a world model: a perfect model, the ceiling of what planning with a model can give."""

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int, PRNGKeyArray

from pdqn.envs import VecEnv
from pdqn.learner import flatten_time
from pdqn.models.base import CERTAIN_LOGIT, Metrics, Prediction, StepModel, WorldModel
from pdqn.rollout import Rollout


class OracleModel(WorldModel):
    """The real game as a model: imagined steps step gymnax from the rollout's real environment states with
    fresh keys, so imagined transitions are exact samples of the environment. A diagnostic: it answers what
    planning would give with a perfect model."""

    env: VecEnv

    def init(self, key: PRNGKeyArray) -> None:
        return None

    def update(self, state: None, rollout: Rollout, key: PRNGKeyArray) -> tuple[None, Metrics]:
        return None, {}

    def start(self, rollout: Rollout, rows: Int[Array, " n"], after: bool = False) -> Any:
        """The real states of those rows (after a step that ended an episode: the next episode's start, which
        a planner must not continue from)."""
        states = rollout.next_env_state if after else rollout.env_state
        return jax.tree.map(lambda x: flatten_time(x)[rows], states)

    def stepper(self, state: None) -> StepModel:
        def step(obs, env_state, action, key):
            out, env_state = self.env.transition(key, env_state, action)
            certain = lambda flag: jnp.where(flag, CERTAIN_LOGIT, -CERTAIN_LOGIT)  # noqa: E731
            pred = Prediction(
                next_obs_logits=certain(out.final_obs > 0.5),
                reward=out.reward,
                terminated_logit=certain(out.terminated),
                disagreeing_cells=jnp.zeros(action.shape[0], jnp.int32),
                truncated=out.truncated,
            )
            return pred, env_state

        return step

    @property
    def needs_env_states(self) -> bool:
        return True
