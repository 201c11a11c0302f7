"""One PQN/PDQN update as a composition of phases, and compiled chunks of updates over seeds.

update = collect (epsilon-greedy; over the termination veto or search where configured) -> Q(lambda) targets
         -> epochs x minibatches of TD updates (:class:`~pdqn.learner.RealUpdate`)
         -> planner step (PQN: none; PDQN: world-model update, imagination, imagined TD updates)

``--alg pqn`` is exactly this step with :class:`~pdqn.planners.NoPlanner`.
"""

import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.acting import Veto
from pdqn.config import Config, ConfigError
from pdqn.envs import VecEnv, make_env
from pdqn.evaluation import evaluate_episodes
from pdqn.learner import QFit, RealUpdate, TerminationHeadLoss
from pdqn.metrics import (
    ENV_STEP,
    EPSILON,
    LEARNING_RATE,
    SEARCH_CHANGED_ACTION_RATE,
    UPDATE_METRICS,
    VETOED_ACTION_RATE,
    Metric,
    check_produced,
)
from pdqn.models import WorldModel, make_model
from pdqn.networks import QNetwork
from pdqn.planners import PLANNERS, Clock, Context, NoPlanner, Planner, PlannerState, Reuse, SearchPlanner
from pdqn.q_update import linear_decay
from pdqn.rollout import ActingQ, EnvCarry, collect, episode_metrics
from pdqn.schedules import linear_epsilon
from pdqn.search import Search
from pdqn.state import TrainState

Metrics = dict[str, Array]


def planner_context(config: Config, num_actions: int) -> Context:
    """What a planner is told about the learner ``config`` trains (on a game of ``num_actions`` actions)."""
    pqn = config.pqn
    return Context(
        gamma=pqn.gamma,
        td_lambda=pqn.td_lambda,
        minibatch_size=pqn.minibatch_size,
        num_actions=num_actions,
        delay=config.dyna.planning_delay,
    )


def make_planner(config: Config, env: VecEnv, fit: QFit) -> Planner:
    """The planner ``config`` asks for (``NoPlanner`` for ``--alg pqn``, ``Reuse`` for its data-reuse control), with
    its world model, each built from its own config and the few facts about the learner they need."""
    pqn = config.pqn
    if not config.planning and pqn.reuse_rollouts:
        return Reuse(
            fit=fit,
            rollouts=pqn.reuse_rollouts,
            minibatches=pqn.reuse_minibatches,
            minibatch_size=pqn.minibatch_size,
            gamma=pqn.gamma,
            td_lambda=pqn.td_lambda,
            rollout_shape=(pqn.num_steps, pqn.num_envs),
            obs_shape=env.obs_shape,
        )
    if not config.planning:
        return NoPlanner()
    planning = config.dyna
    model = make_model(planning, env, config.pqn.batch_size)
    context = planner_context(config, env.num_actions)
    return PLANNERS[planning.planner].build(planning.planner_config, model, fit, context)


def make_acting(config: Config, planner: Planner, num_actions: int) -> Veto | Search | None:
    """How ``config`` acts beyond Q, with the planner's world model: the termination veto, or the search planner's
    search (None: acting with Q alone)."""
    if isinstance(planner, SearchPlanner):
        return planner.search
    threshold = config.dyna.veto.threshold
    if not config.planning or threshold is None:
        return None
    model = getattr(planner, "model", None)
    if not isinstance(model, WorldModel):
        raise ConfigError(f"dyna.veto.threshold={threshold!r} is invalid: must be None with a planner that has no world model")
    return Veto(model=model, threshold=threshold, num_actions=num_actions)


class Trainer(eqx.Module):
    """The static half of training: config, environments, the real update and the planner (no arrays)."""

    config: Config = eqx.field(static=True)
    env: VecEnv
    eval_env: VecEnv
    real_update: RealUpdate
    planner: Planner
    acting: Veto | Search | None
    """What the policies act on beyond Q (the termination veto, or search), where the config asks for it."""

    def __init__(self, config: Config, env: Any = None, env_params: Any = None, planner: Planner | None = None):
        """``env``/``env_params`` replace the MinAtar game with any gymnax-style environment; ``planner``
        replaces the one ``config`` names (for planners defined outside the package)."""
        self.config = config
        frames, sticky = config.frame_stack, config.sticky_actions
        if env is None:
            self.env = make_env(config.env, config.pqn.num_envs, frames, sticky_actions=sticky)
            self.eval_env = make_env(config.env, config.eval_envs, frames, sticky_actions=sticky)
        else:
            params = env.default_params if env_params is None else env_params
            vec = lambda n: VecEnv(env=env, params=params, num_envs=n, frames=frames, sticky_actions=sticky)  # noqa: E731
            self.env, self.eval_env = vec(config.pqn.num_envs), vec(config.eval_envs)
        pqn = config.pqn
        fit = QFit(pqn.max_grad_norm)
        self.real_update = RealUpdate(
            fit=fit,
            gamma=pqn.gamma,
            td_lambda=pqn.td_lambda,
            epochs=pqn.num_epochs,
            minibatches=pqn.num_minibatches,
            extra_minibatches=pqn.extra_minibatches,
            minibatch_size=pqn.minibatch_size,
            termination_head=TerminationHeadLoss() if pqn.termination_head else None,
        )
        self.planner = make_planner(config, self.env, fit) if planner is None else planner
        self.acting = make_acting(config, self.planner, self.env.num_actions)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """Every metric one update produces, in column order."""
        changed = (self.changed_action_metric,) if self.acts_beyond_q(evaluation=False) else ()
        return UPDATE_METRICS + self.real_update.head_metrics + changed + self.planner.metrics

    @property
    def changed_action_metric(self) -> Metric:
        return SEARCH_CHANGED_ACTION_RATE if isinstance(self.acting, Search) else VETOED_ACTION_RATE

    def acts_beyond_q(self, *, evaluation: bool) -> bool:
        """Whether the behaviour policy (``evaluation``: the greedy one) acts with the veto or search."""
        if self.acting is None:
            return False
        flags = self.config.dyna.search if isinstance(self.acting, Search) else self.config.dyna.veto
        return flags.evaluation if evaluation else flags.training

    def acting_q(self, planner_state: Any, *, evaluation: bool) -> ActingQ | None:
        """What the behaviour policy (or, ``evaluation``, the greedy one) acts on beyond Q: the termination veto
        or search over the world model in ``planner_state``, where the config asks for it."""
        acting = self.acting
        if acting is None or not self.acts_beyond_q(evaluation=evaluation):
            return None
        assert isinstance(planner_state, PlannerState)
        return acting.acting_q(planner_state.model)

    # ---- initialisation -------------------------------------------------------------
    def init(self, key: PRNGKeyArray) -> TrainState:
        pqn = self.config.pqn
        k_q, k_env, k_planner, k_state = jax.random.split(key, 4)
        q_net = QNetwork(
            self.env.obs_shape,
            self.env.num_actions,
            key=k_q,
            norm=pqn.norm,
            conv_features=pqn.conv_features,
            hidden_size=pqn.hidden_size,
            termination_channels=pqn.termination_head_channels,
        )
        obs, env_state, stats = self.env.reset(k_env)
        return TrainState(
            learner=self.real_update.fit.init(q_net),
            envs=EnvCarry(state=env_state, stats=stats, obs=obs),
            planner=self.planner.init(k_planner),
            key=k_state,
            update=jnp.asarray(0, jnp.int32),
        )

    def init_seeds(self) -> TrainState:
        """States of all seeds, stacked along a leading axis."""
        keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(self.config.seeds, jnp.uint32))
        return eqx.filter_vmap(self.init)(keys)

    # ---- schedules ------------------------------------------------------------------
    def clock(self, update: Int[Array, ""]) -> Clock:
        pqn, num_updates = self.config.pqn, self.config.num_updates
        epsilon = linear_epsilon(update, pqn.eps_start, pqn.eps_finish, pqn.eps_decay * num_updates)
        lr = linear_decay(update, pqn.lr, num_updates, pqn.lr_linear_decay)
        return Clock(update=update, epsilon=epsilon, lr=lr)

    # ---- one update -----------------------------------------------------------------
    def update_step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """Collect, real TD updates, then the planner; the key is split here and nowhere else."""
        k_next, k_collect, k_real, k_plan = jax.random.split(state.key, 4)
        clock = self.clock(state.update)
        envs, rollout = collect(
            self.env,
            state.learner.q_net,
            state.envs,
            k_collect,
            epsilon=clock.epsilon,
            num_steps=self.config.pqn.num_steps,
            keep_env_states=self.planner.needs_env_states,
            acting_q=self.acting_q(state.planner, evaluation=False),
            label_every_action=self.config.pqn.termination_head_labels == "every",
            labelled_envs=self.config.pqn.termination_head_labelled_envs,
        )
        learner, real_metrics = self.real_update(state.learner, rollout, k_real, clock.lr)
        learner, planner_state, plan_metrics = self.planner.step(learner, rollout, state.planner, k_plan, clock)
        metrics: Metrics = {
            ENV_STEP: (state.update + 1) * self.config.pqn.batch_size,
            **episode_metrics(rollout),
            **({} if rollout.changed is None else {self.changed_action_metric.name: jnp.mean(rollout.changed)}),
            **real_metrics,
            EPSILON.name: clock.epsilon,
            LEARNING_RATE.name: clock.lr,
            **plan_metrics,
        }
        next_state = TrainState(learner=learner, envs=envs, planner=planner_state, key=k_next, update=state.update + 1)
        return next_state, metrics

    # ---- compiled chunks ------------------------------------------------------------
    def run_updates(self, state: TrainState, num_updates: Int[Array, ""], max_updates: int) -> tuple[TrainState, Metrics]:
        """Up to ``max_updates`` updates of one seed; ``num_updates`` (<= max) is a runtime value,
        so chunks of any length share one compiled program. Unused metric rows are NaN."""
        produced = jax.eval_shape(self.update_step, state)[1]
        check_produced(self.metrics, set(produced) - {ENV_STEP}, "the update")
        buffer = {k: jnp.full((max_updates,), jnp.nan, jnp.float32) for k in produced}

        def body(i, carry):
            state, buffer = carry
            state, metrics = self.update_step(state)
            buffer = {k: buffer[k].at[i].set(jnp.asarray(metrics[k], jnp.float32)) for k in buffer}
            return state, buffer

        return jax.lax.fori_loop(0, num_updates, body, (state, buffer))

    def run_chunk(self, states: TrainState, num_updates: Int[Array, ""]) -> tuple[TrainState, Metrics]:
        """:meth:`run_updates` over all seeds (vmapped); ``num_updates`` is shared."""
        max_updates = self.config.chunk_size
        return jax.vmap(self.run_updates, in_axes=(0, None, None))(states, num_updates, max_updates)

    def evaluate_episodes(
        self, states: TrainState, key: PRNGKeyArray
    ) -> tuple[Float[Array, "seeds envs"], Int[Array, "seeds envs"]]:
        """Return and length of one greedy episode per evaluation environment, for every seed's current Q-network
        (acting with the veto or search where the config evaluates with them)."""
        keys = jax.random.split(key, self.config.num_seeds)

        def evaluate(q_net: QNetwork, planner_state: Any, key: PRNGKeyArray) -> tuple[Array, Array]:
            return evaluate_episodes(self.eval_env, q_net, key, self.acting_q(planner_state, evaluation=True))

        return jax.vmap(evaluate)(states.learner.q_net, states.planner, keys)

    def evaluate(self, states: TrainState, key: PRNGKeyArray) -> Float[Array, "seeds envs"]:
        """Greedy returns of every seed's current Q-network."""
        return self.evaluate_episodes(states, key)[0]


def compiled(fn: Any, *args: Any) -> tuple[Any, float]:
    """Ahead-of-time compile ``fn`` for ``args``; returns the executable and compile seconds."""
    start = time.perf_counter()
    executable = jax.jit(fn).lower(*args).compile()
    return executable, time.perf_counter() - start
