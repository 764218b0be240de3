"""Saving and loading trained Q-function parameters (flax msgpack; never pickle).

Files are written to a temporary name and renamed, so a crash never leaves a broken one.
Loading checks every array's shape and dtype against the run's config.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

PARAMS_FILE = "params.msgpack"


class CheckpointError(ValueError):
    """A missing, truncated, foreign or mismatched checkpoint file."""


def save_params(run_dir: Path, params) -> Path:
    """Write the population's Q parameters (leading seed axis) to run_dir/params.msgpack."""
    path = Path(run_dir) / PARAMS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(serialization.to_bytes(jax.device_get(params)))
    os.replace(tmp, path)
    return path


def load_params(run_dir: Path, template):
    """Parameters shaped like `template` (arrays or ShapeDtypeStructs), validated."""
    path = Path(run_dir) / PARAMS_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no saved parameters (was the run finished?)")
    try:
        raw = serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on bad bytes
        raise CheckpointError(f"{path}: not a qlax parameter file ({err.__class__.__name__})") from None
    expected = serialization.to_state_dict(template)
    _check_tree(raw, expected, path, "")
    return serialization.from_state_dict(template, raw)


def _check_tree(raw, expected, path: Path, where: str) -> None:
    if isinstance(expected, dict):
        if not isinstance(raw, dict) or set(raw) != set(expected):
            found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise CheckpointError(f"{path}: expected entries {sorted(expected)} at '{where or '/'}', found {found}")
        for k in expected:
            _check_tree(raw[k], expected[k], path, f"{where}/{k}")
        return
    shape, dtype = tuple(expected.shape), np.dtype(expected.dtype)
    if not isinstance(raw, np.ndarray) or raw.shape != shape or raw.dtype != dtype:
        got = f"{raw.shape} {raw.dtype}" if isinstance(raw, np.ndarray) else type(raw).__name__
        raise CheckpointError(f"{path}: '{where}' should be {shape} {dtype} for this config, found {got}")
