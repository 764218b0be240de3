"""A run directory read back: its config and members, its latest checkpoint's state and
parameters, and a fresh greedy evaluation of what it saved (eval.json).

`experiment` writes run directories; everything that reads one (resume, `qlax eval`,
policies, plots, rendering, the Gymnasium backend) reads it through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from qlax import checkpoint, reports
from qlax.config import ConfigError, TrainConfig, from_dict, load_yaml
from qlax.devices import is_writer
from qlax.evaluate import evaluate_members
from qlax.placement import Placement, place
from qlax.sweep import Members
from qlax.trainer import Trainer, make_train, solve_threshold

CONFIG_FILE = "config.yaml"
GRID_FILE = "grid.yaml"
METRICS_FILE = "metrics.csv"


def member_template(trainer: Trainer):
    """Shapes and dtypes of one member's state, without computing it."""
    key = jax.ShapeDtypeStruct((2,), np.uint32)
    return jax.eval_shape(trainer.init, key, trainer.config.hparams())


def state_template(trainer: Trainer, rows: int):
    """Shapes and dtypes of `rows` members' state."""
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((rows, *s.shape), s.dtype), member_template(trainer))


def run_settings(members: Members) -> dict[str, Any]:
    """The settings that define a run, as its checkpoints are bound to them: its config but
    eval_episodes (which `qlax eval --episodes` may change) and its grid, in order."""
    config = {k: v for k, v in members.config.to_dict().items() if k != "eval_episodes"}
    return {"config": config, "grid": [[key, list(values)] for key, values in members.grid]}


def load_state(run_dir: Path, trainer: Trainer, members: Members, placement: Placement):
    """(the placed state, manifest) from the latest checkpoint of `run_dir`, checked against
    the run's chunks and its metrics.csv."""
    shards = jax.process_count()
    rows = members.count if shards == 1 else len(placement.local_rows)
    latest = checkpoint.latest(run_dir)
    saved, manifest = checkpoint.load(latest, state_template(trainer, rows), settings=run_settings(members),
                                      shard=jax.process_index(), shards=shards)
    chunk = manifest["chunk"]
    if chunk > trainer.num_chunks:
        raise checkpoint.CheckpointError(f"{latest}: {chunk} chunks saved, but this run has {trainer.num_chunks}")
    logged = _metric_rows(Path(run_dir) / METRICS_FILE)
    if logged < chunk * members.count:
        raise checkpoint.CheckpointError(
            f"{run_dir}: {METRICS_FILE} has {logged} rows; {latest.name} covers {chunk} chunks x {members.count} "
            f"members = {chunk * members.count}: the run directory's files do not belong together")
    if shards == 1:
        return placement.put(saved), manifest
    if manifest["padded"] != placement.padded:
        raise checkpoint.CheckpointError(
            f"{run_dir}: saved as {manifest['padded']} rows over the devices; these processes lay the "
            f"population out as {placement.padded}: resume on the same number of devices")
    return placement.from_local(saved), manifest


def _metric_rows(path: Path) -> int:
    """Rows of metrics.csv below its header (0 if there is none)."""
    try:
        with path.open("rb") as file:
            return max(sum(1 for _ in file) - 1, 0)
    except FileNotFoundError:
        return 0
    except OSError as err:
        raise checkpoint.CheckpointError(f"{path}: cannot be read ({err.strerror})") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path` (config.yaml, grid.yaml), read with qlax's safe loader."""
    try:
        values = load_yaml(path.read_bytes(), str(path))
    except OSError as err:
        raise checkpoint.CheckpointError(f"{path}: cannot be read ({err.strerror})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of setting: value, found {type(values).__name__}")
    return values


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The validated config a run was started with."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{run_dir}: not a qlax run directory (no config.yaml)")
    values = _read_mapping(path)
    try:
        return from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def load_members(run_dir: str | Path, episodes: int | None = None) -> Members:
    """The members of the run in `run_dir` (its config, and its grid for a sweep)."""
    config = load_run_config(run_dir)
    if episodes is not None:
        config = config.replace(eval_episodes=episodes)
    grid_path = Path(run_dir) / GRID_FILE
    if not grid_path.is_file():
        return Members.of(config)
    grid = _read_mapping(grid_path)
    try:
        return Members.of(config, grid)
    except ConfigError as err:
        raise ConfigError(f"{grid_path}: {err}") from None


def load_params(run_dir: str | Path, episodes: int | None = None, best: bool = False) -> tuple[Trainer, Members, Any]:
    """(trainer, members, stacked greedy Q parameters as numpy) from the latest checkpoint of
    `run_dir`; with `best`, those of each member's best greedy check (keep_best runs)."""
    members = load_members(run_dir, episodes)
    trainer = make_train(members.config)
    state, _ = checkpoint.load(checkpoint.latest(Path(run_dir)), state_template(trainer, members.count),
                               settings=run_settings(members))
    return trainer, members, trainer.greedy_params(state, best)


def evaluate_run(run_dir: str | Path, episodes: int | None = None, backend: str = "gymnax",
                 best: bool = False) -> dict[str, Any]:
    """Greedy evaluation of every member saved in `run_dir`; writes and returns eval.json's fields.

    backend "gymnax" runs the compiled evaluation; "gymnasium" runs the same policies on
    Gymnasium's own environment of the same id. `best`: each member's best greedy check's
    parameters (keep_best runs) instead of its last ones.
    """
    trainer, members, params = load_params(run_dir, episodes, best)
    config = trainer.config
    if backend == "gymnax":
        placement = place(members.count)
        returns = evaluate_members(trainer, members, placement, placement.put(params))
    elif backend == "gymnasium":
        from qlax.gymnasium_backend import evaluate_gymnasium

        returns = evaluate_gymnasium(run_dir, config.eval_episodes, best=best)
    else:
        raise ConfigError(f"backend = '{backend}': must be one of gymnax, gymnasium")
    threshold = solve_threshold(config, trainer.env)
    numbers = reports.eval_numbers(returns, threshold)
    result = {
        "episodes": config.eval_episodes,
        "backend": backend,
        "best": best,
        "mean_return": numbers["eval_mean_return"],
        "std_return": numbers["eval_std_return"],
        "min_return": [float(m) for m in returns.min(axis=1)],
        "max_return": [float(m) for m in returns.max(axis=1)],
        "threshold": threshold,
        "solved": numbers["solved"],
        "solved_fraction": sum(numbers["solved"]) / len(numbers["solved"]),
    }
    if is_writer():
        (Path(run_dir) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
