"""Acting with a world model: the termination veto, greedy Q among the actions the model does not expect to end
the episode (issue: a world model that knows when the episode ends).

The rule for one state, with ``p_a`` the model's probability that action ``a`` ends the episode and ``g`` the greedy
action (``argmax_a q_a``)::

    safe_a = p_a <= safe_threshold      (safe_threshold: the threshold itself unless set lower)
    vetoed = p_g > threshold and some action is safe
    q'_a = -inf where vetoed and not safe_a, else q_a

so the agent acts greedily unless the model expects its greedy action to end the episode and some action to be safe,
and then greedily among the safe ones. The behaviour policy is epsilon-greedy over ``q'`` (exploration stays uniform
over every action); greedy evaluation takes ``argmax q'``. A safe threshold below the threshold asks the model to be
sure of the replacement before it moves the policy off its greedy action (a false veto costs what the greedy action
was worth; issue 31's fresh-seed study, Breakout).

The risk-weighted rule folds the probability into the value instead of cutting at a threshold:
``q'_a = (1 - p_a) q_a``, the action's value if a terminating step is worth nothing afterwards (MinAtar's rewards are
never negative).
"""

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from pdqn.models import WorldModel
from pdqn.rollout import ActingQ


def vetoed_q(
    q_a: Float[Array, " actions"],
    p_terminal_a: Float[Array, " actions"],
    threshold: float,
    safe_threshold: float | None = None,
) -> Float[Array, " actions"]:
    """``q_a`` with every unsafe action (probability of ending the episode above ``safe_threshold``, by default
    ``threshold``) set to -inf when the greedy action's probability is above ``threshold`` and some action is safe;
    otherwise ``q_a`` as it is."""
    safe = p_terminal_a <= (threshold if safe_threshold is None else safe_threshold)
    vetoed = (p_terminal_a[jnp.argmax(q_a)] > threshold) & jnp.any(safe)
    return jnp.where(vetoed & ~safe, -jnp.inf, q_a)


def risk_weighted_q(q_a: Float[Array, " actions"], p_terminal_a: Float[Array, " actions"]) -> Float[Array, " actions"]:
    """``(1 - p_a) q_a``: each action's value with the model's probability that its step ends the episode folded in."""
    return (1.0 - p_terminal_a) * q_a


VetoRule = Literal["threshold", "risk_weighted"]


class Veto(eqx.Module):
    """The termination veto over a world model: ``veto(model_state, q, obs, carry, key)`` gives the Q-values to act
    on (``carry``: what the model needs beyond the observation, the real environment states for the oracle)."""

    model: WorldModel
    threshold: float = eqx.field(static=True)
    num_actions: int = eqx.field(static=True)
    safe_threshold: float | None = eqx.field(static=True, default=None)
    rule: VetoRule = eqx.field(static=True, default="threshold")
    """"threshold" (:func:`vetoed_q`, with ``threshold`` and ``safe_threshold``) or "risk_weighted"
    (:func:`risk_weighted_q`, which reads neither)."""

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
        if self.rule == "risk_weighted":
            q_vetoed = jax.vmap(risk_weighted_q)(q, p_terminal)
        else:
            q_vetoed = jax.vmap(vetoed_q, in_axes=(0, 0, None, None))(q, p_terminal, self.threshold, self.safe_threshold)
        return q_vetoed, jnp.argmax(q_vetoed, axis=-1) != jnp.argmax(q, axis=-1)

    def acting_q(self, model_state: object) -> ActingQ:
        """The veto as the behaviour or greedy policy acts on it (:func:`pdqn.rollout.collect`,
        :func:`pdqn.evaluation.evaluate_greedy`), with the model in ``model_state``."""
        needs_env_states = self.model.needs_env_states

        def acting_q(q_net, q, obs, env_state, key):
            return self(model_state, q, obs, env_state if needs_env_states else None, key)

        return acting_q
