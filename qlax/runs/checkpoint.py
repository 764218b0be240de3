"""Checkpoints of the complete training state: flax msgpack plus a JSON manifest, never pickle.

A checkpoint is a directory `checkpoints/chunk-000012/` holding `state.msgpack` and
`manifest.json`. It is written under a temporary name and renamed into place, so a crash,
a kill or a full disk during a save never leaves a broken latest checkpoint; a failed save
removes its partial directory and keeps the previous checkpoints. The state is streamed
to the file one array at a time, each written from the memory that already holds it (a CPU
device's own buffers; an accelerator's arrays come to the host in blocks of at most
64 MB), so saving never holds a second copy of it in memory.

The manifest binds the checkpoint to its run and to its bytes: the sha256 of the settings
that define the run (its config, but eval_episodes, and its grid), the size and sha256 of
every state file, and the chunk count, which must match the directory's name. Loading
checks all of it, then every array's shape and dtype against the state the run's config
implies, and refuses anything else in one line. A checkpoint in an earlier format that
`UPGRADES` lists (v4: before the episode records kept lengths) is read too, its state
brought up to this format's; others are refused.

A run of several processes (one per host) writes one state file per process, its own
slice of the members (`state.1-of-2.msgpack`), into the same directory; the run
directory must then be on a filesystem they share.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import jax
import msgpack
import numpy as np
from flax import serialization

from qlax.program import episodes
from qlax.program.memory import size_text
from qlax.settings.config import TrainConfig, short

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.msgpack"
MANIFEST_FILE = "manifest.json"
FORMAT = "qlax-checkpoint-v5"  # v5: episode lengths in the episode records; v4: checksums, the settings hash
_NAME = re.compile(r"chunk-(\d{6,})")
_DIGEST = ".sha256"  # beside each state file until the manifest lists it
_MAX_MANIFEST_BYTES = 1_000_000
_PACK = msgpack.Packer(use_bin_type=True)
_BLOCK_BYTES = 64_000_000  # the most of an accelerator's array on the host at once while saving


def _add_episode_lengths(raw: Any) -> Any:
    """A v4 training state brought to v5: its episode records get the ring of lengths they
    did not keep (`episodes.unknown_lengths`)."""
    stats = raw.get("stats") if isinstance(raw, dict) else None
    if isinstance(stats, dict) and isinstance(stats.get("episodes"), np.ndarray) and "recent_lengths" not in stats:
        stats["recent_lengths"] = episodes.unknown_lengths(stats["episodes"])
    return raw


# The earlier formats this qlax reads, each with what brings its state (flax's state dict) to FORMAT's.
UPGRADES = {"qlax-checkpoint-v4": _add_episode_lengths}


class CheckpointError(ValueError):
    """A missing, truncated, foreign, damaged or mismatched checkpoint, or one that could not be saved."""


def state_file(shard: int, shards: int) -> str:
    return STATE_FILE if shards == 1 else f"state.{shard}-of-{shards}.msgpack"


def settings_sha256(settings: dict[str, Any]) -> str:
    """The hash of the settings that define a run (a JSON-able dict)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def save(run_dir: Path, state: Any, chunk: int, meta: dict[str, Any], keep: int, *, settings: dict[str, Any],
         rows: int | None = None, shard: int = 0, shards: int = 1,
         barrier: Callable[[str], None] = lambda name: None) -> Path:
    """Write `state` as the checkpoint after `chunk` chunks of the run that `settings` define;
    keep only the newest `keep`. Of each array, the rows this process holds are written (the
    first `rows` of them, if given: a padded population's real members).

    With `shards` processes, each calls this with its own slice of the state; `barrier`
    (a name -> None that returns once every process reached it) orders the steps so that
    shard 0 renames the directory only after every file is written. A write that fails (a
    full disk, ...) leaves the previous checkpoints as they were and raises CheckpointError.
    """
    root = Path(run_dir) / CHECKPOINT_DIR
    final, tmp = root / f"chunk-{chunk:06d}", root / f".tmp-chunk-{chunk:06d}"
    failed: list[OSError] = []

    def attempt(step: Callable[[], None]) -> None:
        if not failed:
            try:
                step()
            except OSError as err:
                failed.append(err)

    if shard == 0:
        attempt(lambda: _fresh_dir(tmp))
    barrier(f"qlax-checkpoint-{chunk}-open")
    attempt(lambda: _write_state(tmp / state_file(shard, shards), state, rows))
    barrier(f"qlax-checkpoint-{chunk}-written")
    if shard == 0:
        manifest = {"format": FORMAT, "chunk": chunk, "shards": shards, **meta,
                    "settings_sha256": settings_sha256(settings), "settings": settings}
        attempt(lambda: _finish(tmp, final, manifest))
        if not failed:
            _rotate(root, keep)
    barrier(f"qlax-checkpoint-{chunk}-done")
    if failed or not (final / MANIFEST_FILE).is_file():
        if shard == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(_not_saved(run_dir, final, failed, sum(leaf.nbytes for leaf in jax.tree.leaves(state))))
    return final


def _fresh_dir(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()


def _write_state(file: Path, state: Any, rows: int | None) -> None:
    """Stream `state` into `file` as flax msgpack, one array at a time; its size and sha256
    go beside it, for the manifest."""
    out = _Hashing(file.open("wb"))
    with out.file:
        _write_tree(out, serialization.to_state_dict(state), rows)
        out.file.flush()
        os.fsync(out.file.fileno())
    Path(f"{file}{_DIGEST}").write_text(json.dumps({"bytes": out.bytes, "sha256": out.sha.hexdigest()}))


class _Hashing:
    """A binary file that counts and hashes what is written to it."""

    def __init__(self, file):
        self.file, self.sha, self.bytes = file, hashlib.sha256(), 0

    def write(self, data) -> None:
        self.file.write(data)
        self.sha.update(data)
        self.bytes += memoryview(data).nbytes


def _write_tree(out: _Hashing, tree: Any, rows: int | None) -> None:
    if isinstance(tree, dict):
        out.write(_PACK.pack_map_header(len(tree)))
        for key, value in tree.items():
            out.write(_PACK.pack(key))
            _write_tree(out, value, rows)
    elif isinstance(tree, jax.Array):
        _write_array(out, *_host_blocks(tree, rows))
    elif isinstance(tree, (np.ndarray, np.generic)):
        array = np.asarray(tree)
        array = array if rows is None or array.ndim == 0 else array[:rows]
        _write_array(out, array.shape, array.dtype, [array])
    else:
        out.write(_PACK.pack(tree))


def _host_blocks(leaf: jax.Array, rows: int | None) -> tuple[tuple[int, ...], np.dtype, Iterator[np.ndarray]]:
    """(shape, dtype, numpy blocks in order) of the rows of `leaf` this process holds, the
    first `rows` of them if given. A CPU device's block is its own buffer, seen without a
    copy; an accelerator's come to the host one block of at most _BLOCK_BYTES at a time."""
    if leaf.ndim == 0:
        return (), leaf.dtype, iter([np.asarray(leaf)])
    shards = sorted((s for s in leaf.addressable_shards if s.replica_id == 0), key=lambda s: s.index[0].start or 0)
    spans, held = [], 0  # (a device's shard, the rows of it written)
    for shard in shards:
        count = shard.data.shape[0] if rows is None else min(shard.data.shape[0], rows - held)
        if count > 0:
            spans.append((shard, count))
            held += count
    row_bytes = math.prod(leaf.shape[1:]) * leaf.dtype.itemsize

    def blocks():
        for shard, count in spans:
            data = shard.data
            if shard.device.platform == "cpu":
                yield np.asarray(data)[:count]
                continue
            step = max(1, _BLOCK_BYTES // max(row_bytes, 1))
            for start in range(0, count, step):
                yield np.asarray(data[start:min(start + step, count)])

    return (held, *leaf.shape[1:]), leaf.dtype, blocks()


class _Blocks:
    """The bytes of numpy blocks, in order, handed to a file a given count at a time, uncopied."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.views = (memoryview(np.ascontiguousarray(b).reshape(-1).view(np.uint8)) for b in blocks)
        self.view = memoryview(b"")

    def write(self, out: _Hashing, count: int) -> None:
        while count:
            if not self.view:
                self.view = next(self.views)
            part = self.view[:count]
            out.write(part)
            self.view, count = self.view[len(part):], count - len(part)


def _write_array(out: _Hashing, shape: tuple[int, ...], dtype: np.dtype, blocks: Iterable[np.ndarray]) -> None:
    """One array as flax writes it: an ndarray extension of (shape, dtype, bytes), or flat
    chunks of at most flax's MAX_CHUNK_SIZE bytes, its bytes taken from `blocks` as they come."""
    dtype, size, data = np.dtype(dtype), math.prod(shape), _Blocks(blocks)
    if size * dtype.itemsize <= serialization.MAX_CHUNK_SIZE:
        _write_extension(out, shape, dtype, data)
        return
    step = max(1, serialization.MAX_CHUNK_SIZE // dtype.itemsize)
    starts = range(0, size, step)
    out.write(_PACK.pack_map_header(3) + _PACK.pack("__msgpack_chunked_array__") + _PACK.pack(True)
              + _PACK.pack("shape") + _PACK.pack({str(i): d for i, d in enumerate(shape)})
              + _PACK.pack("chunks") + _PACK.pack_map_header(len(starts)))
    for i, start in enumerate(starts):
        out.write(_PACK.pack(str(i)))
        _write_extension(out, (min(step, size - start),), dtype, data)


def _write_extension(out: _Hashing, shape: tuple[int, ...], dtype: np.dtype, data: _Blocks) -> None:
    nbytes = math.prod(shape) * dtype.itemsize
    head = _PACK.pack_array_header(3) + _PACK.pack(shape) + _PACK.pack(dtype.name) + _header(0xc4, nbytes)
    out.write(_header(0xc7, len(head) + nbytes) + struct.pack(">b", 1))  # ext type 1: flax's ndarray
    out.write(head)
    data.write(out, nbytes)


def _header(code: int, size: int) -> bytes:
    """A msgpack bin (code 0xc4) or ext (0xc7) header for `size` bytes, in its 8, 16 or 32-bit form."""
    for step, fmt in enumerate((">B", ">H", ">I")):
        if size < 256 ** struct.calcsize(fmt):
            return bytes([code + step]) + struct.pack(fmt, size)
    raise ValueError(f"{size} bytes do not fit one msgpack object")


def _finish(tmp: Path, final: Path, manifest: dict[str, Any]) -> None:
    """The manifest, with every state file's size and sha256, then the rename into place."""
    digests = sorted(tmp.glob(f"*{_DIGEST}"))
    manifest["files"] = {p.name[:-len(_DIGEST)]: json.loads(p.read_text()) for p in digests}
    if len(manifest["files"]) != manifest["shards"]:
        raise OSError(f"{manifest['shards'] - len(manifest['files'])} process(es) could not write their state")
    with (tmp / MANIFEST_FILE).open("w") as file:
        file.write(json.dumps(manifest, indent=2) + "\n")
        file.flush()
        os.fsync(file.fileno())
    for p in digests:
        p.unlink()
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _rotate(root: Path, keep: int) -> None:
    """Remove every checkpoint older than the newest `keep` complete ones, and unfinished saves."""
    oldest_kept = _number(complete(root.parent)[-keep:][0])
    for path in _chunk_dirs(root.parent):
        if _number(path) < oldest_kept:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".tmp-chunk-*"):
        shutil.rmtree(path, ignore_errors=True)


def _not_saved(run_dir: Path, final: Path, failed: list[OSError], nbytes: int) -> str:
    err = failed[0] if failed else None
    why = "another process could not write its part" if err is None else \
        f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
    kept = complete(run_dir)
    then = f"{kept[-1].name} is kept: make room, then qlax resume {run_dir}" if kept else \
        "there is no earlier checkpoint: make room and start the run again"
    return f"checkpoint {final.name} not saved: {why}; a checkpoint of this run needs about {size_text(nbytes)}; {then}"


def _chunk_dirs(run_dir: Path) -> list[Path]:
    """Every checkpoint directory of the run, complete or not, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    found = [p for p in root.iterdir() if _NAME.fullmatch(p.name) and p.is_dir()] if root.is_dir() else []
    return sorted(found, key=_number)


def _number(path: Path) -> int:
    return int(_NAME.fullmatch(path.name).group(1))


def complete(run_dir: Path) -> list[Path]:
    """The run's finished checkpoints, oldest first (temporaries of an interrupted save excluded)."""
    return [p for p in _chunk_dirs(run_dir) if (p / MANIFEST_FILE).is_file()]


def latest(run_dir: Path) -> Path:
    """The newest checkpoint directory; refused if it is damaged, never silently an older one."""
    found = _chunk_dirs(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: no checkpoint to load (was the run started with an output directory?)")
    if not (found[-1] / MANIFEST_FILE).is_file():
        older = complete(run_dir)
        hint = f"move it away to resume from {older[-1].name}, the newest complete one" if older else \
            "there is no complete checkpoint before it"
        raise CheckpointError(f"{found[-1]}: damaged checkpoint (no {MANIFEST_FILE}); {hint}")
    return found[-1]


def load(path: Path, template: Any, *, settings: dict[str, Any], shard: int = 0,
         shards: int = 1, free: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """(state shaped like `template`, manifest) from the checkpoint directory `path` of the run
    that `settings` define; process `shard` of `shards` reads its own slice. The config
    settings named in `free` may differ: the checkpoint's own values (its manifest's copy,
    checked against its hash) are taken for them."""
    path = Path(path)
    manifest = bound_manifest(path, settings, free)
    if manifest["shards"] != shards:
        raise CheckpointError(f"{path}: saved by {manifest['shards']} process(es); resume it with "
                              f"{manifest['shards']}, not {shards}")
    name = state_file(shard, shards)
    if name not in manifest["files"]:
        raise CheckpointError(f"{path}: the manifest lists no {name}")
    data = _read_checked(path / name, manifest["files"][name])
    return _restore(data, template, path / name, manifest["format"]), manifest


def bound_manifest(path: Path, settings: dict[str, Any], free: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest of checkpoint `path`, checked to belong to the run that `settings` define
    (the config settings in `free` may differ; see `load`)."""
    manifest = read_manifest(path)
    saved = manifest.get("settings")
    saved_config = saved.get("config") if isinstance(saved, dict) else None
    if isinstance(saved_config, dict) and isinstance(settings.get("config"), dict):
        here, defaults = settings["config"], TrainConfig().to_dict()
        # A setting qlax gained since the checkpoint was saved, at its default: the run trained as it does.
        added = {k for k, v in here.items() if k not in saved_config and k in defaults and v == defaults[k]}
        settings = {**settings, "config": {**{k: v for k, v in here.items() if k not in added},
                                           **{k: saved_config[k] for k in free if k in saved_config}}}
    if manifest["settings_sha256"] != settings_sha256(settings):
        raise CheckpointError(f"{path}: saved by a run with other settings than this run directory's "
                              f"({_differences(manifest.get('settings'), settings)}); it is not this run's checkpoint")
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of checkpoint directory `path`, its format and every number checked."""
    file = Path(path) / MANIFEST_FILE
    try:
        if file.stat().st_size > _MAX_MANIFEST_BYTES:
            raise CheckpointError(f"{path}: manifest of {file.stat().st_size:,} bytes, more than a qlax manifest")
        manifest = json.loads(file.read_bytes())
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: unreadable manifest ({err.__class__.__name__})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    readable = (FORMAT, *UPGRADES)
    if isinstance(found, str) and found.startswith("qlax-checkpoint-") and found not in readable:
        raise CheckpointError(f"{path}: written in checkpoint format {short(found)}; this qlax reads "
                              f"{' and '.join(map(repr, readable))}: resume or evaluate it with the qlax version "
                              f"that wrote it")
    if found not in readable:
        raise CheckpointError(f"{path}: not a qlax checkpoint (format {short(found)})"
                              if isinstance(manifest, dict) else f"{path}: not a qlax checkpoint")
    for key in ("chunk", "checkpoint_every", "keep", "shards", "members", "padded"):
        value = manifest.get(key)
        if type(value) is not int or value < 1:
            raise CheckpointError(f"{path}: manifest's {key} = {short(value)}; expected an integer >= 1")
    match = _NAME.fullmatch(Path(path).name)
    if match is None or int(match.group(1)) != manifest["chunk"]:
        raise CheckpointError(f"{path}: manifest's chunk = {manifest['chunk']} does not match the directory's name")
    if manifest["padded"] < manifest["members"]:
        raise CheckpointError(f"{path}: manifest's padded = {manifest['padded']} is below its members = "
                              f"{manifest['members']}")
    if not (manifest.get("preset") is None or isinstance(manifest["preset"], str)):
        raise CheckpointError(f"{path}: manifest's preset = {short(manifest['preset'])}; expected a name or null")
    if not isinstance(manifest.get("settings_sha256"), str) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{path}: the manifest lacks its settings_sha256 or files entries")
    return manifest


def _shown(values: dict, k: str) -> str:
    """One setting's value as a difference names it; 'absent' where that side lacks it."""
    return short(values[k], 30) if k in values else "absent"


def _differences(saved: Any, settings: dict[str, Any]) -> str:
    """'lr: 0.005 there, 0.001 here' for up to three settings that differ, from the manifest's copy."""
    if not isinstance(saved, dict):
        return "its settings hash differs"
    diffs = []
    for part in ("config", "grid"):
        there, here = saved.get(part), settings.get(part)
        if part == "grid" or not (isinstance(there, dict) and isinstance(here, dict)):
            if there != here:
                diffs.append(f"{part}: {short(there, 40)} there, {short(here, 40)} here")
            continue
        diffs += [f"{k}: {_shown(there, k)} there, {_shown(here, k)} here"
                  for k in sorted(set(there) | set(here)) if k not in there or k not in here or there[k] != here[k]]
    return "; ".join(diffs[:3]) or "its settings hash differs"


def _read_checked(file: Path, listed: Any) -> bytes:
    """The bytes of `file`, refused unless their size and sha256 are the manifest's."""
    if not (isinstance(listed, dict) and type(listed.get("bytes")) is int and isinstance(listed.get("sha256"), str)):
        raise CheckpointError(f"{file}: the manifest's entry for it is not a size and a sha256")
    try:
        size = file.stat().st_size
        if size != listed["bytes"]:
            raise CheckpointError(f"{file}: {size:,} bytes, the manifest says {listed['bytes']:,}: "
                                  f"{'truncated' if size < listed['bytes'] else 'damaged'} or replaced")
        data = file.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{file}: cannot be read ({err.strerror})") from None
    if hashlib.sha256(data).hexdigest() != listed["sha256"]:
        raise CheckpointError(f"{file}: its sha256 is not the manifest's: damaged or replaced since it was saved")
    return data


def _restore(data: bytes, template: Any, file: Path, written_in: str) -> Any:
    """The pytree in msgpack `data` (saved in checkpoint format `written_in`, upgraded to
    FORMAT's), shaped like `template` (arrays or ShapeDtypeStructs), validated."""
    try:
        raw = serialization.msgpack_restore(data)
    except Exception as err:  # msgpack raises several unrelated types on bad bytes
        raise CheckpointError(f"{file}: truncated or not a qlax state file ({err.__class__.__name__})") from None
    if written_in in UPGRADES:
        raw = UPGRADES[written_in](raw)
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
