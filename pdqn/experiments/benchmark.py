"""Time compiled training updates and print env steps/s and compile seconds as JSON.

``python -m pdqn.experiments.benchmark --alg pqn --env breakout``
"""

import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp

from pdqn.cli import interruptible, parse
from pdqn.config import Config, CounterfactualConfig, DynaConfig, GameName, PlanningConfig, PQNConfig, SearchConfig, ValueExpansionConfig
from pdqn.planners import Clock, NoPlanner
from pdqn.rollout import collect
from pdqn.state import TrainState
from pdqn.train import Trainer, compiled
from pdqn.models import WorldModel


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """Time ``updates`` training updates, ``repeats`` times after compiling once."""

    alg: Literal["pqn", "pdqn"] = "pqn"
    """Algorithm to time."""
    env: GameName = "breakout"
    """MinAtar game."""
    num_seeds: int = 1
    """Seeds vmapped in the program."""
    updates: int = 20
    """Updates per timed call (each collects pqn.num_envs * pqn.num_steps env steps per seed)."""
    repeats: int = 3
    """Timed calls; the median is reported."""
    phases: bool = False
    """Also time each phase of an update (collect, real TD updates, model, planning) on its own."""
    evaluation: bool = False
    """Also time one greedy evaluation as a run makes it (``eval_envs`` episodes per seed, acting with the veto or
    search where the config evaluates with them), per evaluation step: one step of every evaluation environment (the
    loop runs until the longest episode ends). With --paired, plain PQN's evaluation too, and the ratio per step."""
    eval_envs: int = 128
    """Episodes per seed of a timed evaluation (a run's --eval-envs)."""
    planning_from_start: bool = True
    """For pdqn: no planning delay, so every timed update plans."""
    paired: bool = False
    """Also time plain PQN (the same pqn settings without extra minibatches or reuse), call by call in turn with this
    config, and report the ratio of their seconds per update (this config's cost in units of PQN's, robust to a
    machine whose speed drifts)."""
    pqn: PQNConfig = dataclasses.field(default_factory=PQNConfig)
    """PQN hyperparameters."""
    dyna: PlanningConfig = dataclasses.field(default_factory=PlanningConfig)
    """Planning: planner, world model and their knobs."""

    def __post_init__(self) -> None:
        self.config()  # the run config it times checks its own values (ConfigError: one error line from the CLI)

    def config(self) -> Config:
        dyna = dataclasses.replace(self.dyna, planning_delay=0) if self.planning_from_start else self.dyna
        return Config(
            alg=self.alg,
            env=self.env,
            num_seeds=self.num_seeds,
            eval_envs=self.eval_envs,
            total_timesteps=self.pqn.batch_size * self.updates * (self.repeats + 1),
            log_every=self.updates,
            pqn=self.pqn,
            dyna=dyna,
        )


class TimedChunk:
    """A compiled chunk of ``updates`` updates and the training state it advances, ready to be timed call by call."""

    def __init__(self, config: Config, updates: int):
        self.trainer = Trainer(config)
        self.states = self.trainer.init_seeds()
        self.n = jnp.asarray(updates, jnp.int32)
        self.chunk, self.compile_seconds = compiled(self.trainer.run_chunk, self.states, self.n)
        self.states, _ = self.chunk(self.states, self.n)  # warm-up: first-touch allocations
        jax.block_until_ready(self.states)

    def time(self) -> float:
        start = time.perf_counter()
        self.states, metrics = self.chunk(self.states, self.n)
        jax.block_until_ready((self.states, metrics))
        return time.perf_counter() - start


def measure(bench: Benchmark) -> dict[str, object]:
    config = bench.config()
    timed = TimedChunk(config, bench.updates)
    trainer, compile_seconds = timed.trainer, timed.compile_seconds
    plain = None
    if bench.paired:
        pqn = dataclasses.replace(config.pqn, extra_minibatches=0, reuse_rollouts=0, reuse_minibatches=0)
        plain = TimedChunk(dataclasses.replace(config, alg="pqn", pqn=pqn), bench.updates)
    seconds, ratios = [], []
    for _ in range(bench.repeats):
        seconds.append(timed.time())
        if plain is not None:
            ratios.append(seconds[-1] / plain.time())
    states = timed.states
    steps = bench.updates * config.pqn.batch_size * config.num_seeds
    rates = [steps / s for s in seconds]
    result: dict[str, object] = {
        "alg": bench.alg,
        "env": bench.env,
        "num_seeds": bench.num_seeds,
        "env_steps_per_second": statistics.median(rates),
        "env_steps_per_second_all": rates,
        "seconds_per_update": statistics.median(seconds) / bench.updates,
        "compile_seconds": compile_seconds,
        "env_steps_per_call": steps,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "real_gradient_steps_per_update": config.pqn.real_gradient_steps,
    }
    if ratios:
        result["time_per_update_vs_pqn"] = statistics.median(ratios)
        result["time_per_update_vs_pqn_all"] = ratios
    result |= rollout_bytes(trainer, states)
    if bench.phases:
        result["phase_seconds_per_update"] = phase_seconds(trainer, states, bench.repeats)
    if bench.evaluation:
        evaluation = evaluation_seconds(trainer, states, bench.repeats)
        result |= evaluation
        if plain is not None:
            per_step = evaluation_seconds(plain.trainer, plain.states, bench.repeats)["evaluation_seconds_per_step"]
            result["pqn_evaluation_seconds_per_step"] = per_step
            result["evaluation_time_per_step_vs_pqn"] = evaluation["evaluation_seconds_per_step"] / per_step
    if config.planning:
        result |= planner_counts(config.dyna.planner_config, config.pqn.minibatch_size)
    return result


def planner_counts(
    planner: CounterfactualConfig | DynaConfig | ValueExpansionConfig | SearchConfig | None, minibatch_size: int
) -> dict[str, int]:
    """What the chosen planner adds to an update: its gradient steps, and the rows it makes (None: the planner
    "none", which adds none)."""
    if planner is None:
        return {"planner_gradient_steps_per_update": 0}
    if isinstance(planner, CounterfactualConfig):
        rows = planner.minibatches * planner.rows_per_minibatch(minibatch_size)
        return {"planner_gradient_steps_per_update": planner.minibatches, "counterfactual_rows_per_update": rows}
    if isinstance(planner, DynaConfig):
        return {
            "imagined_transitions_per_update": planner.imagined_batch_size,
            "imagined_gradient_steps_per_update": planner.imagined_gradient_steps,
        }
    if isinstance(planner, SearchConfig):
        return {"planner_gradient_steps_per_update": planner.minibatches, "search_simulations": planner.simulations}
    return {"planner_gradient_steps_per_update": planner.minibatches}


def time_call(fn, *args, repeats: int) -> float:
    """Median seconds of a compiled call (compiled and warmed up first)."""
    jax.block_until_ready(fn(*args))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def phase_seconds(trainer: Trainer, states: TrainState, repeats: int) -> dict[str, float]:
    """Seconds per update spent in each phase, each compiled and timed separately (vmapped over seeds)."""
    config, planner = trainer.config, trainer.planner
    vmap = lambda f: jax.jit(jax.vmap(f))  # noqa: E731
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(config.num_seeds))
    clocks = jax.vmap(trainer.clock)(states.update)

    def collect_one(state: TrainState, key: jax.Array, clock: Clock):
        return collect(
            trainer.env, state.learner.q_net, state.envs, key, epsilon=clock.epsilon,
            num_steps=config.pqn.num_steps, keep_env_states=planner.needs_env_states,
            acting_q=trainer.acting_q(state.planner, evaluation=False),
        )  # fmt: skip

    collect_fn = vmap(collect_one)
    _, rollout = collect_fn(states, keys, clocks)
    real = vmap(lambda s, k, r, c: trainer.real_update(s.learner, r, k, c.lr))
    plan = vmap(lambda s, k, r, c: planner.step(s.learner, r, s.planner, k, c))
    result = {
        "collect": time_call(collect_fn, states, keys, clocks, repeats=repeats),
        "targets_and_real_td_updates": time_call(real, states, keys, rollout, clocks, repeats=repeats),
    }
    if not isinstance(planner, NoPlanner):  # a PDQN planner, or PQN's data-reuse control
        result["planner_step"] = time_call(plan, states, keys, rollout, clocks, repeats=repeats)
    model = getattr(planner, "model", None)
    if isinstance(model, WorldModel):
        update = vmap(lambda s, k, r: model.update(s.planner.model, r, k))
        result["of_which_model_update"] = time_call(update, states, keys, rollout, repeats=repeats)
    return result


def evaluation_seconds(trainer: Trainer, states: TrainState, repeats: int) -> dict[str, float]:
    """One greedy evaluation of every seed (:meth:`Trainer.evaluate_episodes`, compiled): its median seconds, its
    steps (the longest episode: the loop steps every environment until the last one ends) and the seconds per step."""
    evaluate = jax.jit(trainer.evaluate_episodes)
    key = jax.random.PRNGKey(0)
    _, lengths = evaluate(states, key)
    steps = int(jnp.max(lengths))
    seconds = time_call(evaluate, states, key, repeats=repeats)
    return {"evaluation_seconds": seconds, "evaluation_steps": steps, "evaluation_seconds_per_step": seconds / steps}


def rollout_bytes(trainer: Trainer, states: TrainState) -> dict[str, int]:
    """Bytes of one update's rollout (all seeds), and of the environment states in it (kept for the oracle)."""
    config = trainer.config

    def collect_one(state: TrainState):
        return collect(
            trainer.env, state.learner.q_net, state.envs, state.key, epsilon=jnp.asarray(0.0),
            num_steps=config.pqn.num_steps, keep_env_states=trainer.planner.needs_env_states,
        )[1]  # fmt: skip

    shapes = jax.eval_shape(jax.vmap(collect_one), states)
    size = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))  # noqa: E731
    return {"rollout_bytes": size(shapes), "rollout_env_state_bytes": size(shapes.env_state)}


def parse_args(args: Sequence[str]) -> Benchmark:
    """The command line's options, without compiling anything; bad input exits 2 with one ``error:`` line,
    --help exits 0."""
    return parse(Benchmark, args, description=__doc__, prog="python -m pdqn.experiments.benchmark")


def main(args: list[str] | None = None) -> int:
    bench = parse_args(sys.argv[1:] if args is None else args)
    with interruptible("benchmark"):
        print(json.dumps(measure(bench), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
