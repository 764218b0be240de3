"""Shared pieces of the benchmarks: timing, the qlax chunk timer, the IQM, the JSON result line.

Imported first by every benchmark: importing `qlax` gives JAX one CPU device per core
(see `qlax.core.devices`) before anything else starts JAX, as it would for a real run.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from typing import Callable

import qlax  # noqa: F401  (first: one CPU device per core, before JAX starts)
import jax
import numpy as np

from qlax.settings.config import TrainConfig

from qlax.runs.experiment import start


def machine() -> str:
    return (f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].device_kind}, "
            f"jax {jax.__version__}")


def emit(result: dict) -> None:
    """The last line of every benchmark: one JSON object."""
    print(json.dumps({**result, "machine": machine()}), flush=True)


def repeat_timings(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of `repeats` calls of `fn` (its result blocked on), after one untimed call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - started)
    return times


def interleaved_timings(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of `repeats` calls of each of `fns`, taken in turn (a, b, a, b, ...).

    Each is called once untimed first. Taking turns spreads any drift in the machine's
    speed over all of them alike, so their ratio is steadier than timing one after another.
    """
    for fn in fns.values():
        jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - started)
    return times


def iqm(values) -> float | np.ndarray:
    """Interquartile mean over the last axis: the mean of the middle half, floor(n/4) values
    cut from each end of the sorted values (scipy.stats.trim_mean(values, 0.25), the
    statistic rliable reports); a float for one list, an array for rows of them."""
    x = np.sort(np.asarray(values, dtype=float), axis=-1)
    cut = x.shape[-1] // 4
    means = x[..., cut:x.shape[-1] - cut].mean(axis=-1)
    return float(means) if means.ndim == 0 else means


def summary(times: list[float]) -> dict:
    """Median, best and worst of a list of timings (seconds)."""
    return {"median_s": statistics.median(times), "best_s": min(times), "worst_s": max(times)}


def qlax_steps_per_s(config: TrainConfig, chunks: int) -> dict:
    """Aggregate env steps/s of a qlax population on `config`, compile excluded.

    Compiles `run_chunk` ahead of time (timed apart), runs one chunk untimed (it also
    crosses `learning_starts`, so every timed step includes its update), then times
    `chunks` chunks back to back, blocking on each chunk's metrics as the host loop
    does. `config.early_stop` should be False so every seed steps throughout; the
    budget is set here to exactly the chunks run, and checked at the end.
    """
    per_chunk = config.chunk_steps * config.num_envs  # env steps per seed per chunk
    config = config.replace(total_steps=per_chunk * (chunks + 1))
    run = start(config)
    started = time.perf_counter()
    state = run.state
    compiled = run.population.run_chunk.lower(state).compile()
    compile_s = time.perf_counter() - started + run.compile_s

    state, metrics = compiled(state)  # first chunk: untimed
    jax.block_until_ready(metrics)
    chunk_times = []
    for _ in range(chunks):
        started = time.perf_counter()
        state, metrics = compiled(state)
        jax.block_until_ready(metrics)
        chunk_times.append(time.perf_counter() - started)

    env_steps = np.asarray(metrics.env_steps)
    if not np.all(env_steps == (chunks + 1) * per_chunk):
        raise RuntimeError(f"some seeds did not step every timed step: env_steps {env_steps}")
    if np.any(np.asarray(metrics.stopped)) or np.any(np.asarray(metrics.diverged)):
        raise RuntimeError("a seed stopped or diverged during the timed chunks")
    steps = per_chunk * config.seeds
    return {
        "steps_per_s": chunks * steps / sum(chunk_times),  # total steps / total time
        "best_chunk_steps_per_s": steps / min(chunk_times),
        "worst_chunk_steps_per_s": steps / max(chunk_times),
        "compile_s": compile_s,
        "timed_env_steps": chunks * steps,
        "avg_return_100": float(np.mean(np.asarray(metrics.avg_return_100))),
    }
