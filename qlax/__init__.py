"""qlax: value-based reinforcement learning in JAX, compiled end to end.

    config = qlax.presets.load("cartpole-rbf").replace(lr=1e-3)
    result = qlax.train(config, seeds=8)
"""

from qlax import cli, plotting, presets, trainer
from qlax.config import ConfigError, TrainConfig
from qlax.experiment import DivergedError, RunResult, evaluate_run, resume, train
from qlax.policy import load_policy

__all__ = ["ConfigError", "DivergedError", "RunResult", "TrainConfig", "evaluate_run", "load_policy",
           "presets", "resume", "train"]
__version__ = "0.1.0"
