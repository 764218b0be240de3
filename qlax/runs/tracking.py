"""Experiment tracking: each chunk's numbers to TensorBoard event files or Weights & Biases.

`--log tensorboard` writes into the run directory (`DIR/tensorboard/`), `--log wandb`
logs a W&B run (offline, into `DIR/wandb/`, unless the user configured W&B: WANDB_MODE,
or an API key). Both are extras (`pip install "qlax[tensorboard]"`, `"qlax[wandb]"`).
Per chunk, at the step of the env steps per member: every member's (a sweep: every
setting's mean over its seeds) 100-episode training average, greedy check, loss,
epsilon, mean episode length (of the same episodes), gradient steps taken and learning
rate (decayed, under lr_decay); the population's mean, median and interquartile
range of each of those and of the episodes finished (`population/NAME/mean`,
`.../median`, `.../iqr`: one line for 32 seeds); its env steps/s and members stopped;
and, under Stable-Baselines3's names where the meaning is the same, `rollout/ep_rew_mean`,
`rollout/ep_len_mean`, `rollout/exploration_rate`, `train/loss`, `train/learning_rate`,
`train/n_updates` and `time/fps` (population means), so SB3 dashboards work. The config
as hparams.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from qlax.settings.config import ConfigError
from qlax.settings.sweep import Members

TRACKERS = ("tensorboard", "wandb")
_PER_MEMBER = ("avg_return_100", "greedy_return", "loss", "epsilon", "episode_length", "updates", "learning_rate")
_POPULATION = (*_PER_MEMBER, "episodes")
# Stable-Baselines3's tags for the same numbers: tag -> (the metric, averaged over the population)
SB3_NAMES = {"rollout/ep_rew_mean": "avg_return_100", "rollout/ep_len_mean": "episode_length",
             "rollout/exploration_rate": "epsilon", "train/loss": "loss", "train/learning_rate": "learning_rate",
             "train/n_updates": "updates"}


def population_scalars(metrics) -> dict[str, float]:
    """The population's mean, median and interquartile range of each metric, and SB3's tags
    for those SB3 logs; a metric with no finite value yet is left out."""
    values = {}
    for name in _POPULATION:
        column = np.asarray(getattr(metrics, name), np.float64)
        finite = column[np.isfinite(column)]
        if finite.size:
            q25, median, q75 = np.percentile(finite, [25, 50, 75])
            values.update({f"population/{name}/mean": float(finite.mean()), f"population/{name}/median": float(median),
                           f"population/{name}/iqr": float(q75 - q25)})
    values.update({tag: values[f"population/{name}/mean"] for tag, name in SB3_NAMES.items()
                   if f"population/{name}/mean" in values})
    return values


def chunk_scalars(metrics, members: Members, steps_per_s: float) -> dict[str, float]:
    """{tag: value} of one chunk's gathered ChunkMetrics; NaNs (no episode or check yet) left out."""
    values: dict[str, float] = {"population/env_steps_per_s": steps_per_s, "time/fps": steps_per_s,
                                "population/stopped": float(np.sum(metrics.stopped)), **population_scalars(metrics)}
    for name in _PER_MEMBER:
        column = np.asarray(getattr(metrics, name), np.float64)
        if members.grid:
            for s, setting in enumerate(members.settings):
                label = ",".join(f"{k}={v}" for k, v in setting.items())
                own = [column[m] for m in range(members.count) if members.setting_of(m) == s]
                finite = [v for v in own if math.isfinite(v)]
                if finite:
                    values[f"{name}/{label}"] = float(np.mean(finite))
        else:
            for m in range(members.count):
                if math.isfinite(column[m]):
                    values[f"{name}/seed_{m}"] = float(column[m])
    return values


def hparams(config_dict: dict[str, Any]) -> dict[str, Any]:
    """The config as flat scalars: lists as text, None as 'none'."""
    return {k: (str(v) if isinstance(v, (list, tuple)) else "none" if v is None else v)
            for k, v in config_dict.items()}


class TensorBoard:
    """Event files in DIR/tensorboard, written with TensorBoard's own writer (no TensorFlow)."""

    def __init__(self, run_dir: Path, config_dict: dict[str, Any]):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self.writer = EventFileWriter(str(run_dir / "tensorboard"))
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in hparams(config_dict).items():
            kind = "bool_value" if isinstance(value, bool) else \
                "number_value" if isinstance(value, (int, float)) else "string_value"
            setattr(start.hparams[name], kind, value)
        content = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(session_start_info=start))
        self._write(0, [summary_pb2.Summary.Value(tag=metadata.SESSION_START_INFO_TAG, metadata=content,
                                                  tensor=metadata.NULL_TENSOR)])

    def _write(self, step: int, values: list) -> None:
        self.writer.add_event(self._event(wall_time=time.time(), step=step, summary=self._summary(value=values)))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self._write(step, [self._summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    """A W&B run in DIR/wandb: offline unless WANDB_MODE or an API key says otherwise."""

    def __init__(self, run_dir: Path, config_dict: dict[str, Any], name: str):
        import wandb

        configured = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "qlax"), name=name, dir=str(run_dir),
                              config=config_dict, mode=configured, reinit="finish_previous")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def check(names: list[str] | tuple[str, ...], run_dir: Path | None) -> None:
    """Refuse unknown or repeated trackers, trackers without a run directory, and missing extras,
    before compiling."""
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"--log {name}: given twice; name each tracker once")
        if name not in TRACKERS:
            raise ConfigError(f"--log {name}: must be one of {', '.join(TRACKERS)}")
        if run_dir is None:
            raise ConfigError(f"--log {name} writes into the run directory: give an output directory")
        module = "tensorboard" if name == "tensorboard" else "wandb"
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"--log {name} needs the {module} package: pip install 'qlax[{name}]'") from None


def open_trackers(names, run_dir: Path, config_dict: dict[str, Any]) -> list:
    """One open tracker per name (checked with `check` first)."""
    return [TensorBoard(run_dir, config_dict) if name == "tensorboard" else WandB(run_dir, config_dict, run_dir.name)
            for name in names]
