"""Gymnasium observations (arrays, dicts and tuples of them) as qlax's flat rows."""

from __future__ import annotations

from typing import Any

import numpy as np


def observation_dtype(obs_space) -> np.dtype:
    """uint8 for one Box of bytes (pixel frames: bytes from the environment to the replay
    buffer, a quarter of float32's traffic), float32 for every other observation."""
    frames = getattr(obs_space, "spaces", None) is None and getattr(obs_space, "dtype", None) == np.uint8
    return np.dtype(np.uint8 if frames else np.float32)


def _leaves(obs) -> list[np.ndarray]:
    """An observation's arrays in the order `observation_parts` lists its spaces."""
    if isinstance(obs, dict):
        return [leaf for key in sorted(obs) for leaf in _leaves(obs[key])]
    if isinstance(obs, (tuple, list)):
        return [leaf for child in obs for leaf in _leaves(child)]
    return [np.asarray(obs)]


def flat(parts, obs, n: int, dtype: np.dtype = np.dtype(np.float32)) -> np.ndarray:
    """A batch of n observations -> (n, obs_dim) of `dtype` (`observation_dtype`), discrete indices one-hot."""
    columns = []
    for leaf, part in zip(_leaves(obs), parts):
        if leaf.size != n * (1 if part.one_hot else part.size):  # observations that change shape as it runs
            raise ValueError(f"it returned observations of shape {tuple(leaf.shape[1:])}, where its "
                             f"observation_space says {part.shape}")
        if part.one_hot:
            columns.append(np.eye(part.size, dtype=dtype)[leaf.reshape(n).astype(np.int64)])
        else:
            columns.append(leaf.reshape(n, part.size).astype(dtype, copy=False))
    return columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)


def stack(observations) -> Any:
    """Single observations (arrays, or dicts/tuples of them) stacked into one batch."""
    first = observations[0]
    if isinstance(first, dict):
        return {key: stack([o[key] for o in observations]) for key in first}
    if isinstance(first, (tuple, list)):
        return tuple(stack([o[i] for o in observations]) for i in range(len(first)))
    return np.stack([np.asarray(o) for o in observations])
