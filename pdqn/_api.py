"""The public names of :mod:`pdqn`, imported on first use (see ``pdqn/__init__.py``)."""

from pdqn.config import GAMES, Config, ConfigError, DynaConfig, PQNConfig
from pdqn.dynamics import DynamicsModel, Ensemble, ModelBatch, Prediction, model_loss
from pdqn.envs import EnvStep, EpisodeStats, VecEnv, make_env
from pdqn.evaluation import evaluate_greedy
from pdqn.learner import Learner, QFit, RealUpdate
from pdqn.metrics import Metric
from pdqn.networks import QNetwork
from pdqn.planners import Clock, Dyna, NoPlanner, Planner
from pdqn.planning import ImaginedRollout, ImaginedStart, Imagination, binarise, imagined_batch
from pdqn.q_update import QBatch, sgd_epochs, td_loss
from pdqn.rollout import EnvCarry, Rollout, collect
from pdqn.schedules import epsilon_greedy, linear_epsilon
from pdqn.state import TrainState
from pdqn.targets import batched_q_lambda_targets, lambda_returns, q_lambda_targets
from pdqn.train import Trainer
from pdqn.world_models import LearnedModel, OracleModel, WorldModel

__all__ = [
    "GAMES",
    "Clock",
    "Config",
    "ConfigError",
    "Dyna",
    "DynaConfig",
    "DynamicsModel",
    "Ensemble",
    "EnvCarry",
    "EnvStep",
    "EpisodeStats",
    "ImaginedRollout",
    "ImaginedStart",
    "Imagination",
    "LearnedModel",
    "Learner",
    "Metric",
    "ModelBatch",
    "NoPlanner",
    "OracleModel",
    "PQNConfig",
    "Planner",
    "Prediction",
    "QBatch",
    "QFit",
    "QNetwork",
    "RealUpdate",
    "Rollout",
    "TrainState",
    "Trainer",
    "VecEnv",
    "WorldModel",
    "batched_q_lambda_targets",
    "binarise",
    "collect",
    "epsilon_greedy",
    "evaluate_greedy",
    "imagined_batch",
    "lambda_returns",
    "linear_epsilon",
    "make_env",
    "model_loss",
    "q_lambda_targets",
    "sgd_epochs",
    "td_loss",
]
