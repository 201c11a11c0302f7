"""Acting with a world model: the termination veto, greedy Q among the actions the model does not expect to end
the episode (issue: a world model that knows when the episode ends).

The rule for one state, with ``p_a`` the model's probability that action ``a`` ends the episode::

    allowed_a = p_a <= threshold,       q'_a = q_a where allowed_a (or where no action is allowed), else -inf

and the behaviour policy is epsilon-greedy over ``q'`` (exploration stays uniform over every action); greedy
evaluation takes ``argmax q'``.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from pdqn.models import WorldModel
from pdqn.rollout import ActingQ


def vetoed_q(q_a: Float[Array, " actions"], p_terminal_a: Float[Array, " actions"], threshold: float) -> Float[Array, " actions"]:
    """``q_a`` with every action whose probability of ending the episode is above ``threshold`` set to -inf, unless
    every action's is (then ``q_a`` as it is: greedy)."""
    allowed = p_terminal_a <= threshold
    return jnp.where(allowed | ~jnp.any(allowed), q_a, -jnp.inf)


class Veto(eqx.Module):
    """The termination veto over a world model: ``veto(model_state, q, obs, carry, key)`` gives the Q-values to act
    on (``carry``: what the model needs beyond the observation, the real environment states for the oracle)."""

    model: WorldModel
    threshold: float = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)

    def __call__(
        self,
        model_state: object,
        q: Float[Array, "batch actions"],
        obs: Float[Array, "batch height width channels"],
        carry: object,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "batch actions"], Bool[Array, " batch"]]:
        """The vetoed Q-values, and where the veto changed the greedy action."""
        p_terminal = self.model.termination_probabilities(model_state, obs, carry, key, self.num_actions)
        q_vetoed = jax.vmap(vetoed_q, in_axes=(0, 0, None))(q, p_terminal, self.threshold)
        return q_vetoed, jnp.argmax(q_vetoed, axis=-1) != jnp.argmax(q, axis=-1)

    def acting_q(self, model_state: object) -> ActingQ:
        """The veto as the behaviour or greedy policy acts on it (:func:`pdqn.rollout.collect`,
        :func:`pdqn.evaluation.evaluate_greedy`), with the model in ``model_state``."""
        needs_env_states = self.model.needs_env_states

        def acting_q(q_net, q, obs, env_state, key):
            return self(model_state, q, obs, env_state if needs_env_states else None, key)

        return acting_q
