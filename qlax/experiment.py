"""The host loop: compile, run chunks, show progress, stop early, evaluate, write files.

This is the one place that reads results back from the compiled program. A run
directory holds `config.yaml`, `metrics.csv` (one row per chunk per seed),
`params.msgpack` and `summary.json`.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

from qlax import checkpoint
from qlax.config import TrainConfig, from_dict
from qlax.evaluate import evaluate_population
from qlax.progress import ProgressDisplay, describe
from qlax.trainer import ChunkMetrics, TrainState, make_train, population, seed_keys, solve_threshold

METRIC_COLUMNS = ("seed", "env_steps", "epsilon", "avg_return_100", "episodes", "loss", "stopped")
EVAL_STREAM = 0x5EED  # fold_in tag that separates evaluation keys from training keys


@dataclass
class RunResult:
    """What `train` returns: the numbers of summary.json and the final population state."""

    summary: dict[str, Any]
    state: TrainState  # leading axis: seeds
    eval_returns: np.ndarray  # (seeds, eval_episodes)
    run_dir: Path | None

    @property
    def solved(self) -> list[bool]:
        return self.summary["solved"]

    @property
    def solved_fraction(self) -> float:
        return self.summary["solved_fraction"]

    @property
    def eval_mean_return(self) -> list[float]:
        return self.summary["eval_mean_return"]


def default_run_dir(preset: str) -> Path:
    return Path("runs") / f"{Path(preset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def eval_keys(config: TrainConfig) -> jax.Array:
    return jax.vmap(lambda k: jax.random.fold_in(k, EVAL_STREAM))(seed_keys(config))


def train(config: TrainConfig, seeds: int | None = None, *, out: str | Path | None = None,
          preset: str | None = None, progress: bool = True) -> RunResult:
    """Train `seeds` seeds of `config` at once, evaluate each greedily, write `out` if given.

    Every setting is checked, and the environment built, before anything compiles.
    """
    started = time.perf_counter()
    config = (config.replace(seeds=seeds) if seeds is not None else config).validated()
    trainer = make_train(config)
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    title = Path(preset).stem if preset else config.env

    with ProgressDisplay(title, config.vector_steps * config.num_envs, enabled=progress) as display, \
            _MetricsFile(run_dir) as metrics_file:
        init_fn, chunk_fn = population(trainer)
        keys = seed_keys(config)
        compile_started = time.perf_counter()
        state = init_fn.lower(keys).compile()(keys)
        run_chunk = chunk_fn.lower(state).compile()
        compile_s = time.perf_counter() - compile_started

        train_started = time.perf_counter()
        threshold = solve_threshold(config, trainer.env)
        for _ in range(config.num_chunks):
            state, metrics = run_chunk(state)
            metrics: ChunkMetrics = jax.device_get(metrics)
            metrics_file.write(metrics)
            steps_per_s = float(np.sum(metrics.env_steps)) / (time.perf_counter() - train_started)
            display.update(int(np.max(metrics.env_steps)), describe(
                int(np.max(metrics.env_steps)), steps_per_s, metrics.epsilon, metrics.avg_return_100,
                int(np.sum(metrics.stopped)), config.seeds))
            if np.all(metrics.stopped):
                break
        jax.block_until_ready(state)
        train_s = time.perf_counter() - train_started

    returns = np.asarray(evaluate_population(config.env, trainer.q_function, state.learner.params,
                                             eval_keys(config), config.eval_episodes))
    env_steps = np.asarray(metrics.env_steps)
    summary = {
        "preset": preset,
        "env": config.env,
        "num_seeds": config.seeds,
        "env_steps": [int(s) for s in env_steps],
        "wall_s": round(time.perf_counter() - started, 3),
        "compile_s": round(compile_s, 3),
        "train_s": round(train_s, 3),
        "env_steps_per_s": round(float(env_steps.sum()) / train_s, 1),
        **_eval_fields(returns, threshold),
        "early_stopped": [bool(s) for s in metrics.stopped],
        "train_avg_return_100": [_finite_or_none(a) for a in metrics.avg_return_100],
        "train_episodes": [int(e) for e in metrics.episodes],
    }
    if run_dir is not None:
        checkpoint.save_params(run_dir, state.learner.params)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return RunResult(summary=summary, state=state, eval_returns=returns, run_dir=run_dir)


def _eval_fields(returns: np.ndarray, threshold: float | None) -> dict[str, Any]:
    means = returns.mean(axis=1)
    solved = [bool(threshold is not None and m >= threshold) for m in means]
    return {
        "eval_episodes": int(returns.shape[1]),
        "threshold": threshold,
        "eval_mean_return": [round(float(m), 3) for m in means],
        "eval_std_return": [round(float(s), 3) for s in returns.std(axis=1)],
        "solved": solved,
        "solved_fraction": sum(solved) / len(solved),
    }


def _finite_or_none(x) -> float | None:
    return round(float(x), 3) if math.isfinite(float(x)) else None


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{run_dir}: not a qlax run directory (no config.yaml)")
    return from_dict(yaml.safe_load(path.read_text()) or {})


def evaluate_run(run_dir: str | Path, episodes: int | None = None) -> dict[str, Any]:
    """Greedy evaluation of every seed saved in `run_dir`; writes and returns eval.json's fields."""
    config = load_run_config(run_dir)
    if episodes is not None:
        config = config.replace(eval_episodes=episodes)
    trainer = make_train(config)
    template = jax.eval_shape(jax.vmap(trainer.q_function.init), seed_keys(config))
    params = checkpoint.load_params(Path(run_dir), template)
    returns = np.asarray(evaluate_population(config.env, trainer.q_function, params,
                                             eval_keys(config), config.eval_episodes))
    result = {
        "episodes": config.eval_episodes,
        "backend": "gymnax",
        "mean_return": [round(float(m), 3) for m in returns.mean(axis=1)],
        "std_return": [round(float(s), 3) for s in returns.std(axis=1)],
        "min_return": [float(m) for m in returns.min(axis=1)],
        "max_return": [float(m) for m in returns.max(axis=1)],
        **{k: v for k, v in _eval_fields(returns, solve_threshold(config, trainer.env)).items()
           if k in ("threshold", "solved", "solved_fraction")},
    }
    (Path(run_dir) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


class _MetricsFile:
    """metrics.csv, appended and flushed after every chunk so an interrupted run keeps its rows."""

    def __init__(self, run_dir: Path | None):
        self.path = run_dir / "metrics.csv" if run_dir is not None else None

    def __enter__(self):
        if self.path is not None:
            self.file = self.path.open("w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(METRIC_COLUMNS)
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            self.file.close()

    def write(self, m: ChunkMetrics) -> None:
        if self.path is None:
            return
        for i in range(len(m.env_steps)):
            self.writer.writerow([i, int(m.env_steps[i]), f"{float(m.epsilon[i]):.6g}",
                                  f"{float(m.avg_return_100[i]):.6g}", int(m.episodes[i]),
                                  f"{float(m.loss[i]):.6g}", int(m.stopped[i])])
        self.file.flush()

