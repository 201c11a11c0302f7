"""Frozen configuration dataclasses; tyro turns them into the command line.

Every field's docstring becomes its ``--help`` text. Invariants are checked in
``__post_init__`` and raise :class:`ConfigError` naming the field and its valid
range, so a bad value stops the program before anything is compiled.
"""

import dataclasses
import math
import typing
from pathlib import Path
from typing import Literal

GameName = Literal["asterix", "breakout", "freeway", "space_invaders", "seaquest"]
GAMES: tuple[str, ...] = typing.get_args(GameName)
"""The MinAtar games, declared once (as the ``--env`` choices)."""


class ConfigError(ValueError):
    """A configuration value outside its valid range."""


def _require(condition: bool, field: str, value: object, valid: str) -> None:
    if not condition:
        raise ConfigError(f"{field}={value!r} is invalid: must be {valid}")


def _positive_ints(prefix: str, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(
            isinstance(value, int) and value >= 1,
            f"{prefix}{name}",
            value,
            "a positive integer (>= 1)",
        )


def _non_negative_ints(prefix: str, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(isinstance(value, int) and value >= 0, f"{prefix}{name}", value, "a non-negative integer")


def _unit_interval(prefix: str, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        _require(
            math.isfinite(value) and 0.0 <= value <= 1.0,
            f"{prefix}{name}",
            value,
            "in [0, 1]",
        )


@dataclasses.dataclass(frozen=True)
class PQNConfig:
    """PQN: online Q(lambda) over vectorised environments, no replay, no target network."""

    num_envs: int = 128
    """Parallel training environments per seed."""
    num_steps: int = 32
    """Environment steps collected per environment in each update (rollout length)."""
    num_epochs: int = 2
    """Passes over each update's batch of real transitions."""
    num_minibatches: int = 32
    """Minibatches per epoch; must divide num_envs * num_steps."""
    extra_minibatches: int = 0
    """Compute-matched control: extra real-data gradient steps per update, each on a fresh minibatch of the batch
    (0 = plain PQN; more than num_minibatches take further shuffled passes). dyna.counterfactual.minibatches (20)
    gives PQN as many gradient steps as PDQN's default; more, as many as fit in PDQN's time."""
    reuse_rollouts: int = 0
    """Data-reuse control (--alg pqn): keep the last this many rollouts and take --pqn.reuse-minibatches extra
    gradient steps per update on minibatches drawn from them, their Q(lambda) targets recomputed with the current
    network (0: no reuse). A model has to beat replaying recent real data, not only PQN."""
    reuse_minibatches: int = 0
    """Extra gradient steps per update on the reused rollouts (with --pqn.reuse-rollouts)."""
    lr: float = 5e-4
    """Adam (RAdam) learning rate."""
    lr_linear_decay: bool = True
    """Decay the learning rate linearly to zero over training."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clipping threshold."""
    gamma: float = 0.99
    """Discount factor."""
    td_lambda: float = 0.65
    """Lambda of the Q(lambda) returns (0 = one-step Q-learning, 1 = Monte Carlo)."""
    eps_start: float = 1.0
    """Initial exploration epsilon."""
    eps_finish: float = 0.05
    """Final exploration epsilon."""
    eps_decay: float = 0.1
    """Fraction of all updates over which epsilon decays linearly."""
    norm: Literal["layer_norm", "none"] = "layer_norm"
    """Normalisation after the convolution and the hidden dense layer."""
    hidden_size: int = 128
    """Width of the hidden dense layer."""
    conv_features: int = 16
    """Filters of the 3x3 convolution."""
    termination_head_channels: int | None = None
    """Conv channels of the Q-network's termination head's own (None: no head, PQN). The head reads these beside the
    Q-network's conv features, which it sees behind a stop-gradient: its loss (on the taken actions' terminations, a
    terminating step weighing 10) trains only the head, so the Q-network learns as PQN's. The termination veto reads it
    with --alg pdqn --dyna.planner none --dyna.model q_head."""
    termination_head_labels: Literal["taken", "every"] = "taken"
    """What the termination head learns from: "taken", the taken actions' terminations; "every", every action's at every
    visited state, the untaken ones from a step of a copy of the real state per action (only a simulator gives them:
    a ceiling, not a method)."""
    termination_head_labelled_envs: int | None = None
    """With "every": how many of the environments (the first ones) have every action labelled at each step; the others
    give their taken action's (None: all of them)."""

    def __post_init__(self) -> None:
        p = "pqn."
        _positive_ints(
            p,
            self,
            ("num_envs", "num_steps", "num_epochs", "num_minibatches", "hidden_size", "conv_features"),
        )
        _require(
            isinstance(self.extra_minibatches, int) and 0 <= self.extra_minibatches <= 16 * self.num_minibatches,
            p + "extra_minibatches",
            self.extra_minibatches,
            f"an integer in [0, 16 * num_minibatches={16 * self.num_minibatches}]",
        )
        _non_negative_ints(p, self, ("reuse_rollouts", "reuse_minibatches"))
        _require(
            (self.reuse_rollouts == 0) == (self.reuse_minibatches == 0),
            p + "reuse_minibatches",
            self.reuse_minibatches,
            "> 0 exactly when pqn.reuse_rollouts > 0",
        )
        _require(
            self.batch_size % self.num_minibatches == 0,
            p + "num_minibatches",
            self.num_minibatches,
            f"a divisor of num_envs*num_steps={self.batch_size}",
        )
        _require(math.isfinite(self.lr) and self.lr > 0, p + "lr", self.lr, "a finite number > 0")
        _require(
            math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0,
            p + "max_grad_norm",
            self.max_grad_norm,
            "a finite number > 0",
        )
        _unit_interval(p, self, ("gamma", "td_lambda", "eps_start", "eps_finish", "eps_decay"))
        channels = self.termination_head_channels
        _require(
            channels is None or (isinstance(channels, int) and channels > 0),
            p + "termination_head_channels",
            channels,
            "a whole number > 0 or None",
        )
        _require(
            self.termination_head_labels == "taken" or channels is not None,
            p + "termination_head_labels",
            self.termination_head_labels,
            '"taken" unless pqn.termination_head_channels is set',
        )
        labelled = self.termination_head_labelled_envs
        _require(
            labelled is None or (self.termination_head_labels == "every" and isinstance(labelled, int) and 0 < labelled <= self.num_envs),
            p + "termination_head_labelled_envs",
            labelled,
            f'None, or with pqn.termination_head_labels "every" a whole number in [1, num_envs={self.num_envs}]',
        )

    @property
    def termination_head(self) -> bool:
        """Whether the Q-network has a termination head."""
        return self.termination_head_channels is not None

    @property
    def batch_size(self) -> int:
        """Real transitions per update."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def real_gradient_steps(self) -> int:
        """Q-network gradient steps on real data per update."""
        return self.num_epochs * self.num_minibatches + self.extra_minibatches + self.reuse_minibatches


@dataclasses.dataclass(frozen=True)
class CounterfactualConfig:
    """The counterfactual planner (PDQN's default): extra real-data gradient steps whose minibatches also carry
    one-step model transitions for actions the behaviour policy did not take (pdqn/planners/counterfactual.py)."""

    minibatches: int = 20
    """Extra gradient steps per update, each on a full minibatch of the update's real transitions (as many as the
    compute-matched control's --pqn.extra-minibatches) plus its counterfactual rows."""
    share: float = 0.25
    """Counterfactual rows added to each of those minibatches, as a share of its size (at least one row)."""
    max_wrong_cells: int | None = 0
    """Learned model: a row counts only where the model's prediction of the taken action's outcome at that state has
    at most this many wrong cells (and its reward and termination right); None: every row counts. With 0, where the
    model is poor PDQN falls back to the compute-matched update (experiments/planner-screen). The oracle is never
    checked."""

    def __post_init__(self) -> None:
        p = "dyna.counterfactual."
        _positive_ints(p, self, ("minibatches",))
        _require(math.isfinite(self.share) and 0.0 < self.share <= 1.0, p + "share", self.share, "in (0, 1]")
        cells = self.max_wrong_cells
        valid = cells is None or (isinstance(cells, int) and cells >= 0)
        _require(valid, p + "max_wrong_cells", cells, "a non-negative integer or None")

    def rows_per_minibatch(self, minibatch_size: int) -> int:
        """Counterfactual rows per planner minibatch (at least one)."""
        return max(1, round(self.share * minibatch_size))


@dataclasses.dataclass(frozen=True)
class DynaConfig:
    """The Dyna planner: imagined rollouts from real states, with Q(lambda) updates of their own after the real
    ones (pdqn/planners/dyna.py). Its best setting is an ensemble of 3 with max_disagreeing_cells 1
    (experiments/study-1m): --dyna.planner dyna --dyna.learned.ensemble-size 3 --dyna.dyna.max-disagreeing-cells 1."""

    horizon: int = 3
    """Length of each imagined rollout."""
    num_rollouts: int = 860
    """Imagined rollouts per update (each starts from a state sampled from the real batch)."""
    epochs: int = 1
    """Passes over each update's imagined batch."""
    minibatches: int = 20
    """Minibatches per imagined epoch; must divide horizon * num_rollouts."""
    max_disagreeing_cells: int | None = None
    """Trust an imagined step only while the ensemble members' thresholded next observations differ in at most this
    many cells (None: no such gate; needs --dyna.learned.ensemble-size >= 2)."""

    def __post_init__(self) -> None:
        p = "dyna.dyna."
        _positive_ints(p, self, ("horizon", "num_rollouts", "epochs", "minibatches"))
        gate = self.max_disagreeing_cells
        _require(gate is None or (isinstance(gate, int) and gate >= 0), p + "max_disagreeing_cells", gate, "a non-negative integer or None")
        _require(
            self.imagined_batch_size % self.minibatches == 0,
            p + "minibatches",
            self.minibatches,
            f"a divisor of horizon*num_rollouts={self.imagined_batch_size}",
        )

    @property
    def imagined_batch_size(self) -> int:
        """Imagined transitions per update."""
        return self.horizon * self.num_rollouts

    @property
    def imagined_gradient_steps(self) -> int:
        """Q-network gradient steps on imagined data per update."""
        return self.epochs * self.minibatches


@dataclasses.dataclass(frozen=True)
class ValueExpansionConfig:
    """The value-expansion planner: extra steps on real transitions toward targets expanded by imagined greedy steps
    from the real next state, weighted by the model's disagreement in value (pdqn/planners/value_expansion.py)."""

    horizon: int = 3
    """Imagined greedy steps after the real next state."""
    minibatches: int = 20
    """Extra gradient steps per update, each on a minibatch of real transitions with expanded targets."""
    samples: int = 2
    """Imagined rollouts per real next state (fresh ensemble draws, cells sampled from the predicted probabilities);
    their spread in value weights each horizon."""
    variance_floor: float = 0.01
    """Weight of a horizon = 1 / (its value variance over the samples + this floor); the model-free target has weight
    1 / floor, so a smaller floor trusts agreeing samples more."""

    def __post_init__(self) -> None:
        p = "dyna.value_expansion."
        _positive_ints(p, self, ("horizon", "minibatches", "samples"))
        floor = self.variance_floor
        _require(math.isfinite(floor) and floor > 0, p + "variance_floor", floor, "a finite number > 0")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The search planner: Gumbel MuZero search over the world model (mctx), the Q-network as prior and leaf value,
    used to act and as training targets (pdqn/search.py, pdqn/planners/search.py)."""

    simulations: int = 8
    """Simulations per search; every action is considered at the root, so as many simulations as the game has
    actions is the exhaustive one-step lookahead, and more look deeper along the best actions (sequential halving)."""
    temperature: float = 1.0
    """Prior logits are Q / temperature (they order the root's actions for sequential halving)."""
    training: bool = True
    """Act on the search's root values in the behaviour policy (epsilon-greedy over them), which also changes the data
    the Q-network learns from."""
    evaluation: bool = True
    """Act on the search's root values in the greedy evaluations."""
    minibatches: int = 4
    """Gradient steps per update toward the search's root values at real states of the update's batch (every action
    the search visited is a row; 0: search acts but does not train)."""

    def __post_init__(self) -> None:
        p = "dyna.search."
        _positive_ints(p, self, ("simulations",))
        _non_negative_ints(p, self, ("minibatches",))
        t = self.temperature
        _require(math.isfinite(t) and t > 0, p + "temperature", t, "a finite number > 0")
        used = self.training or self.evaluation or self.minibatches > 0
        _require(used, p + "minibatches", self.minibatches, "> 0 when search acts neither in training nor in evaluation")


class ModelTraining:
    """The checks and derived values of the knobs with which a trained model learns from every update's real batch,
    shared by the learned world model's and the termination model's configs. (Each config declares the fields itself:
    tyro renders an inherited field's docstring with its source line breaks.)"""

    flag_group: typing.ClassVar[str]
    """The group's name on the command line, for error messages."""
    lr: float
    fraction: float
    epochs: int
    minibatches: int
    features: int
    termination_weight: float

    def check(self) -> None:
        """Raise :class:`ConfigError` for a knob outside its range."""
        p = f"dyna.{self.flag_group}."
        weight = self.termination_weight
        _require(math.isfinite(weight) and weight >= 1.0, p + "termination_weight", weight, "a finite number >= 1")
        _positive_ints(p, self, ("epochs", "minibatches", "features"))
        _require(math.isfinite(self.lr) and self.lr > 0, p + "lr", self.lr, "a finite number > 0")
        _require(math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0, p + "fraction", self.fraction, "in (0, 1]")

    def batch_size(self, real_batch_size: int) -> int:
        """Real transitions the model trains on per update, of the update's ``real_batch_size``."""
        return int(round(self.fraction * real_batch_size))

    def check_minibatches(self, real_batch_size: int) -> None:
        """Raise :class:`ConfigError` unless ``minibatches`` divides the model's share of ``real_batch_size``."""
        model_batch = self.batch_size(real_batch_size)
        _require(
            model_batch >= self.minibatches and model_batch % self.minibatches == 0,
            f"dyna.{self.flag_group}.minibatches",
            self.minibatches,
            f"a divisor of dyna.{self.flag_group}.fraction*pqn.num_envs*pqn.num_steps={model_batch}",
        )


@dataclasses.dataclass(frozen=True)
class LearnedModelConfig(ModelTraining):
    """The learned world model (--dyna.model learned): an ensemble of dynamics networks trained on every update's
    real batch (pdqn/models/)."""

    flag_group: typing.ClassVar[str] = "learned"

    lr: float = 1e-3
    """Learning rate of the dynamics model."""
    fraction: float = 0.5
    """Fraction of each update's real transitions the model trains on (a fresh random subset each update). 0.5 keeps
    the counterfactual planner within 1.6x PQN's time (the model's update is half of the planner's cost); 1.0 doubled
    changed-cell accuracy for the dyna planner (experiments/model-accuracy)."""
    epochs: int = 1
    """Passes of the model over its share of each update's real batch."""
    minibatches: int = 8
    """Minibatches per model epoch; must divide fraction * pqn.num_envs * pqn.num_steps."""
    architecture: Literal["mlp", "conv"] = "mlp"
    """Network: "mlp" (over the flattened frame) or "conv" (the same small network on every cell's 5x5
    neighbourhood, with the action on every cell, a global path and a copy-the-frame residual; more accurate on
    Asterix, not better inside the planners: experiments/world-model, experiments/planner-screen)."""
    hidden: int = 128
    """Width of the MLP's hidden layers."""
    features: int = 32
    """Features per cell of the convolutional network."""
    ensemble_size: int = 1
    """Ensemble members (vmapped); each imagined step of each rollout samples one member."""
    termination_weight: float = 1.0
    """Weight of a terminating step in the termination loss, against 1 for the others: terminations are under 1 %
    of steps, so at 1 the model learns the base rate (experiments/decision-time)."""
    termination_head: Literal["summary", "cells"] = "summary"
    """Where the conv model's termination comes from: "summary" (the pooled features of the action-conditioned pass)
    or "cells" (every cell's features without the action give a logit per action, and their pooled summary one more
    for deaths no neighbourhood shows, log-sum-exp over them: one pass for every action, so the veto's cost is one
    forward per state; experiments/decision-time)."""

    def __post_init__(self) -> None:
        self.check()
        p = "dyna.learned."
        cells_need_conv = self.termination_head == "summary" or self.architecture == "conv"
        _require(cells_need_conv, p + "termination_head", self.termination_head, '"summary" unless architecture is "conv"')
        _positive_ints(p, self, ("hidden", "ensemble_size"))


@dataclasses.dataclass(frozen=True)
class TerminationModelConfig(ModelTraining):
    """The termination model (--dyna.model termination): every action's probability of ending the episode and nothing
    else, from the conv model's per-cell first layer and its "cells" head, trained on every update's real batch. It
    cannot imagine, so it serves only the veto (--dyna.planner none; pdqn/models/termination.py)."""

    flag_group: typing.ClassVar[str] = "termination"

    lr: float = 1e-3
    """Learning rate."""
    fraction: float = 0.5
    """Fraction of each update's real transitions it trains on (a fresh random subset each update)."""
    epochs: int = 1
    """Passes over its share of each update's real batch."""
    minibatches: int = 8
    """Minibatches per epoch; must divide fraction * pqn.num_envs * pqn.num_steps."""
    features: int = 32
    """Features per cell."""
    termination_weight: float = 10.0
    """Weight of a terminating step in the loss, against 1 for the others (10: the learned model's screen on Asterix,
    experiments/decision-time)."""

    def __post_init__(self) -> None:
        self.check()


def is_veto_threshold(value: float) -> bool:
    """A probability strictly between 0 and 1: at 0 every action would be vetoed, at 1 none."""
    return math.isfinite(value) and 0.0 < value < 1.0


@dataclasses.dataclass(frozen=True)
class VetoConfig:
    """Acting with the world model (--dyna.model): the termination veto, greedy Q among the actions the model does
    not expect to end the episode (pdqn/acting.py)."""

    threshold: float | None = None
    """Veto an action whose predicted probability of ending the episode is above this, unless every action's is
    (None: no veto)."""
    training: bool = True
    """Veto in the behaviour policy (exploration stays uniform), which also changes the data the Q-network learns
    from."""
    evaluation: bool = True
    """Veto in the greedy evaluations."""

    def __post_init__(self) -> None:
        p = "dyna.veto."
        threshold = self.threshold
        valid = threshold is None or is_veto_threshold(threshold)
        _require(valid, p + "threshold", threshold, "in (0, 1) or None")
        used = threshold is None or self.training or self.evaluation
        _require(used, p + "threshold", threshold, "None when the veto is used neither in training nor in evaluation")


PlannerName = Literal["counterfactual", "dyna", "value_expansion", "search", "none"]
ModelName = Literal["learned", "oracle", "termination", "q_head"]


@dataclasses.dataclass(frozen=True)
class PlanningConfig:
    """PDQN planning (used by --alg pdqn): which planner, which world model, and each one's own knobs."""

    planner: PlannerName = "counterfactual"
    """How the world model trains the Q-network: "counterfactual" (the default: the only planner whose learned model
    beat compute-matched PQN on any game, at 1.5x PQN's cost, experiments/planner-screen), "dyna",
    "value_expansion", "search" (decision-time search, acting and targets) or "none" (the model trains but the
    Q-network learns from real data alone, as PQN's: the model is there for the termination veto, --dyna.veto.*).
    Each planner's knobs are in its own group below (--dyna.NAME.*); pdqn/planners/."""
    model: ModelName = "learned"
    """The world model the planner imagines with: "learned" (knobs in --dyna.learned.*), "oracle" (the real game
    stepped from the rollout's real states: a perfect model, the ceiling of what planning can give), "termination"
    (termination only, for the veto with --dyna.planner none; knobs in --dyna.termination.*) or "q_head" (the
    Q-network's own termination head, for the veto with --dyna.planner none; --pqn.termination-head-channels)."""
    planning_delay: int = 20
    """Updates before planning starts (the model trains from the first update; before it every planner leaves the
    Q-network as the compute-matched control would)."""
    counterfactual: CounterfactualConfig = dataclasses.field(default_factory=CounterfactualConfig)
    """The counterfactual planner."""
    dyna: DynaConfig = dataclasses.field(default_factory=DynaConfig)
    """The Dyna planner."""
    value_expansion: ValueExpansionConfig = dataclasses.field(default_factory=ValueExpansionConfig)
    """The value-expansion planner."""
    search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
    """The search planner."""
    learned: LearnedModelConfig = dataclasses.field(default_factory=LearnedModelConfig)
    """The learned world model."""
    termination: TerminationModelConfig = dataclasses.field(default_factory=TerminationModelConfig)
    """The termination model."""
    veto: VetoConfig = dataclasses.field(default_factory=VetoConfig)
    """Acting with the world model."""

    def __post_init__(self) -> None:
        _non_negative_ints("dyna.", self, ("planning_delay",))
        threshold = self.veto.threshold
        _require(
            threshold is None or self.planner != "search",
            "dyna.veto.threshold",
            threshold,
            "None with --dyna.planner search (search acts already; its root values see the model's terminations)",
        )
        _require(
            self.model not in ("termination", "q_head") or self.planner == "none",
            "dyna.model",
            self.model,
            '"learned" or "oracle" with a planner that imagines (the termination model and the Q-network\'s head predict '
            "no frames; with them, pass --dyna.planner none)",
        )
        _require(
            self.planner != "none" or threshold is not None,
            "dyna.planner",
            self.planner,
            "a planner that trains the Q-network unless --dyna.veto.threshold is set (with none and no veto the model is "
            "never used: that is --alg pqn)",
        )
        gate = self.dyna.max_disagreeing_cells
        _require(
            gate is None or self.model != "learned" or self.learned.ensemble_size >= 2,
            "dyna.dyna.max_disagreeing_cells",
            gate,
            f"None unless dyna.learned.ensemble_size >= 2 (it is {self.learned.ensemble_size}): one model cannot "
            "disagree (with one model, pass --dyna.dyna.max-disagreeing-cells None)",
        )

    @property
    def trained_model_config(self) -> LearnedModelConfig | TerminationModelConfig | None:
        """The chosen model's training knobs (None: the oracle is the real game and trains nothing)."""
        return {"learned": self.learned, "termination": self.termination}.get(self.model)

    @property
    def planner_config(self) -> CounterfactualConfig | DynaConfig | ValueExpansionConfig | SearchConfig | None:
        """The chosen planner's own config (None: "none" has no knobs)."""
        return None if self.planner == "none" else getattr(self, self.planner)


@dataclasses.dataclass(frozen=True)
class TrackConfig:
    """Experiment tracking with Aim (one Aim run per seed)."""

    off: bool = False
    """Disable Aim tracking (metrics.parquet and summary.json are always written)."""
    repo: str = ".aim"
    """Aim repository: a local path (created on first use) or a server address aim://host:port."""
    experiment: str | None = None
    """Aim experiment name (None: <alg>-<env>)."""
    sweep: str | None = None
    """Sweep name, recorded as a tag and hparam (set by pdqn.experiments.sweep; None: not part of a sweep)."""

    def __post_init__(self) -> None:
        for name in ("experiment", "sweep"):
            value = getattr(self, name)
            valid = value is None or (isinstance(value, str) and value != "")
            _require(valid, "track." + name, value, "a non-empty name or None")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Periodic checkpoints of the whole training state, for exact resume."""

    every: int | None = None
    """Save a checkpoint every this many updates (None: at each evaluation; always at the end)."""
    keep: int = 2
    """How many of the most recent checkpoints to keep."""

    def __post_init__(self) -> None:
        _require(
            self.every is None or (isinstance(self.every, int) and self.every >= 1),
            "checkpoint.every",
            self.every,
            "a positive integer or None",
        )
        _positive_ints("checkpoint.", self, ("keep",))


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """One run over several processes (hosts), seeds sharded over all their devices. Not part of the run's
    config: how a run is laid out does not change what it trains, so its checkpoints resume on any layout.

    Each setting left unset comes from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, else from
    JAX's cluster detection (a SLURM step or Open MPI job with more than one task); with none of them the run is
    one process."""

    coordinator: str | None = None
    """HOST:PORT where process 0 serves the coordinator, reachable from every process."""
    num_processes: int | None = None
    """Processes taking part in the run (each with its own devices)."""
    process_id: int | None = None
    """This process's index, 0 .. num_processes - 1 (0 writes the outputs)."""
    timeout: int = 60
    """Seconds to wait for every process to reach the coordinator before giving up (exit 2)."""

    def __post_init__(self) -> None:
        p = "distributed."
        _require(self.num_processes is None or self.num_processes >= 1, p + "num_processes", self.num_processes, ">= 1")
        _require(self.process_id is None or self.process_id >= 0, p + "process_id", self.process_id, ">= 0")
        _require(self.timeout >= 1, p + "timeout", self.timeout, ">= 1 (seconds)")
        if self.coordinator is not None:
            host, _, port = self.coordinator.rpartition(":")
            _require(
                bool(host) and port.isdigit() and 0 < int(port) < 65536,
                p + "coordinator",
                self.coordinator,
                "HOST:PORT with a port in 1..65535",
            )


@dataclasses.dataclass(frozen=True)
class Config:
    """Train PQN or PDQN on a MinAtar game (gymnax); seeds run vmapped in one program."""

    alg: Literal["pqn", "pdqn"] = "pqn"
    """Algorithm: pqn, or pdqn (PQN plus planning with a world model: --dyna.*)."""
    env: GameName = "breakout"
    """MinAtar game."""
    frame_stack: int = 1
    """Observe the last k frames stacked along the channels (zeros before the episode's start), for the
    Q-network and the dynamics model alike: MinAtar's objects move on timers that one frame does not show."""
    sticky_actions: float = 0.0
    """Probability that an environment step repeats the action executed at the previous step instead of
    the agent's (training and greedy evaluation alike; never at an episode's first step). MinAtar's
    protocol is 0.1."""
    total_timesteps: int = 10_000_000
    """Environment steps per seed."""
    num_seeds: int = 1
    """Independent seeds, vmapped in one compiled program."""
    seed: int = 0
    """Seed of the first run; seed i uses seed + i."""
    run_dir: Path | None = None
    """Output folder (default: runs/<alg>-<env>-<timestamp>)."""
    eval_every: float | None = 0.05
    """Evaluate the greedy policy every this fraction of training (and at the end); None: only at the end."""
    eval_envs: int = 128
    """Environments for greedy evaluation, each run to the end of one episode."""
    episode_gif: bool = True
    """At the end, write RUN_DIR/episode.gif: one greedy episode of the first seed's final policy."""
    log_every: int | None = None
    """Updates per compiled chunk (None: chunks sized to about two seconds each, so a stop request is answered
    quickly; progress lines come every ten seconds and at each evaluation)."""
    pqn: PQNConfig = dataclasses.field(default_factory=PQNConfig)
    """PQN hyperparameters (shared by PDQN)."""
    dyna: PlanningConfig = dataclasses.field(default_factory=PlanningConfig)
    """Planning: planner, world model and their knobs (used by --alg pdqn only)."""
    track: TrackConfig = dataclasses.field(default_factory=TrackConfig)
    """Aim tracking."""
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    """Checkpointing."""

    def __post_init__(self) -> None:
        _require(self.env in GAMES, "env", self.env, "one of " + "|".join(GAMES))
        _require(self.alg in ("pqn", "pdqn"), "alg", self.alg, "one of pqn|pdqn")
        reuse = self.pqn.reuse_rollouts
        _require(reuse == 0 or self.alg == "pqn", "pqn.reuse_rollouts", reuse, "0 with --alg pdqn (it is a PQN control)")
        reads_head = self.planning and self.dyna.model == "q_head"
        _require(
            self.pqn.termination_head or not reads_head,
            "pqn.termination_head_channels",
            self.pqn.termination_head_channels,
            "a whole number > 0 with --dyna.model q_head (the veto reads the Q-network's termination head)",
        )
        _require(
            not self.pqn.termination_head or not self.planning or reads_head,
            "pqn.termination_head_channels",
            self.pqn.termination_head_channels,
            "None with --alg pdqn unless --dyna.model q_head (the head's metrics are the termination model's)",
        )
        _positive_ints("", self, ("total_timesteps", "num_seeds", "eval_envs", "frame_stack"))
        _require(
            isinstance(self.seed, int) and 0 <= self.seed < 2**31 - self.num_seeds,
            "seed",
            self.seed,
            "an integer in [0, 2**31 - num_seeds)",
        )
        _require(
            self.total_timesteps >= self.pqn.batch_size,
            "total_timesteps",
            self.total_timesteps,
            f">= pqn.num_envs*pqn.num_steps={self.pqn.batch_size} (one update)",
        )
        _require(
            self.log_every is None or (isinstance(self.log_every, int) and self.log_every >= 1),
            "log_every",
            self.log_every,
            "a positive integer or None",
        )
        _require(
            math.isfinite(self.sticky_actions) and 0.0 <= self.sticky_actions < 1.0,
            "sticky_actions",
            self.sticky_actions,
            "in [0, 1)",
        )
        _require(
            self.eval_every is None or (math.isfinite(self.eval_every) and 0.0 < self.eval_every <= 1.0),
            "eval_every",
            self.eval_every,
            "in (0, 1] or None",
        )
        trained_model = self.dyna.trained_model_config
        if self.planning and trained_model is not None:
            trained_model.check_minibatches(self.pqn.batch_size)

    @property
    def num_updates(self) -> int:
        """Updates per seed: each collects num_envs * num_steps transitions."""
        return self.total_timesteps // self.pqn.batch_size

    @property
    def env_steps_per_update(self) -> int:
        return self.pqn.batch_size

    @property
    def eval_interval(self) -> int:
        """Updates between greedy evaluations (num_updates when only at the end)."""
        if self.eval_every is None:
            return self.num_updates
        return max(1, round(self.eval_every * self.num_updates))

    @property
    def chunk_size(self) -> int:
        """Most updates one compiled chunk runs (its metric buffer's length); the host loop sizes each chunk
        to about two seconds within it, or to log_every when that is set."""
        return min(self.log_every or self.eval_interval, self.num_updates)

    @property
    def planning(self) -> bool:
        return self.alg == "pdqn"

    @property
    def seeds(self) -> list[int]:
        """The seeds of the run, one per vmapped program slice."""
        return [self.seed + i for i in range(self.num_seeds)]
