"""One PQN/PDQN update as a composition of phases, and compiled chunks of updates over seeds.

update = collect -> Q(lambda) targets -> epochs x minibatches of TD updates
         [pdqn] -> model update -> imagine -> imagined TD updates (same targets and update code)

``--alg pqn`` is exactly this step with planning switched off.
"""

import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from pdqn.config import Config
from pdqn.dynamics import Ensemble, ModelBatch, model_loss, model_optimiser
from pdqn.envs import VecEnv, make_env
from pdqn.evaluation import evaluate_greedy
from pdqn.networks import QNetwork
from pdqn.planning import bootstrap_gap, ensemble_step_model, imagine, imagined_batch
from pdqn.q_update import QBatch, batch_mean_td_loss, linear_decay, q_optimiser, sgd_epochs, td_loss
from pdqn.rollout import Rollout, collect, episode_metrics
from pdqn.schedules import linear_epsilon
from pdqn.state import TrainState
from pdqn.targets import batched_q_lambda_targets

Metrics = dict[str, Array]


def flatten_time(x: Array) -> Array:
    return x.reshape(-1, *x.shape[2:])


class Trainer(eqx.Module):
    """The static half of training: config, environments and optimisers (no arrays)."""

    config: Config = eqx.field(static=True)
    env: VecEnv
    eval_env: VecEnv

    def __init__(self, config: Config, env: Any = None, env_params: Any = None):
        """``env``/``env_params`` replace the MinAtar game with any gymnax-style environment."""
        self.config = config
        frames = config.frame_stack
        if env is None:
            self.env = make_env(config.env, config.pqn.num_envs, frames)
            self.eval_env = make_env(config.env, config.eval_envs, frames)
        else:
            params = env.default_params if env_params is None else env_params
            self.env = VecEnv(env=env, params=params, num_envs=config.pqn.num_envs, frames=frames)
            self.eval_env = VecEnv(env=env, params=params, num_envs=config.eval_envs, frames=frames)

    # ---- initialisation -------------------------------------------------------------
    def init(self, key: PRNGKeyArray) -> TrainState:
        pqn, dyna = self.config.pqn, self.config.dyna
        k_q, k_env, k_model, k_state = jax.random.split(key, 4)
        q_net = QNetwork(
            self.env.obs_shape,
            self.env.num_actions,
            key=k_q,
            norm=pqn.norm,
            conv_features=pqn.conv_features,
            hidden_size=pqn.hidden_size,
        )
        obs, env_state, stats = self.env.reset(k_env)
        model = model_opt_state = None
        if self.config.planning:
            model = Ensemble(
                self.env.obs_shape,
                self.env.num_actions,
                dyna.model_hidden,
                dyna.ensemble_size,
                key=k_model,
                frames=self.config.frame_stack,
            )
            model_opt_state = model_optimiser().init(eqx.filter(model, eqx.is_array))
        return TrainState(
            q_net=q_net,
            q_opt_state=q_optimiser(pqn.max_grad_norm).init(eqx.filter(q_net, eqx.is_array)),
            env_state=env_state,
            env_stats=stats,
            obs=obs,
            key=k_state,
            update=jnp.asarray(0, jnp.int32),
            model=model,
            model_opt_state=model_opt_state,
        )

    def init_seeds(self) -> TrainState:
        """States of all seeds, stacked along a leading axis."""
        seeds = np.arange(self.config.num_seeds) + self.config.seed
        keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
        return eqx.filter_vmap(self.init)(keys)

    # ---- schedules ------------------------------------------------------------------
    def epsilon(self, update: Int[Array, ""]) -> Float[Array, ""]:
        pqn = self.config.pqn
        return linear_epsilon(update, pqn.eps_start, pqn.eps_finish, pqn.eps_decay * self.config.num_updates)

    def plan_epsilon(self, update: Int[Array, ""]) -> Float[Array, ""]:
        dyna = self.config.dyna
        if not dyna.use_plan_eps:
            return self.epsilon(update)
        decay = dyna.plan_eps_decay * self.config.num_updates
        return linear_epsilon(update, dyna.plan_eps_start, dyna.plan_eps_finish, decay)

    def learning_rate(self, update: Int[Array, ""]) -> Float[Array, ""]:
        pqn = self.config.pqn
        return linear_decay(update, pqn.lr, self.config.num_updates, pqn.lr_linear_decay)

    # ---- phases ---------------------------------------------------------------------
    def real_batch(self, rollout: Rollout) -> QBatch:
        pqn = self.config.pqn
        targets = batched_q_lambda_targets(
            rollout.reward, rollout.terminated, rollout.truncated, rollout.q_next_max, pqn.gamma, pqn.td_lambda
        )
        return QBatch(
            obs=flatten_time(rollout.obs),
            action=flatten_time(rollout.action),
            target=flatten_time(targets),
            weight=jnp.ones(targets.size),
        )

    def train_q(
        self,
        state: TrainState,
        key: PRNGKeyArray,
        batch: QBatch,
        epochs: int,
        minibatches: int,
        loss_fn: Callable[[QNetwork, QBatch], tuple[Float[Array, ""], Float[Array, ""]]] = td_loss,
    ) -> tuple[TrainState, Float[Array, ""], Float[Array, ""]]:
        q_net, opt_state, (loss, mean_q) = sgd_epochs(
            loss_fn,
            q_optimiser(self.config.pqn.max_grad_norm),
            self.learning_rate(state.update),
            state.q_net,
            state.q_opt_state,
            key,
            batch,
            epochs,
            minibatches,
        )
        state = eqx.tree_at(lambda s: (s.q_net, s.q_opt_state), state, (q_net, opt_state))
        return state, loss, mean_q

    def train_real(self, state: TrainState, key: PRNGKeyArray, batch: QBatch) -> tuple[TrainState, Array, Array]:
        """The PQN epochs, then (compute-matched control) extra minibatches of the same batch."""
        pqn = self.config.pqn
        k_epochs, k_extra = jax.random.split(key)
        state, loss, mean_q = self.train_q(state, k_epochs, batch, pqn.num_epochs, pqn.num_minibatches)
        if pqn.extra_minibatches:
            extra = subsample(k_extra, batch, pqn.extra_minibatches * pqn.minibatch_size)
            state, _, _ = self.train_q(state, k_extra, extra, 1, pqn.extra_minibatches)
        return state, loss, mean_q

    def train_model(self, state: TrainState, key: PRNGKeyArray, rollout: Rollout) -> tuple[TrainState, Metrics]:
        dyna = self.config.dyna
        k_subset, key = jax.random.split(key)
        batch = ModelBatch(
            obs=flatten_time(rollout.obs),
            action=flatten_time(rollout.action),
            next_obs=flatten_time(rollout.next_obs),
            reward=flatten_time(rollout.reward),
            terminated=flatten_time(rollout.terminated),
        )
        if self.config.model_batch_size < self.config.pqn.batch_size:
            batch = subsample(k_subset, batch, self.config.model_batch_size)
        model, opt_state, (loss, metrics) = sgd_epochs(
            model_loss,
            model_optimiser(),
            jnp.asarray(dyna.model_lr, jnp.float32),
            state.model,
            state.model_opt_state,
            key,
            batch,
            dyna.model_epochs,
            dyna.model_minibatches,
        )
        state = eqx.tree_at(lambda s: (s.model, s.model_opt_state), state, (model, opt_state))
        return state, {"model_loss": loss, **summarise_model_metrics(metrics)}

    def plan(self, state: TrainState, key: PRNGKeyArray, rollout: Rollout) -> tuple[TrainState, Metrics]:
        """Imagined rollouts from states sampled across the whole real batch, then TD updates on them."""
        pqn, dyna = self.config.pqn, self.config.dyna
        k_start, k_imagine, k_update = jax.random.split(key, 3)
        real_obs = flatten_time(rollout.obs)
        starts = jax.random.randint(k_start, (dyna.num_rollouts,), 0, real_obs.shape[0])
        step_model = ensemble_step_model(state.model)
        imagined = imagine(
            step_model,
            state.q_net,
            real_obs[starts],
            k_imagine,
            self.plan_epsilon(state.update),
            dyna.horizon,
            dyna.binarize,
            dyna.max_cell_uncertainty,
            dyna.max_disagreeing_cells,
            dyna.max_uncertain_cells,
            dyna.on_threshold,
        )
        gap = bootstrap_gap(
            step_model,
            state.q_net,
            real_obs[starts],
            flatten_time(rollout.action)[starts],
            flatten_time(rollout.next_obs)[starts],
            flatten_time(rollout.terminated)[starts],
            jax.random.fold_in(key, 1),  # a side stream: training's random numbers stay as they were
            dyna.binarize,
            dyna.on_threshold,
        )
        batch = imagined_batch(imagined, pqn.gamma, pqn.td_lambda)
        loss_fn = batch_mean_td_loss if dyna.imagined_loss_mean == "batch" else td_loss
        planned, loss, mean_q = self.train_q(
            state, k_update, batch, dyna.plan_epochs, dyna.plan_minibatches, loss_fn
        )
        active = state.update >= dyna.planning_delay
        keep = lambda s: (s.q_net, s.q_opt_state)  # noqa: E731
        chosen = jax.tree.map(lambda new, old: jnp.where(active, new, old), keep(planned), keep(state))
        state = eqx.tree_at(keep, state, chosen)
        nan = jnp.asarray(jnp.nan, jnp.float32)
        live = imagined.alive.astype(jnp.float32)
        live_mean = lambda x: jnp.sum(x * live) / jnp.maximum(jnp.sum(live), 1.0)  # noqa: E731
        extra: Metrics = {}
        if dyna.ensemble_size > 1:
            extra["imagined_disagreeing_cells"] = live_mean(imagined.disagreeing_cells)
        if dyna.max_cell_uncertainty < 0.5:
            extra["imagined_uncertain_cells"] = live_mean(imagined.uncertain_cells)
        return state, extra | {
            "planning_active": active,
            "imagined_td_loss": jnp.where(active, loss, nan),
            "imagined_mean_q": jnp.where(active, mean_q, nan),
            # Beside the real batch's reward_rate and termination_rate: a model that misses rewards or
            # deaths shows here as hallucinated values (the imagined policy is the behaviour one).
            "imagined_reward_rate": live_mean(imagined.reward),
            "imagined_bootstrap_gap": gap,
            "imagined_termination_rate": jnp.mean(imagined.terminated & imagined.alive),
            "imagined_alive_fraction": jnp.mean(imagined.alive),
            "imagined_trusted_fraction": jnp.mean(imagined.alive & imagined.trusted),
        }

    def update_step(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One full update: collect, targets, real TD updates, and (PDQN) model and planning."""
        pqn = self.config.pqn
        epsilon = self.epsilon(state.update)
        lr = self.learning_rate(state.update)
        state, rollout = collect(self.env, state, epsilon, pqn.num_steps)
        key, k_real, k_model, k_plan = jax.random.split(state.key, 4)
        state = eqx.tree_at(lambda s: s.key, state, key)
        state, loss, mean_q = self.train_real(state, k_real, self.real_batch(rollout))
        metrics: Metrics = {
            "env_step": (state.update + 1) * pqn.batch_size,
            **episode_metrics(rollout),
            "reward_rate": jnp.mean(rollout.reward),
            "termination_rate": jnp.mean(rollout.terminated),
            "td_loss": loss,
            "mean_q": mean_q,
            "epsilon": epsilon,
            "lr": lr,
        }
        if self.config.planning:
            state, model_metrics = self.train_model(state, k_model, rollout)
            state, plan_metrics = self.plan(state, k_plan, rollout)
            metrics |= model_metrics | plan_metrics
        state = eqx.tree_at(lambda s: s.update, state, state.update + 1)
        return state, metrics

    # ---- compiled chunks ------------------------------------------------------------
    def run_updates(self, state: TrainState, num_updates: Int[Array, ""], max_updates: int) -> tuple[TrainState, Metrics]:
        """Up to ``max_updates`` updates of one seed; ``num_updates`` (<= max) is a runtime value,
        so chunks of any length share one compiled program. Unused metric rows are NaN."""
        shapes = jax.eval_shape(self.update_step, state)[1]
        buffer = {k: jnp.full((max_updates,), jnp.nan, jnp.float32) for k in shapes}

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

    def evaluate(self, states: TrainState, key: PRNGKeyArray) -> Float[Array, "seeds envs"]:
        """Greedy returns of every seed's current Q-network."""
        keys = jax.random.split(key, self.config.num_seeds)
        return jax.vmap(lambda q, k: evaluate_greedy(self.eval_env, q, k))(states.q_net, keys)


def subsample(key: PRNGKeyArray, data: Any, size: int) -> Any:
    """``size`` rows of a flat batch, drawn without replacement."""
    rows = jax.random.permutation(key, jax.tree.leaves(data)[0].shape[0])[:size]
    return jax.tree.map(lambda x: x[rows], data)


def summarise_model_metrics(metrics: Metrics) -> Metrics:
    """Turn the mean per-minibatch counts into termination precision and recall."""
    metrics = dict(metrics)
    true_positive = metrics.pop("model_term_true_positive")
    predicted = metrics.pop("model_term_predicted")
    actual = metrics.pop("model_term_actual")
    nan = jnp.asarray(jnp.nan, jnp.float32)
    metrics["model_term_precision"] = jnp.where(predicted > 0, true_positive / predicted, nan)
    metrics["model_term_recall"] = jnp.where(actual > 0, true_positive / actual, nan)
    return metrics


def compiled(fn: Any, *args: Any) -> tuple[Any, float]:
    """Ahead-of-time compile ``fn`` for ``args``; returns the executable and compile seconds."""
    start = time.perf_counter()
    executable = jax.jit(fn).lower(*args).compile()
    return executable, time.perf_counter() - start
