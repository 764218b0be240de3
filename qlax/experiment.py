"""The host loop: compile, run chunks, show progress, stop, checkpoint, evaluate, write files.

This is the one place that reads results back from the compiled program. A run
directory holds `config.yaml`, `metrics.csv` (one row per chunk per seed),
`checkpoints/`, `summary.json` and `learning_curve.png`.
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

from qlax import checkpoint, episodes
from qlax.config import ConfigError, TrainConfig, from_dict
from qlax.evaluate import evaluate_population
from qlax.interrupt import GracefulInterrupt
from qlax.progress import ProgressDisplay, describe
from qlax.trainer import ChunkMetrics, Trainer, TrainState, make_train, population, seed_keys, solve_threshold

METRIC_COLUMNS = ("seed", "env_steps", "epsilon", "avg_return_100", "episodes", "loss", "stopped", "diverged")
EVAL_STREAM = 0x5EED  # fold_in tag that separates evaluation keys from training keys


class DivergedError(RuntimeError):
    """Every seed's loss or parameters went non-finite; the run stopped."""


@dataclass
class RunOptions:
    """How the host loop runs; saved in each checkpoint so `resume` continues alike."""

    preset: str | None = None
    checkpoint_every: int = 10  # chunks between checkpoints (one is also saved at the end)
    keep: int = 2  # checkpoints kept

    def validated(self) -> RunOptions:
        if self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every = {self.checkpoint_every}: out of range, allowed >= 1")
        if self.keep < 1:
            raise ConfigError(f"keep = {self.keep}: out of range, allowed >= 1")
        return self


@dataclass
class RunResult:
    """What `train` returns: the numbers of summary.json and the final population state."""

    summary: dict[str, Any]
    state: TrainState  # leading axis: seeds
    eval_returns: np.ndarray | None  # (seeds, eval_episodes); None if the run was interrupted
    run_dir: Path | None

    @property
    def solved(self) -> list[bool] | None:
        return self.summary["solved"]

    @property
    def solved_fraction(self) -> float | None:
        return self.summary["solved_fraction"]

    @property
    def eval_mean_return(self) -> list[float] | None:
        return self.summary["eval_mean_return"]

    @property
    def interrupted(self) -> bool:
        return self.summary["interrupted"]


def default_run_dir(preset: str) -> Path:
    return Path("runs") / f"{Path(preset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def eval_keys(config: TrainConfig) -> jax.Array:
    return jax.vmap(lambda k: jax.random.fold_in(k, EVAL_STREAM))(seed_keys(config))


def state_template(trainer: Trainer):
    """Shapes and dtypes of the population state for `trainer.config`, without computing it."""
    return jax.eval_shape(jax.vmap(trainer.init), seed_keys(trainer.config))


def train(config: TrainConfig, seeds: int | None = None, *, out: str | Path | None = None,
          preset: str | None = None, progress: bool = True, checkpoint_every: int = 10,
          keep: int = 2) -> RunResult:
    """Train `seeds` seeds of `config` at once, evaluate each greedily, write `out` if given.

    Every setting is checked, and the environment built, before anything compiles.
    """
    started = time.perf_counter()
    config = (config.replace(seeds=seeds) if seeds is not None else config).validated()
    options = RunOptions(preset, checkpoint_every, keep).validated()
    trainer = make_train(config)
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        _MetricsFile.start(run_dir)
    compile_started = time.perf_counter()
    keys = seed_keys(config)
    state = population(trainer).init.lower(keys).compile()(keys)
    return _run(trainer, state, 0, run_dir, options, progress, started, time.perf_counter() - compile_started)


def resume(run_dir: str | Path, *, progress: bool = True) -> RunResult:
    """Continue the run in `run_dir` from its latest checkpoint, as if it had never stopped."""
    started = time.perf_counter()
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    trainer = make_train(config)
    state, manifest = checkpoint.load(checkpoint.latest(run_dir), state_template(trainer))
    options = RunOptions(manifest.get("preset"), manifest["checkpoint_every"], manifest["keep"])
    _MetricsFile.truncate(run_dir, manifest["chunk"] * config.seeds)
    state = jax.device_put(state, population(trainer).sharding)
    return _run(trainer, state, manifest["chunk"], run_dir, options, progress, started, 0.0)


def _run(trainer: Trainer, state: TrainState, first_chunk: int, run_dir: Path | None, options: RunOptions,
         progress: bool, started: float, compile_s: float) -> RunResult:
    """Run chunks from `first_chunk` until every seed stopped or the budget is spent."""
    config = trainer.config
    title = Path(options.preset).stem if options.preset else config.env
    meta = {"preset": options.preset, "checkpoint_every": options.checkpoint_every, "keep": options.keep}
    steps_before = int(np.sum(np.asarray(state.vector_steps))) * config.num_envs
    with ProgressDisplay(title, config.vector_steps * config.num_envs, enabled=progress) as display, \
            _MetricsFile(run_dir) as metrics_file, GracefulInterrupt() as interrupt:
        compile_started = time.perf_counter()
        run_chunk = population(trainer).run_chunk.lower(state).compile()
        compile_s += time.perf_counter() - compile_started
        train_started = time.perf_counter()
        chunk = first_chunk
        interrupted = False
        while chunk < config.num_chunks and not _all_done(state) and not interrupted:
            state, metrics = run_chunk(state)
            metrics: ChunkMetrics = jax.device_get(metrics)
            chunk += 1
            metrics_file.write(metrics)
            steps_per_s = (float(np.sum(metrics.env_steps)) - steps_before) / (time.perf_counter() - train_started)
            display.update(int(np.max(metrics.env_steps)), describe(
                int(np.max(metrics.env_steps)), steps_per_s, metrics.epsilon, metrics.avg_return_100,
                int(np.sum(metrics.stopped)), config.seeds))
            interrupted = interrupt.requested  # read once: the save and the exit agree
            done = chunk == config.num_chunks or _all_done(state) or interrupted
            if run_dir is not None and (done or chunk % options.checkpoint_every == 0):
                checkpoint.save(run_dir, state, chunk, meta, options.keep)
        jax.block_until_ready(state)
        train_s = time.perf_counter() - train_started

    summary = {"preset": options.preset, "env": config.env, "num_seeds": config.seeds,
               **_train_fields(state, config), "compile_s": round(compile_s, 3), "train_s": round(train_s, 3)}
    steps_run = sum(summary["env_steps"]) - steps_before
    summary["env_steps_per_s"] = round(steps_run / train_s, 1) if train_s > 0 else None
    threshold = solve_threshold(config, trainer.env)
    all_diverged = all(summary["diverged"])
    returns = None
    if not (interrupted or all_diverged):
        returns = np.asarray(evaluate_population(config.env, trainer.q_function, state.learner.params,
                                                 eval_keys(config), config.eval_episodes))
    summary.update(_eval_fields(returns, threshold, config.eval_episodes))
    summary["interrupted"] = interrupted
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    if run_dir is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        from qlax.plotting import learning_curve  # matplotlib is imported only when plotting

        learning_curve([run_dir], run_dir / "learning_curve.png")
    if all_diverged:
        raise DivergedError(
            "every seed diverged (non-finite loss or parameters); each froze at its last finite state"
            + (f", saved in {run_dir}" if run_dir else "") + ". Try a smaller lr or gradient: semi.")
    return RunResult(summary=summary, state=state, eval_returns=returns, run_dir=run_dir)


def _all_done(state: TrainState) -> bool:
    return bool(np.all(np.asarray(state.stopped) | np.asarray(state.diverged)))


def _train_fields(state: TrainState, config: TrainConfig) -> dict[str, Any]:
    """Per-seed training numbers read from the final state."""
    avg100 = np.asarray(jax.vmap(episodes.average_return)(state.stats))
    return {
        "env_steps": [int(v) * config.num_envs for v in np.asarray(state.vector_steps)],
        "early_stopped": [bool(s) for s in np.asarray(state.stopped)],
        "diverged": [bool(d) for d in np.asarray(state.diverged)],
        "train_avg_return_100": [round(float(a), 3) if math.isfinite(a) else None for a in avg100],
        "train_episodes": [int(e) for e in np.asarray(state.stats.episodes)],
    }


def _eval_fields(returns: np.ndarray | None, threshold: float | None, episodes_per_seed: int) -> dict[str, Any]:
    if returns is None:
        return {"eval_episodes": episodes_per_seed, "threshold": threshold, "eval_mean_return": None,
                "eval_std_return": None, "solved": None, "solved_fraction": None}
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


def load_run_config(run_dir: str | Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{run_dir}: not a qlax run directory (no config.yaml)")
    return from_dict(yaml.safe_load(path.read_text()) or {})


def load_final_params(run_dir: str | Path, episodes: int | None = None) -> tuple[Trainer, Any]:
    """(trainer, stacked Q parameters) from the latest checkpoint of `run_dir`."""
    config = load_run_config(run_dir)
    if episodes is not None:
        config = config.replace(eval_episodes=episodes)
    trainer = make_train(config)
    state, _ = checkpoint.load(checkpoint.latest(Path(run_dir)), state_template(trainer))
    return trainer, state.learner.params


def evaluate_run(run_dir: str | Path, episodes: int | None = None, backend: str = "gymnax") -> dict[str, Any]:
    """Greedy evaluation of every seed saved in `run_dir`; writes and returns eval.json's fields.

    backend "gymnax" runs the compiled evaluation; "gymnasium" runs the same policies on
    Gymnasium's own environment of the same id.
    """
    trainer, params = load_final_params(run_dir, episodes)
    config = trainer.config
    if backend == "gymnax":
        returns = np.asarray(evaluate_population(config.env, trainer.q_function, params,
                                                 eval_keys(config), config.eval_episodes))
    elif backend == "gymnasium":
        from qlax.gymnasium_backend import evaluate_gymnasium

        returns = evaluate_gymnasium(run_dir, config.eval_episodes)
    else:
        raise ConfigError(f"backend = '{backend}': must be one of gymnax, gymnasium")
    fields = _eval_fields(returns, solve_threshold(config, trainer.env), config.eval_episodes)
    result = {
        "episodes": config.eval_episodes,
        "backend": backend,
        "mean_return": fields["eval_mean_return"],
        "std_return": fields["eval_std_return"],
        "min_return": [float(m) for m in returns.min(axis=1)],
        "max_return": [float(m) for m in returns.max(axis=1)],
        "threshold": fields["threshold"],
        "solved": fields["solved"],
        "solved_fraction": fields["solved_fraction"],
    }
    (Path(run_dir) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


class _MetricsFile:
    """metrics.csv, appended and flushed after every chunk so an interrupted run keeps its rows."""

    def __init__(self, run_dir: Path | None):
        self.path = run_dir / "metrics.csv" if run_dir is not None else None

    @staticmethod
    def start(run_dir: Path) -> None:
        (run_dir / "metrics.csv").write_text(",".join(METRIC_COLUMNS) + "\n")

    @staticmethod
    def truncate(run_dir: Path, rows: int) -> None:
        """Keep the header and the first `rows` rows: those the checkpoint being resumed covers."""
        path = run_dir / "metrics.csv"
        lines = path.read_text().splitlines(keepends=True) if path.is_file() else []
        if not lines:
            _MetricsFile.start(run_dir)
            return
        path.write_text("".join(lines[:1 + rows]))

    def __enter__(self):
        if self.path is not None:
            self.file = self.path.open("a", newline="")
            self.writer = csv.writer(self.file)
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
                                  f"{float(m.loss[i]):.6g}", int(m.stopped[i]), int(m.diverged[i])])
        self.file.flush()
