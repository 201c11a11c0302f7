"""Configs as JSON-ready data, and the migration of configs saved by older versions (in one place).

A run saves its config (``config.json``, checkpoints, Aim's hparams) as :func:`config_dict` writes it;
:func:`config_from_dict` rebuilds it, also from what an older version wrote: options added since take the value
older runs ran with (:data:`LEGACY_VALUES`) or today's default, values now spelled otherwise are respelled
(:data:`REPLACED_VALUES`), options removed since are dropped where the run did not depend on them
(:data:`REMOVED_OPTIONS`), and the flat planning group of configs saved before each planner and the learned model
had a group of their own is laid out in groups (:data:`FLAT_PLANNING_OPTIONS`).
"""

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from pdqn.config import Config, ConfigError, PlanningConfig

def config_dict(config: Config) -> dict[str, Any]:
    """The config as JSON-ready data (what ``config.json``, checkpoints and Aim's hparams hold)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


LEGACY_VALUES: dict[str, Any] = {
    "planner": "dyna",
    "model_fraction": 1.0,
    "ensemble_size": 1,
    "max_disagreeing_cells": None,
    "imagined_loss_mean": "trusted",
    "counterfactual_anchor": False,
    "counterfactual_max_wrong_cells": None,
    "counterfactual_rows": "replace",
}
"""Options of the flat planning group whose default changed after they were added: a config saved before the
option existed ran with this value, not with today's default (any other missing option takes its default)."""

REPLACED_VALUES: dict[str, dict[Any, Any]] = {
    "log_every": {0: None},
    "eval_every": {0: None},
    "checkpoint.every": {0: None},
    "track.experiment": {"": None},
    "track.sweep": {"": None},
}
"""Values an older version wrote for what is now spelled otherwise (its 0 or "" for "automatic", "only at the end",
"at each evaluation", "the default name", "no sweep" -> None); a dotted name is an option of a group."""


@dataclasses.dataclass(frozen=True)
class RemovedOption:
    """An option of the flat planning group removed after the evidence rejected it (or nothing used it)."""

    kept: Any
    """The value every run now has."""
    why: str
    commit: str
    """The last commit that can run the other values."""
    planners: tuple[str, ...]
    """The planners whose runs depended on it (none: it never decided anything alone)."""
    models: tuple[str, ...] = ("learned", "oracle")
    """The world models with which it mattered."""


ABLATIONS = "experiments/pdqn-ablations"
REMOVED_OPTIONS: dict[str, RemovedOption] = {
    "binarize": RemovedOption("threshold", f"sampled imagined cells were rejected by {ABLATIONS}", "882451e", ("dyna",)),
    "first_action": RemovedOption(
        "policy", "untaken first actions of Dyna rollouts gave way to the counterfactual planner", "cb54186", ("dyna",)
    ),
    "use_plan_eps": RemovedOption(False, "a planning epsilon of its own was never used", "b6951e8", ("dyna",)),
    "plan_eps_start": RemovedOption(1.0, "used only with use_plan_eps", "b6951e8", ()),
    "plan_eps_finish": RemovedOption(0.05, "used only with use_plan_eps", "b6951e8", ()),
    "plan_eps_decay": RemovedOption(0.1, "used only with use_plan_eps", "b6951e8", ()),
    "counterfactual_rows": RemovedOption(
        "add", "rows in place of real ones were rejected by experiments/planner-screen", "b6951e8", ("counterfactual",)
    ),
    "counterfactual_anchor": RemovedOption(
        True, "unanchored rows were rejected by experiments/planner-screen", "b6951e8", ("counterfactual",), ("learned",)
    ),
    "imagined_loss_mean": RemovedOption(
        "batch", f"the loss over trusted rows alone was rejected by {ABLATIONS}", "b6951e8", ("dyna",)
    ),
    "on_threshold": RemovedOption(0.5, f"other thresholds were rejected by {ABLATIONS}", "b6951e8", ("dyna",)),
    "max_cell_uncertainty": RemovedOption(0.5, f"the uncertain-cell gate was rejected by {ABLATIONS}", "b6951e8", ("dyna",)),
    "max_uncertain_cells": RemovedOption(0, "used only with max_cell_uncertainty below 0.5", "b6951e8", ()),
}
"""Options of the flat planning group removed since: a saved config with the kept value, or whose run did not depend
on the option (PQN, another planner, another model), loads without it; one that ran another value is an error that
names the commit to check out."""

UNMERGED_OPTIONS: dict[str, RemovedOption] = {
    "dyna.learned.terminal_store": RemovedOption(
        0,
        "a store of recent terminations replayed into the model's batches, screened on the local branch terminal-store "
        "and rejected by experiments/decision-time (store-256-seaquest), never merged",
        "terminal-store",
        ("counterfactual", "dyna", "value_expansion", "search"),
        ("learned",),
    ),
    "dyna.termination.radius": RemovedOption(
        2,
        "a 3x3 termination model, cheaper, screened at commit cdcdbbf and rejected by experiments/decision-time "
        "(A 3x3 termination model: on Seaquest its veto recovered less of the real game's gain than the 5x5's)",
        "cdcdbbf",
        ("none",),
        ("termination",),
    ),
    "dyna.termination.features_from": RemovedOption(
        "observation",
        "the termination model's head on the Q-network's conv features, cheaper, screened at commit 5852278 and "
        "rejected by experiments/decision-time (A termination head on the Q-network's features: its veto never acted)",
        "5852278",
        ("none",),
        ("termination",),
    ),
    "pqn.termination_head_weight": RemovedOption(
        None,
        "a termination head on the Q-network's conv features trained by an auxiliary loss (the veto's model q_head), "
        "screened at commit 569f64e and rejected by experiments/decision-time (A termination head trained with the "
        "Q-network: it helped Asterix and wrecked Seaquest's Q-network)",
        "569f64e",
        ("none",),
        ("q_head",),
    ),
    "pqn.termination_head_positive_weight": RemovedOption(
        10.0, "used only with pqn.termination_head_weight", "569f64e", ("none",), ("q_head",)
    ),
    # Before pqn.termination_head_channels: a run that labelled every action names the commit that can label them.
    "pqn.termination_head_labels": RemovedOption(
        "taken",
        "every action's termination, labelled by the simulator, for the Q-network's termination head: a ceiling measured "
        "at commit 9fded55 by experiments/decision-time (Every action's termination learned in the run), never merged",
        "9fded55",
        ("none",),
        ("q_head",),
    ),
    "pqn.termination_head_labelled_envs": RemovedOption(
        None, "used only with pqn.termination_head_labels", "9fded55", ("none",), ("q_head",)
    ),
    "pqn.termination_head_channels": RemovedOption(
        None,
        "a termination head with conv channels of its own beside the Q-network's features (the veto's model q_head), "
        "screened at commit 2e062f4 and rejected by experiments/decision-time (A termination head with channels of its "
        "own: 82 % of the real veto's gain on Asterix, 6 % on Seaquest)",
        "2e062f4",
        ("none",),
        ("q_head",),
    ),
}
"""Options of a grouped config that only a screened branch or commit had, removed when the screen rejected them: a
saved config with the kept value loads without it; one that ran another value is an error that names what to check
out."""


def without_unmerged(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without :data:`UNMERGED_OPTIONS` at their kept value (a copy); ConfigError for another value."""
    data = dict(data)
    for name, unmerged in UNMERGED_OPTIONS.items():
        *groups, option = name.split(".")
        sections = [data]
        for group in groups:
            section = sections[-1].get(group)
            if not isinstance(section, dict):
                break
            sections.append(section)
        else:
            if option not in sections[-1]:
                continue
            value = sections[-1][option]
            if value != unmerged.kept:
                raise ConfigError(
                    f"{name}={value!r} is not an option of pdqn ({unmerged.why}): "
                    f"git checkout {unmerged.commit}"
                )
            for depth, group in enumerate(groups, start=1):  # copy the path down (the caller's dicts stay), then drop it
                sections[depth] = sections[depth - 1][group] = dict(sections[depth])
            del sections[-1][option]
    return data


FLAT_PLANNING_OPTIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "planner": (("planner",),),
    "model": (("model",),),
    "planning_delay": (("planning_delay",),),
    "model_lr": (("learned", "lr"),),
    "model_fraction": (("learned", "fraction"),),
    "model_epochs": (("learned", "epochs"),),
    "model_minibatches": (("learned", "minibatches"),),
    "architecture": (("learned", "architecture"),),
    "model_hidden": (("learned", "hidden"),),
    "model_features": (("learned", "features"),),
    "ensemble_size": (("learned", "ensemble_size"),),
    "horizon": (("dyna", "horizon"), ("value_expansion", "horizon")),
    "num_rollouts": (("dyna", "num_rollouts"),),
    "plan_epochs": (("dyna", "epochs"),),
    "plan_minibatches": (("dyna", "minibatches"), ("value_expansion", "minibatches"), ("counterfactual", "minibatches")),
    "max_disagreeing_cells": (("dyna", "max_disagreeing_cells"),),
    "expansion_samples": (("value_expansion", "samples"),),
    "value_variance_floor": (("value_expansion", "variance_floor"),),
    "counterfactual_share": (("counterfactual", "share"),),
    "counterfactual_max_wrong_cells": (("counterfactual", "max_wrong_cells"),),
}
"""Where each option of the flat planning group went: the planning group's own options, the learned model's group
and each planner's group (an option several planners shared went to each of them)."""


def grouped_planning(flat: dict[str, Any], alg: str) -> dict[str, Any]:
    """A planning group saved flat (before each planner had a group of its own), laid out in groups."""
    flat = LEGACY_VALUES | flat
    grouped: dict[str, Any] = {}
    for option, value in flat.items():
        if option in REMOVED_OPTIONS:
            check_removed(option, value, alg, flat)
            continue
        if option not in FLAT_PLANNING_OPTIONS:
            raise ConfigError(f"dyna.{option} is not an option of any pdqn version")
        for *group, name in FLAT_PLANNING_OPTIONS[option]:
            section = grouped.setdefault(group[0], {}) if group else grouped
            section[name] = value
    return grouped


def check_removed(option: str, value: Any, alg: str, flat: dict[str, Any]) -> None:
    removed = REMOVED_OPTIONS[option]
    mattered = alg == "pdqn" and flat["planner"] in removed.planners and flat.get("model", "learned") in removed.models
    if mattered and value != removed.kept:
        raise ConfigError(
            f"dyna.{option}={value!r} was removed ({removed.why}); only {removed.kept!r} runs now "
            f"(the run needs pdqn at commit {removed.commit}: git checkout {removed.commit})"
        )


def respelled(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with :data:`REPLACED_VALUES` respelled (a copy: the caller's dict stays as it was)."""
    data = dict(data)
    for name, replaced in REPLACED_VALUES.items():
        *group, option = name.split(".")
        section = data.get(group[0]) if group else data
        if isinstance(section, dict) and option in section and section[option] in replaced:
            if group:
                section = data[group[0]] = dict(section)
            section[option] = replaced[section[option]]
    return data


def is_flat_planning(section: Any) -> bool:
    """Whether a saved planning group is the flat one (it has an option that only the flat group had)."""
    grouped = {field.name for field in dataclasses.fields(PlanningConfig)}
    flat_only = (set(FLAT_PLANNING_OPTIONS) | set(REMOVED_OPTIONS)) - grouped
    return isinstance(section, dict) and any(key in section for key in flat_only)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` from :func:`config_dict`'s output, also one written by an older version
    (ConfigError/TypeError if invalid)."""
    data = without_unmerged(respelled(data))
    if is_flat_planning(data.get("dyna")):
        data["dyna"] = grouped_planning(data["dyna"], data.get("alg", "pqn"))
    if data.get("run_dir") is not None:
        data["run_dir"] = Path(data["run_dir"])
    return build(Config, data, "")


def build(cls: type, data: Any, prefix: str) -> Any:
    """An instance of the config dataclass ``cls`` from ``data``, its groups built recursively."""
    if not isinstance(data, dict):
        raise TypeError(f"{prefix.rstrip('.') or 'config'} must be an object")
    hints = typing.get_type_hints(cls)
    values = dict(data)
    for field in dataclasses.fields(cls):
        if field.name in values and dataclasses.is_dataclass(hints[field.name]):
            values[field.name] = build(hints[field.name], values[field.name], f"{prefix}{field.name}.")
    return cls(**values)


def normalised(saved: Any) -> Any:
    """A saved config as this version writes it: options added since it was saved take their defaults."""
    try:
        return config_dict(config_from_dict(saved))
    except Exception:  # not a valid config at all: compared as saved, so it cannot match
        return saved
