"""pdqn: PQN and its Dyna-style extension PDQN for MinAtar, in JAX and Equinox."""

from pdqn.config import GAMES, Config, ConfigError, DynaConfig, PQNConfig
from pdqn.dynamics import DynamicsModel, Ensemble, ModelBatch, Prediction, model_loss
from pdqn.envs import EnvStep, EpisodeStats, VecEnv, make_env
from pdqn.evaluation import evaluate_greedy
from pdqn.networks import QNetwork
from pdqn.planning import ImaginedRollout, binarise, imagine, imagined_batch
from pdqn.q_update import QBatch, sgd_epochs, td_loss
from pdqn.rollout import Rollout, collect
from pdqn.schedules import epsilon_greedy, linear_epsilon
from pdqn.state import TrainState
from pdqn.targets import batched_q_lambda_targets, lambda_returns, q_lambda_targets
from pdqn.train import Trainer

__all__ = [
    "GAMES",
    "Config",
    "ConfigError",
    "DynaConfig",
    "DynamicsModel",
    "Ensemble",
    "EnvStep",
    "EpisodeStats",
    "ImaginedRollout",
    "ModelBatch",
    "PQNConfig",
    "Prediction",
    "QBatch",
    "QNetwork",
    "Rollout",
    "TrainState",
    "Trainer",
    "VecEnv",
    "batched_q_lambda_targets",
    "binarise",
    "collect",
    "epsilon_greedy",
    "evaluate_greedy",
    "imagine",
    "imagined_batch",
    "lambda_returns",
    "linear_epsilon",
    "make_env",
    "model_loss",
    "q_lambda_targets",
    "sgd_epochs",
    "td_loss",
]
