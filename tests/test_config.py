"""Invalid values are rejected before anything is compiled, naming the field and its range."""

import dataclasses

import pytest

from pdqn.config import CheckpointConfig, Config, ConfigError, DynaConfig, PQNConfig, TrackConfig


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
        (lambda: DynaConfig(model_fraction=0.0), "dyna.model_fraction"),
        (lambda: DynaConfig(horizon=0), "dyna.horizon"),
        (lambda: DynaConfig(plan_minibatches=7), "dyna.plan_minibatches"),
        (lambda: DynaConfig(planning_delay=-1), "dyna.planning_delay"),
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


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().alg = "pdqn"  # type: ignore[misc]


def test_pdqn_defaults_to_gated_anchored_counterfactuals_of_one_model_and_the_gated_dyna_ensemble_is_flags_away():
    from pdqn.cli import parse

    dyna = parse(Config, []).dyna
    assert (dyna.planner, dyna.counterfactual_anchor, dyna.counterfactual_max_wrong_cells) == ("counterfactual", True, 0)
    assert dyna.counterfactual_rows == "add"  # on top of full real minibatches
    assert (dyna.ensemble_size, dyna.max_disagreeing_cells) == (1, None)
    gated = ["--dyna.planner", "dyna", "--dyna.ensemble-size", "3", "--dyna.max-disagreeing-cells", "1"]
    dyna = parse(Config, gated).dyna
    assert (dyna.planner, dyna.ensemble_size, dyna.max_disagreeing_cells) == ("dyna", 3, 1)
    with pytest.raises(ConfigError, match=r"pass --dyna.max-disagreeing-cells None"):
        DynaConfig(max_disagreeing_cells=1)
