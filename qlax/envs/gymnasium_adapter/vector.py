"""A Gymnasium vector env read as qlax's records, whatever its autoreset mode, and the
records packed into the two arrays a host callback returns to the device."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from qlax.envs.gymnasium_adapter.observations import flat, stack
from qlax.envs.gymnasium_adapter.source import gymnasium_module


SCORE_KEY = "qlax_score"  # info key: the reward as the game scores it, where learning sees another
GAME_OVER_KEY = "qlax_game_over"  # info key: the game ended, where learning sees other ends


class Record(NamedTuple):
    """One vector step of n copies as qlax reads it (numpy, leading axis n)."""

    obs: np.ndarray  # (n, obs_dim) of the observations' dtype (`observation_dtype`): acted on next
    next_obs: np.ndarray  # (n, obs_dim) likewise: the transition's, the final observation at an end
    reward: np.ndarray  # float32
    terminated: np.ndarray  # bool
    done: np.ndarray  # bool
    known: np.ndarray  # bool
    first: np.ndarray  # bool
    score: np.ndarray  # float32
    game_over: np.ndarray  # bool

    @staticmethod
    def reset_step(obs: np.ndarray) -> Record:
        """A step that only reset the copies: no transition, obs a new episode's first."""
        n = obs.shape[0]
        no, zero = np.zeros(n, bool), np.zeros(n, np.float32)
        return Record(obs, obs, zero, no, no, no, np.ones(n, bool), zero, no)

    def where(self, mask: np.ndarray, other: Record) -> Record:
        return Record(*(np.where(mask.reshape(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(self, other)))

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """Two arrays for the device, as few as a callback can return (each costs time): the
        bytes of obs, next_obs (in their own dtype) and of reward and score (float32), (n,
        `packed_width`) uint8; and (n, 5) bool of the flags."""
        n = len(self.reward)
        as_bytes = lambda a: np.ascontiguousarray(a).view(np.uint8).reshape(n, -1)  # noqa: E731
        numbers = np.stack([self.reward, self.score], axis=1).astype(np.float32)
        return (np.concatenate([as_bytes(self.obs), as_bytes(self.next_obs), as_bytes(numbers)], axis=1),
                np.stack([self.terminated, self.done, self.known, self.first, self.game_over], axis=1))

    @staticmethod
    def unpacked(values: jax.Array, flags: jax.Array, obs_dim: int, dtype: np.dtype) -> Record:
        """The inverse of `packed`, on the device (any leading axes)."""
        width = obs_dim * dtype.itemsize
        numbers = _from_bytes(values[..., 2 * width:], np.float32)
        return Record(_from_bytes(values[..., :width], dtype), _from_bytes(values[..., width:2 * width], dtype),
                       numbers[..., 0], *(flags[..., i] for i in range(4)), numbers[..., 1], flags[..., 4])


def packed_width(obs_dim: int, dtype: np.dtype) -> int:
    """Bytes per copy of `Record.packed`'s first array."""
    return 2 * obs_dim * dtype.itemsize + 2 * 4


def _from_bytes(data: jax.Array, dtype: np.dtype) -> jax.Array:
    """(..., k * itemsize) uint8 -> (..., k) of `dtype`, the bytes reinterpreted (no conversion)."""
    if np.dtype(dtype) == np.uint8:
        return data
    return jax.lax.bitcast_convert_type(data.reshape(*data.shape[:-1], -1, np.dtype(dtype).itemsize), dtype)


def _from_info(info: dict, key: str, default: np.ndarray) -> np.ndarray:
    """info[key] where its mask says a copy has it, `default` elsewhere."""
    if key not in info:
        return default
    mask = np.asarray(info.get(f"_{key}", np.ones(len(default), bool)), bool)
    return np.where(mask, np.asarray(info[key]).astype(default.dtype), default)


class Vector:
    """A Gymnasium vector env, whatever its autoreset mode, read as `Record`s."""

    def __init__(self, venv, parts, dtype: np.dtype):
        gymnasium = gymnasium_module()
        modes = gymnasium.vector.AutoresetMode
        # The attribute first: SyncVectorEnv writes its mode into the env class's shared metadata.
        mode = getattr(venv, "autoreset_mode", None) or venv.metadata.get("autoreset_mode", modes.NEXT_STEP)
        self.mode = modes(mode)
        self.venv, self.parts, self.dtype, self.n = venv, parts, dtype, venv.num_envs
        self.pending = np.zeros(self.n, bool)  # NEXT_STEP: these copies reset on their next step
        self.obs = np.zeros((self.n, sum(p.size for p in parts)), dtype)

    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(n, obs_dim) observations after resetting the copies in `mask` (all: None) with `seeds`."""
        if mask is not None and not mask.any():
            return self.obs
        options = None if mask is None else {"reset_mask": mask}
        obs, _ = self.venv.reset(seed=[int(s) for s in seeds], options=options)
        self.pending[slice(None) if mask is None else mask] = False
        self.obs = flat(self.parts, obs, self.n, self.dtype)
        return self.obs

    def step(self, actions: np.ndarray) -> Record:
        modes = gymnasium_module().vector.AutoresetMode
        obs, reward, terminated, truncated, info = self.venv.step(actions)
        obs = flat(self.parts, obs, self.n, self.dtype)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        done = terminated | np.asarray(truncated, bool)
        score, game_over = _from_info(info, SCORE_KEY, reward), _from_info(info, GAME_OVER_KEY, done)
        next_obs, first, resetting = obs, done, None
        if self.mode == modes.SAME_STEP:
            if done.any():
                ended = np.flatnonzero(done & np.asarray(info.get("_final_obs", done), bool))
                next_obs = obs.copy()
                next_obs[ended] = flat(self.parts, stack(list(info["final_obs"][ended])), len(ended), self.dtype)
                final_info = info.get("final_info", {})  # the ending step's info; `info` is the reset's there
                score = np.where(done, _from_info(final_info, SCORE_KEY, reward), score)
                game_over = np.where(done, _from_info(final_info, GAME_OVER_KEY, done), game_over)
        elif self.mode == modes.NEXT_STEP:
            resetting, self.pending = self.pending, done
            first = np.zeros(self.n, bool)  # an end's observation is its final one; the reset comes next step
        elif done.any():  # DISABLED: qlax resets the ended copies
            reset_obs, _ = self.venv.reset(options={"reset_mask": done})
            obs = flat(self.parts, reset_obs, self.n, self.dtype)
        self.obs = obs
        record = Record(obs, next_obs, reward, terminated, done, np.ones(self.n, bool), first, score, game_over)
        if resetting is not None and resetting.any():
            record = record.where(resetting, Record.reset_step(obs))
        return record

    def close(self) -> None:
        self.venv.close()
