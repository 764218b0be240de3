"""Checkpoints of the complete training state: flax msgpack plus a JSON manifest, never pickle.

A checkpoint is a directory `checkpoints/chunk-000012/` holding `state.msgpack` and
`manifest.json`. It is written under a temporary name and renamed into place, so a crash
or a second Ctrl-C during a save never leaves a broken latest checkpoint. Loading checks
every array's shape and dtype against the state the run's config implies.

A run of several processes (one per host) writes one state file per process, its own
slice of the members (`state.1-of-2.msgpack`), into the same directory; the run
directory must then be on a filesystem they share.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from flax import serialization

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.msgpack"
MANIFEST_FILE = "manifest.json"
FORMAT = "qlax-checkpoint-v3"  # v3: algorithm state apart from the member's (qlax 0.2)


class CheckpointError(ValueError):
    """A missing, truncated, foreign or mismatched checkpoint."""


def state_file(shard: int, shards: int) -> str:
    return STATE_FILE if shards == 1 else f"state.{shard}-of-{shards}.msgpack"


def save(run_dir: Path, state: Any, chunk: int, meta: dict[str, Any], keep: int, *, shard: int = 0,
         shards: int = 1, barrier: Callable[[str], None] = lambda name: None) -> Path:
    """Write `state` as the checkpoint after `chunk` chunks; keep only the newest `keep`.

    With `shards` processes, each calls this with its own slice of the state; `barrier`
    (a name -> None that returns once every process reached it) orders the steps so that
    shard 0 renames the directory only after every file is written.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    final = root / f"chunk-{chunk:06d}"
    tmp = root / f".tmp-chunk-{chunk:06d}"
    if shard == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    barrier(f"qlax-checkpoint-{chunk}-open")
    (tmp / state_file(shard, shards)).write_bytes(serialization.to_bytes(jax.device_get(state)))
    barrier(f"qlax-checkpoint-{chunk}-written")
    if shard == 0:
        manifest = {"format": FORMAT, "chunk": chunk, "shards": shards, **meta}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in complete(run_dir)[:-keep]:
            shutil.rmtree(old)
    barrier(f"qlax-checkpoint-{chunk}-done")
    return final


def complete(run_dir: Path) -> list[Path]:
    """The run's finished checkpoints, oldest first (temporaries of an interrupted save excluded)."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.name.startswith("chunk-") and (p / MANIFEST_FILE).is_file())


def latest(run_dir: Path) -> Path:
    found = complete(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: no checkpoint to load (was the run started with an output directory?)")
    return found[-1]


def load(path: Path, template: Any, *, shard: int = 0, shards: int = 1) -> tuple[Any, dict[str, Any]]:
    """(state shaped like `template`, manifest) from the checkpoint directory `path`;
    process `shard` of `shards` reads its own slice."""
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable manifest ({err.__class__.__name__})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if isinstance(found, str) and found.startswith("qlax-checkpoint-") and found != FORMAT:
        raise CheckpointError(f"{path}: written in checkpoint format {found!r}; this qlax reads {FORMAT!r}: "
                              f"resume or evaluate it with the qlax version that wrote it")
    if found != FORMAT:
        raise CheckpointError(f"{path}: not a qlax checkpoint (format {found!r})"
                              if isinstance(manifest, dict) else f"{path}: not a qlax checkpoint")
    saved_by = manifest.get("shards", 1)
    if saved_by != shards:
        raise CheckpointError(f"{path}: saved by {saved_by} process(es); resume it with {saved_by}, not {shards}")
    return restore(path / state_file(shard, shards), template), manifest


def restore(file: Path, template: Any) -> Any:
    """The pytree in msgpack `file`, shaped like `template` (arrays or ShapeDtypeStructs), validated."""
    try:
        raw = serialization.msgpack_restore(Path(file).read_bytes())
    except OSError as err:
        raise CheckpointError(f"{file}: cannot be read ({err.strerror})") from None
    except Exception as err:  # msgpack raises several unrelated types on bad bytes
        raise CheckpointError(f"{file}: truncated or not a qlax state file ({err.__class__.__name__})") from None
    _check_tree(raw, serialization.to_state_dict(template), file, "")
    return serialization.from_state_dict(template, raw)


def _check_tree(raw, expected, file: Path, where: str) -> None:
    if expected is None:  # an absent optional field, such as a one-step transition's discount
        if raw is not None:
            raise CheckpointError(f"{file}: '{where}' should be empty for this config, found {type(raw).__name__}")
        return
    if isinstance(expected, dict):
        if not isinstance(raw, dict) or set(raw) != set(expected):
            found = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
            raise CheckpointError(f"{file}: expected entries {sorted(expected)} at '{where or '/'}', found {found}")
        for k in expected:
            _check_tree(raw[k], expected[k], file, f"{where}/{k}")
        return
    shape, dtype = tuple(expected.shape), np.dtype(expected.dtype)
    if not isinstance(raw, np.ndarray) or raw.shape != shape or raw.dtype != dtype:
        got = f"{raw.shape} {raw.dtype}" if isinstance(raw, np.ndarray) else type(raw).__name__
        raise CheckpointError(f"{file}: '{where}' should be {shape} {dtype} for this config, found {got}")
