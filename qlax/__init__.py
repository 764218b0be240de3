"""qlax: value-based reinforcement learning in JAX, compiled end to end.

    config = qlax.presets.load("cartpole-rbf").replace(lr=1e-3)
    result = qlax.train(config, seeds=8)
    grid = qlax.sweep(config, {"lr": [1e-3, 5e-3], "gamma": [0.98, 0.99]}, seeds=8)
"""

from qlax.runs import interrupt

if interrupt.is_command_line():  # a Ctrl-C while JAX imports ends the command cleanly too
    interrupt.exit_on_signal(lambda: "nothing was saved")

from qlax.core.devices import use_compilation_cache, use_every_cpu_core  # noqa: E402

use_every_cpu_core()  # before anything runs on JAX (see qlax.core.devices)
use_compilation_cache()

from qlax.settings import presets  # noqa: E402
from qlax.program import trainer  # noqa: E402
from qlax.runs.callbacks import ChunkReport  # noqa: E402
from qlax.settings.config import ConfigError, TrainConfig  # noqa: E402
from qlax.runs.experiment import DivergedError, RunResult, resume, sweep, train  # noqa: E402
from qlax.runs.run_evaluation import evaluate_run  # noqa: E402
from qlax.runs.policy import load_policy  # noqa: E402

__all__ = ["ChunkReport", "ConfigError", "DivergedError", "RunResult", "TrainConfig", "evaluate_run", "load_policy",
           "presets", "resume", "sweep", "train"]
__version__ = "0.2.0"
