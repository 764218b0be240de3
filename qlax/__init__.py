"""qlax: value-based reinforcement learning in JAX, compiled end to end.

    config = qlax.presets.load("cartpole-rbf").replace(lr=1e-3)
    result = qlax.train(config, seeds=8)
"""

from qlax import presets
from qlax.config import ConfigError, TrainConfig
from qlax.experiment import RunResult, evaluate_run, train

__all__ = ["ConfigError", "RunResult", "TrainConfig", "evaluate_run", "presets", "train"]
__version__ = "0.1.0"
