"""The benchmark's evaluation timing: one greedy evaluation as a run makes it, per evaluation step."""

from typing import Any

import jax
import numpy as np
import pytest

from pdqn.config import PQNConfig
from pdqn.experiments.benchmark import Benchmark, TimedChunk, evaluation_seconds, measure, parse_args
from tests.conftest import tiny_planning

TINY_PQN = PQNConfig(num_envs=8, num_steps=8, num_minibatches=4, num_epochs=1)

VETO_AT_EVALUATION = dict(
    planner="none", model="termination", veto=dict(threshold=0.5, training=False), termination=dict(minibatches=2)
)
"""The termination model, vetoing at evaluation only (the fresh-seed study's pqn-veto, tiny)."""


def test_an_evaluation_step_is_one_step_of_every_environment_until_the_longest_episode_ends():
    bench = Benchmark(alg="pqn", updates=1, repeats=1, eval_envs=4, pqn=TINY_PQN)
    timed = TimedChunk(bench.config(), bench.updates)
    result = evaluation_seconds(timed.trainer, timed.states, repeats=1)
    _, lengths = timed.trainer.evaluate_episodes(timed.states, jax.random.PRNGKey(0))
    assert np.asarray(lengths).shape == (1, 4)
    assert result["evaluation_steps"] == int(np.max(lengths)) <= timed.trainer.eval_env.max_episode_steps
    assert result["evaluation_seconds"] > 0
    assert result["evaluation_seconds_per_step"] == pytest.approx(result["evaluation_seconds"] / result["evaluation_steps"])


def test_a_paired_evaluation_benchmark_gives_the_vetos_cost_per_step_in_units_of_pqns():
    bench = Benchmark(
        alg="pdqn", updates=1, repeats=1, eval_envs=4, pqn=TINY_PQN, paired=True, evaluation=True,
        dyna=tiny_planning(VETO_AT_EVALUATION),
    )  # fmt: skip
    result: dict[str, Any] = measure(bench)
    assert result["evaluation_time_per_step_vs_pqn"] == pytest.approx(
        result["evaluation_seconds_per_step"] / result["pqn_evaluation_seconds_per_step"]
    )
    assert result["evaluation_steps"] >= 1 and result["pqn_evaluation_seconds_per_step"] > 0


@pytest.mark.parametrize("flags", [["--eval-envs", "0"], ["--num-seeds", "0"], ["--updates", "0"]])
def test_bad_values_are_one_error_line_and_exit_2(flags, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(flags)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
