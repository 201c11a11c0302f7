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
    (0 = plain PQN; more than num_minibatches take further shuffled passes). dyna.plan_epochs * dyna.plan_minibatches
    gives PQN as many extra gradient steps as PDQN's imagined updates; more, as many as fit in PDQN's time."""
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
        return self.num_epochs * self.num_minibatches + self.extra_minibatches


@dataclasses.dataclass(frozen=True)
class DynaConfig:
    """PDQN planning: a world model and imagined Q(lambda) updates (used by --alg pdqn)."""

    planner: Literal["dyna", "value_expansion", "counterfactual"] = "counterfactual"
    """How the world model trains the Q-network: "counterfactual" (plan_minibatches extra steps on real transitions,
    a counterfactual_share of whose rows are one-step model transitions for actions the behaviour policy did not
    take; the default: the only planner whose learned model beat compute-matched PQN on any game, at 1.5x PQN's
    cost, experiments/planner-screen) or "dyna" (imagined rollouts from real states, with Q(lambda) updates of
    their own after the real ones) or "value_expansion" (plan_minibatches extra steps on real transitions, toward
    targets expanded by horizon imagined greedy steps from the real next state and weighted by the model's
    disagreement in value). Planners live in pdqn/planners/."""
    model: Literal["learned", "oracle"] = "learned"
    """The world model the planner imagines with: "learned" (the ensemble below, trained on every update's real
    batch) or "oracle" (the real game stepped from the rollout's real states: a perfect model, the ceiling of
    what planning can give; the model_* knobs are then unused)."""

    model_lr: float = 1e-3
    """Learning rate of the dynamics model."""
    model_fraction: float = 0.5
    """Fraction of each update's real transitions the model trains on (a fresh random subset each update). 0.5
    keeps the counterfactual planner within 1.6x PQN's time (the model's update is half of the planner's cost);
    1.0 doubled changed-cell accuracy for the dyna planner (experiments/model-accuracy)."""
    model_epochs: int = 1
    """Passes of the dynamics model over its share of each update's real batch."""
    model_minibatches: int = 8
    """Minibatches per model epoch; must divide model_fraction * pqn.num_envs * pqn.num_steps."""
    architecture: Literal["mlp", "conv"] = "mlp"
    """Network of the learned model: "mlp" (over the flattened frame) or "conv" (the same small network on every
    cell's 5x5 neighbourhood, with the action on every cell, a global path and a copy-the-frame residual;
    pdqn/conv_dynamics.py)."""
    model_hidden: int = 128
    """Width of the MLP model's hidden layers."""
    model_features: int = 32
    """Features per cell of the convolutional model."""
    ensemble_size: int = 1
    """Dynamics-model ensemble members (vmapped); each imagined rollout samples one member per step. The dyna
    planner's best setting is 3 with max_disagreeing_cells 1 (it beat one ungated model on the study's held-out
    seeds, experiments/study-1m/README.md): --dyna.planner dyna --dyna.ensemble-size 3 --dyna.max-disagreeing-cells 1.
    The counterfactual planner asks one model for one step and uses no gate."""
    horizon: int = 3
    """Planning steps: length of each imagined rollout."""
    num_rollouts: int = 860
    """Imagined rollouts per update (each starts from a state sampled from the real batch)."""
    plan_epochs: int = 1
    """Passes over each update's imagined batch."""
    plan_minibatches: int = 20
    """Minibatches per imagined epoch; must divide horizon * num_rollouts."""
    planning_delay: int = 20
    """Updates before imagination starts (the model trains from the first update)."""
    on_threshold: float = 0.5
    """dyna: an imagined cell is on when its predicted probability exceeds this (imagined frames are thresholded
    before they are fed back; drawing each cell from its probability instead was rejected: experiments/pdqn-ablations,
    fourth round). At 0.5
    an object whose next position the model is unsure of can vanish (every candidate cell below 0.5):
    thresholded predictions have 3-16 % fewer cells on than the real frames (experiments/pdqn-ablations)."""
    max_cell_uncertainty: float = 0.5
    """A predicted cell is uncertain when its probability p has min(p, 1-p) above this (0.5: none is);
    an imagined step is trusted only while it has at most max_uncertain_cells uncertain cells.
    Untrusted steps and their successors carry no weight."""
    max_uncertain_cells: int = 0
    """Uncertain cells (see max_cell_uncertainty) an imagined step may have and still be trusted; a
    one-frame model cannot know MinAtar's hidden timers, so some cells of a good prediction stay uncertain."""
    max_disagreeing_cells: int | None = None
    """Trust an imagined step only while the ensemble members' thresholded next observations differ
    in at most this many cells (None: no such gate; needs ensemble_size >= 2)."""
    imagined_loss_mean: Literal["trusted", "batch"] = "batch"
    """How an imagined minibatch's TD loss is averaged: "trusted" over its live trusted transitions
    (every imagined step is full-size), "batch" over all its rows (a minibatch that is mostly untrusted
    or past termination moves the network proportionally less)."""
    expansion_samples: int = 2
    """value_expansion: imagined rollouts per real next state (fresh ensemble draws, cells sampled from the
    predicted probabilities); their spread in value weights each horizon."""
    value_variance_floor: float = 0.01
    """value_expansion: weight of a horizon = 1 / (its value variance over the samples + this floor); the
    model-free target has weight 1 / floor, so a smaller floor trusts agreeing samples more."""
    counterfactual_share: float = 0.25
    """counterfactual: counterfactual one-step transitions per planner minibatch, as a share of its size (added to
    its real rows or in their place: counterfactual_rows)."""
    counterfactual_rows: Literal["replace", "add"] = "add"
    """counterfactual: whether the counterfactual rows are "add"ed to full real minibatches (the planner's real rows
    are the compute-matched control's, and each step has 1 + counterfactual_share times its rows) or "replace" that
    share of each minibatch's real rows (fewer real rows than the control's; the default until
    experiments/planner-screen preferred "add")."""
    counterfactual_anchor: bool = True
    """counterfactual, learned model: take the real next step and change only what the model says the untaken
    action changes (frame cells where its predictions for the two actions differ, reward and termination by their
    difference), so what no action changes comes from the real game, not from the model."""
    counterfactual_max_wrong_cells: int | None = 0
    """counterfactual, learned model: a row counts only where the model's prediction of the taken action's outcome
    at that state has at most this many wrong cells (and its reward and termination right); None: every row counts.
    With 0, where the model is poor PDQN falls back to the compute-matched update (experiments/planner-screen)."""
    use_plan_eps: bool = False
    """Use the planning epsilon schedule below instead of the behaviour epsilon."""
    plan_eps_start: float = 1.0
    """Initial planning epsilon (with use_plan_eps)."""
    plan_eps_finish: float = 0.05
    """Final planning epsilon (with use_plan_eps)."""
    plan_eps_decay: float = 0.1
    """Fraction of all updates over which the planning epsilon decays (with use_plan_eps)."""

    def __post_init__(self) -> None:
        p = "dyna."
        counts = ("model_epochs", "model_minibatches", "model_hidden", "model_features", "ensemble_size", "horizon")
        _positive_ints(p, self, counts + ("num_rollouts", "plan_epochs", "plan_minibatches", "expansion_samples"))
        floor = self.value_variance_floor
        _require(math.isfinite(floor) and floor > 0, p + "value_variance_floor", floor, "a finite number > 0")
        _non_negative_ints(p, self, ("max_uncertain_cells", "planning_delay"))
        cells = self.counterfactual_max_wrong_cells
        _require(cells is None or (isinstance(cells, int) and cells >= 0), p + "counterfactual_max_wrong_cells", cells, "a non-negative integer or None")
        _require(math.isfinite(self.model_lr) and self.model_lr > 0, p + "model_lr", self.model_lr, "a finite number > 0")
        _require(
            self.imagined_batch_size % self.plan_minibatches == 0,
            p + "plan_minibatches",
            self.plan_minibatches,
            f"a divisor of horizon*num_rollouts={self.imagined_batch_size}",
        )
        _unit_interval(p, self, ("plan_eps_start", "plan_eps_finish", "plan_eps_decay"))
        uncertainty, threshold, fraction = self.max_cell_uncertainty, self.on_threshold, self.model_fraction
        _require(math.isfinite(uncertainty) and 0.0 <= uncertainty <= 0.5, p + "max_cell_uncertainty", uncertainty, "in [0, 0.5]")
        _require(math.isfinite(threshold) and 0.0 < threshold < 1.0, p + "on_threshold", threshold, "in (0, 1)")
        _require(math.isfinite(fraction) and 0.0 < fraction <= 1.0, p + "model_fraction", fraction, "in (0, 1]")
        share = self.counterfactual_share
        _require(math.isfinite(share) and 0.0 < share <= 1.0, p + "counterfactual_share", share, "in (0, 1]")
        self._check_gate()

    def _check_gate(self) -> None:
        gate = self.max_disagreeing_cells
        _require(
            gate is None or (isinstance(gate, int) and gate >= 0),
            "dyna.max_disagreeing_cells",
            gate,
            "a non-negative integer or None",
        )
        _require(
            gate is None or self.ensemble_size >= 2,
            "dyna.max_disagreeing_cells",
            gate,
            f"None unless dyna.ensemble_size >= 2 (it is {self.ensemble_size}): one model cannot disagree "
            "(with one model, pass --dyna.max-disagreeing-cells None)",
        )

    @property
    def imagined_batch_size(self) -> int:
        """Imagined transitions per update."""
        return self.horizon * self.num_rollouts

    @property
    def imagined_gradient_steps(self) -> int:
        """Q-network gradient steps on imagined data per update."""
        return self.plan_epochs * self.plan_minibatches


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
    """Algorithm: pqn, or pdqn (PQN plus Dyna-style planning with a learned model)."""
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
    dyna: DynaConfig = dataclasses.field(default_factory=DynaConfig)
    """Planning hyperparameters (used by --alg pdqn only)."""
    track: TrackConfig = dataclasses.field(default_factory=TrackConfig)
    """Aim tracking."""
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    """Checkpointing."""

    def __post_init__(self) -> None:
        _require(self.env in GAMES, "env", self.env, "one of " + "|".join(GAMES))
        _require(self.alg in ("pqn", "pdqn"), "alg", self.alg, "one of pqn|pdqn")
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
        model_batch = self.model_batch_size
        _require(
            model_batch >= self.dyna.model_minibatches and model_batch % self.dyna.model_minibatches == 0,
            "dyna.model_minibatches",
            self.dyna.model_minibatches,
            f"a divisor of dyna.model_fraction*pqn.num_envs*pqn.num_steps={model_batch}",
        )

    @property
    def model_batch_size(self) -> int:
        """Real transitions the dynamics model trains on per update."""
        return int(round(self.dyna.model_fraction * self.pqn.batch_size))

    @property
    def counterfactual_rows_per_minibatch(self) -> int:
        """Counterfactual rows per planner minibatch (at least one)."""
        return max(1, round(self.dyna.counterfactual_share * self.pqn.minibatch_size))

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
