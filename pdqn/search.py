"""Decision-time search over a world model with mctx's Gumbel MuZero policy (Danihelka et al. 2022).

The Q-network gives every node its prior and value: at a state ``s`` the prior logits are ``Q(s, .) / temperature``
and the value is ``max_a Q(s, a)``. An edge is one model step,

    reward = r'(s, a),    discount = gamma * (1 - p'(s, a)),    child = s' (the predicted frame, thresholded)

with ``p'`` the model's probability that the step ends the episode. Every action is considered at the root
(MinAtar has at most 6) and the simulations are spread over them by sequential halving, so ``simulations ==
num_actions`` is the exhaustive one-step lookahead ``r' + gamma (1 - p') max_a Q(s', a)``, and more simulations
look deeper along the best actions. With the real game as the model (the oracle) each node is one sampled outcome
of the game's own randomness (enemy spawns, for instance), not an expectation over them.

What search gives back are the root's action values: the backed-up value of every visited action, and the
Q-network's own value for an action no simulation reached. Acting takes the argmax of them (epsilon-greedy in
training); the search planner regresses Q toward them (:mod:`pdqn.planners.search`).
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import mctx
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from pdqn.models import StepModel, WorldModel, threshold_cells
from pdqn.networks import QNetwork, greedy_value
from pdqn.rollout import ActingQ

_mctx: Any = mctx
"""mctx's outputs are chex dataclasses, whose constructors pyright cannot read."""


class Node(eqx.Module):
    """What the search keeps at a node: the frame and the model's carry (the real game's state for the oracle)."""

    obs: Float[Array, "batch height width channels"]
    carry: Any


def root_values(
    step: StepModel,
    q_net: QNetwork,
    obs: Float[Array, "batch height width channels"],
    carry: Any,
    key: PRNGKeyArray,
    *,
    gamma: float,
    simulations: int,
    temperature: float,
) -> tuple[Float[Array, "batch actions"], Bool[Array, "batch actions"]]:
    """The root's action values after ``simulations`` simulations of Gumbel MuZero search from each of a batch of
    states, and which actions the search visited (an unvisited action keeps the Q-network's value)."""
    q_root = q_net(obs)
    num_actions = q_root.shape[-1]
    root = _mctx.RootFnOutput(prior_logits=q_root / temperature, value=greedy_value(q_root), embedding=Node(obs, carry))

    def recurrent(params: None, key: PRNGKeyArray, action: Array, node: Node) -> tuple[Any, Node]:
        pred, next_carry = step(node.obs, node.carry, action.astype(jnp.int32), key)
        next_obs = threshold_cells(pred.next_obs_logits)
        q_next = q_net(next_obs)
        out = _mctx.RecurrentFnOutput(
            reward=pred.reward,
            discount=gamma * (1.0 - jax.nn.sigmoid(pred.terminated_logit)),
            prior_logits=q_next / temperature,
            value=greedy_value(q_next),
        )
        return out, Node(next_obs, next_carry)

    policy = _mctx.gumbel_muzero_policy(
        params=None,
        rng_key=key,
        root=root,
        recurrent_fn=recurrent,
        num_simulations=simulations,
        max_num_considered_actions=num_actions,
        gumbel_scale=0.0,
    )
    summary = policy.search_tree.summary()
    visited = jnp.asarray(summary.visit_counts) > 0
    return jnp.where(visited, summary.qvalues, q_root), visited


class Search(eqx.Module):
    """Acting by search over a world model: the root's action values take the place of Q."""

    model: WorldModel
    gamma: float = eqx.field(static=True)
    simulations: int = eqx.field(static=True)
    temperature: float = eqx.field(static=True)

    def __call__(
        self,
        model_state: object,
        q_net: QNetwork,
        obs: Float[Array, "batch height width channels"],
        carry: object,
        key: PRNGKeyArray,
    ) -> tuple[Float[Array, "batch actions"], Bool[Array, "batch actions"]]:
        """The root's action values at each state and which actions the search visited (``carry``: the real
        environment states for the oracle)."""
        return root_values(
            self.model.stepper(model_state),
            q_net,
            obs,
            carry,
            key,
            gamma=self.gamma,
            simulations=self.simulations,
            temperature=self.temperature,
        )

    def acting_q(self, model_state: object) -> ActingQ:
        """Search as the behaviour or greedy policy acts on it (:func:`pdqn.rollout.collect`,
        :func:`pdqn.evaluation.evaluate_greedy`), with the model in ``model_state``."""
        needs_env_states = self.model.needs_env_states

        def acting_q(q_net, q, obs, env_state, key):
            values, _ = self(model_state, q_net, obs, env_state if needs_env_states else None, key)
            return values, jnp.argmax(values, axis=-1) != jnp.argmax(q, axis=-1)

        return acting_q
