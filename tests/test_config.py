"""Invalid values are rejected before anything is compiled, naming the field and its range."""

import dataclasses

import pytest

from pdqn.config import (
    CheckpointConfig,
    Config,
    ConfigError,
    CounterfactualConfig,
    DynaConfig,
    LearnedModelConfig,
    PlanningConfig,
    PQNConfig,
    TerminationModelConfig,
    TrackConfig,
    ValueExpansionConfig,
    VetoConfig,
)


def test_defaults_are_the_pqn_minatar_setup():
    config = Config()
    pqn = config.pqn
    assert (pqn.num_envs, pqn.num_steps, pqn.num_epochs, pqn.num_minibatches) == (128, 32, 2, 32)
    assert (pqn.lr, pqn.gamma, pqn.td_lambda, pqn.max_grad_norm) == (5e-4, 0.99, 0.65, 10.0)
    assert (pqn.eps_start, pqn.eps_finish, pqn.eps_decay) == (1.0, 0.05, 0.1)
    assert pqn.lr_linear_decay and pqn.norm == "layer_norm"
    assert config.total_timesteps == 10_000_000 and config.eval_every == 0.05


def test_derived_values_are_properties():
    config = Config(total_timesteps=1_003_520)
    assert config.pqn.batch_size == 4096 and config.pqn.minibatch_size == 128
    assert config.num_updates == 245
    assert config.eval_interval == 12

def termination_veto(termination: TerminationModelConfig) -> PlanningConfig:
    return PlanningConfig(planner="none", model="termination", termination=termination, veto=VetoConfig(threshold=0.5))


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: PQNConfig(num_envs=0), "pqn.num_envs"),
        (lambda: PQNConfig(num_minibatches=33), "pqn.num_minibatches"),
        (lambda: PQNConfig(td_lambda=1.5), "pqn.td_lambda"),
        (lambda: PQNConfig(gamma=-0.1), "pqn.gamma"),
        (lambda: PQNConfig(lr=0.0), "pqn.lr"),
        (lambda: PQNConfig(lr=float("nan")), "pqn.lr"),
        (lambda: PQNConfig(extra_minibatches=-1), "pqn.extra_minibatches"),
        (lambda: LearnedModelConfig(fraction=0.0), "dyna.learned.fraction"),
        (lambda: LearnedModelConfig(lr=float("inf")), "dyna.learned.lr"),
        (lambda: DynaConfig(horizon=0), "dyna.dyna.horizon"),
        (lambda: DynaConfig(minibatches=7), "dyna.dyna.minibatches"),
        (lambda: DynaConfig(max_disagreeing_cells=-1), "dyna.dyna.max_disagreeing_cells"),
        (lambda: ValueExpansionConfig(variance_floor=0.0), "dyna.value_expansion.variance_floor"),
        (lambda: ValueExpansionConfig(samples=0), "dyna.value_expansion.samples"),
        (lambda: CounterfactualConfig(share=0.0), "dyna.counterfactual.share"),
        (lambda: CounterfactualConfig(max_wrong_cells=-1), "dyna.counterfactual.max_wrong_cells"),
        (lambda: PlanningConfig(planning_delay=-1), "dyna.planning_delay"),
        (lambda: Config(alg="pdqn", dyna=PlanningConfig(learned=LearnedModelConfig(minibatches=7))), "dyna.learned.minibatches"),
        (lambda: TerminationModelConfig(lr=0.0), "dyna.termination.lr"),
        (lambda: TerminationModelConfig(termination_weight=0.5), "dyna.termination.termination_weight"),
        (
            lambda: Config(alg="pdqn", dyna=termination_veto(TerminationModelConfig(minibatches=7))),
            "dyna.termination.minibatches",
        ),
        (lambda: Config(num_seeds=0), "num_seeds"),
        (lambda: Config(frame_stack=0), "frame_stack"),
        (lambda: Config(total_timesteps=100), "total_timesteps"),
        (lambda: Config(eval_every=2.0), "eval_every"),
        (lambda: Config(eval_every=0.0), "eval_every"),  # None: only at the end
        (lambda: TrackConfig(experiment=""), "track.experiment"),  # None: the default name
        (lambda: CheckpointConfig(every=0), "checkpoint.every"),  # None: at each evaluation
        (lambda: Config(seed=-1), "seed"),
    ],
)
def test_invalid_values_name_the_field_and_range(make, field):
    with pytest.raises(ConfigError, match=rf"^{field}=.* is invalid: must be "):
        make()


def test_configs_are_hashable_values_that_replace_validates():
    """A config is a value: equal configs hash alike, so one can be a static jit argument (an equal config reuses
    the compiled program, a changed field recompiles), and dataclasses.replace goes through the same validation
    as the constructor, naming the field."""
    import functools

    import jax
    import jax.numpy as jnp

    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def updates(config: Config, x: jax.Array) -> jax.Array:
        traces.append(config)
        return x + config.num_updates

    config = Config(total_timesteps=1_003_520)
    assert config == Config(total_timesteps=1_003_520) and hash(config) == hash(Config(total_timesteps=1_003_520))
    assert int(updates(config, jnp.asarray(0))) == 245
    assert int(updates(Config(total_timesteps=1_003_520), jnp.asarray(1))) == 246
    assert len(traces) == 1  # the equal config hit the cache
    assert int(updates(dataclasses.replace(config, total_timesteps=2_007_040), jnp.asarray(0))) == 490
    assert len(traces) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.alg = "pdqn"  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"^pqn\.num_minibatches=33 is invalid: must be "):
        dataclasses.replace(config.pqn, num_minibatches=33)
    with pytest.raises(ConfigError, match=r"^num_seeds=0 is invalid: must be "):
        dataclasses.replace(config, num_seeds=0)


def test_pdqn_defaults_to_gated_anchored_counterfactuals_of_one_model_and_the_gated_dyna_ensemble_is_flags_away():
    from pdqn.cli import parse

    dyna = parse(Config, []).dyna
    assert (dyna.planner, dyna.model, dyna.counterfactual.max_wrong_cells) == ("counterfactual", "learned", 0)
    assert (dyna.counterfactual.minibatches, dyna.counterfactual.share) == (20, 0.25)
    assert (dyna.learned.ensemble_size, dyna.learned.fraction, dyna.dyna.max_disagreeing_cells) == (1, 0.5, None)
    assert dyna.planner_config is dyna.counterfactual
    gated = ["--dyna.planner", "dyna", "--dyna.learned.ensemble-size", "3", "--dyna.dyna.max-disagreeing-cells", "1"]
    dyna = parse(Config, gated).dyna
    assert (dyna.planner, dyna.learned.ensemble_size, dyna.dyna.max_disagreeing_cells) == ("dyna", 3, 1)
    assert dyna.planner_config is dyna.dyna
    with pytest.raises(ConfigError, match=r"pass --dyna.dyna.max-disagreeing-cells None"):
        PlanningConfig(dyna=DynaConfig(max_disagreeing_cells=1))
    oracle = PlanningConfig(model="oracle", dyna=DynaConfig(max_disagreeing_cells=1))  # the real game reports 0 cells
    assert oracle.dyna.max_disagreeing_cells == 1


def test_a_planner_knob_constrains_only_its_own_planner():
    """42 extra minibatches do not divide Dyna's imagined batch, but only Dyna has that constraint."""
    assert CounterfactualConfig(minibatches=42).minibatches == 42
    assert ValueExpansionConfig(minibatches=42).minibatches == 42
    with pytest.raises(ConfigError, match=r"^dyna\.dyna\.minibatches=42 is invalid: must be a divisor of horizon\*num_rollouts=2580"):
        DynaConfig(minibatches=42)


def test_only_the_model_a_run_trains_must_split_its_batch_evenly():
    tiny = PQNConfig(num_envs=2, num_steps=2, num_minibatches=1)  # a 4-transition batch: 2 for a model, fewer than 8
    assert Config(alg="pqn", pqn=tiny, total_timesteps=4).dyna.learned.minibatches == 8  # PQN trains no model
    oracle = PlanningConfig(model="oracle")
    assert Config(alg="pdqn", pqn=tiny, total_timesteps=4, dyna=oracle).dyna.model == "oracle"  # nor does the oracle
    with pytest.raises(ConfigError, match=r"^dyna.learned.minibatches=8 is invalid: must be a divisor of .*=2$"):
        Config(alg="pdqn", pqn=tiny, total_timesteps=4)
    split = TerminationModelConfig(minibatches=2)
    assert Config(alg="pdqn", pqn=tiny, total_timesteps=4, dyna=termination_veto(split))
