"""The host side of a Gymnasium `VecEnv`: the vector envs the device's callbacks reset and
step, each member's episode token, and a failure kept to be reported in one line."""

from __future__ import annotations

import logging
import threading
import weakref

import numpy as np

from qlax.core.errors import reason, short
from qlax.envs import jax_adapter
from qlax.envs.base import EnvError
from qlax.envs.gymnasium_adapter.observations import observation_dtype
from qlax.envs.gymnasium_adapter.pool import Pool
from qlax.envs.gymnasium_adapter.source import Source, described
from qlax.envs.gymnasium_adapter.vector import Record, Vector


class _Group:
    """One vector env of members x num_envs copies, and each member's episode token."""

    def __init__(self, envs, members: int):
        self.envs = envs
        self.last_in = np.zeros(members, np.uint32)  # the tokens the last call brought
        self.last_out = np.zeros(members, np.uint32)  # and those it returned


def _tokens(seeds: np.ndarray) -> np.ndarray:
    """A member's episode token: from its first copy's seed, never 0 (0: restart)."""
    return seeds[:, 0] | np.uint32(1)


_failure: EnvError | None = None  # the last host call's failure (`take_failure`)


def take_failure() -> EnvError | None:
    """The one-line failure of a host environment that a compiled program's error stands
    for, if one failed since the last call (then forgotten)."""
    global _failure
    failure, _failure = _failure, None
    return failure


class _HostFailures(logging.Filter):
    """Keeps JAX from logging a traceback for a host environment's failure: qlax reports it
    in one line (`take_failure`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], EnvError))


logging.getLogger("jax._src.callback").addFilter(_HostFailures())


class Host:
    """The host side of one `VecEnv`: a vector env per batch size (members x num_envs), made
    on first use, reset and stepped by the device's callbacks.

    A member whose token is neither the one the host returned last (it trains on) nor the
    one it brought last (it is frozen: stopped, or already ended in an evaluation) has lost
    its episodes (a resumed checkpoint, `restart`): its copies are reset with the step's
    seeds and the step is a reset step for it.
    """

    def __init__(self, source: Source, num_envs: int):
        self.source, self.num_envs = source, num_envs
        obs_space = described(source)[0]
        self.parts = jax_adapter.observation_parts(obs_space, source.name)
        self.dtype = observation_dtype(obs_space)
        self.groups: dict[int, _Group] = {}
        self.lock = threading.Lock()

    def _group(self, members: int) -> tuple[_Group, bool]:
        """(the vector env of `members` members, whether it was just made)."""
        if members in self.groups:
            return self.groups[members], False
        n, parts = members * self.num_envs, self.parts
        if self.source.mode == "async":
            from qlax.core.devices import cpu_cores

            envs = Pool(self.source, n, min(cpu_cores(), n), parts, self.dtype)
        else:
            envs = Vector(self.source.vector(n), parts, self.dtype)
        self.groups[members] = group = _Group(envs, members)
        weakref.finalize(self, envs.close)
        return group, True

    def _failed(self, method: str, err: BaseException) -> EnvError:
        """The one line for a host environment that failed inside a compiled step, kept for
        `take_failure` (the program itself fails with JAX's error)."""
        global _failure
        _failure = EnvError(f"env = {short(self.source.name)}: {method} on the host failed: {reason(err)}")
        return _failure

    def reset(self, seeds):
        try:
            return self._reset(seeds)
        except Exception as err:  # noqa: BLE001 (the user's environment, in one line)
            raise self._failed("reset", err) from None

    def step(self, seeds_actions, tokens):
        try:
            return self._step(seeds_actions, tokens)
        except Exception as err:  # noqa: BLE001
            raise self._failed("step", err) from None

    def _reset(self, seeds):
        batch, n = seeds.shape[:-1], self.num_envs
        seeds = np.asarray(seeds).reshape(-1, n)
        with self.lock:
            group, _ = self._group(seeds.shape[0])
            obs = group.envs.reset(seeds.reshape(-1))
            group.last_in = group.last_out = _tokens(seeds)
        return obs.reshape(*batch, n, -1), group.last_out.reshape(batch)

    def _step(self, seeds_actions, tokens):
        """seeds_actions (..., num_envs, 2) uint32, tokens (...) -> (values, flags, tokens), packed."""
        batch, n = seeds_actions.shape[:-2], self.num_envs
        seeds_actions, tokens = np.asarray(seeds_actions).reshape(-1, n, 2), np.asarray(tokens).reshape(-1)
        seeds, actions = seeds_actions[..., 0], seeds_actions[..., 1].astype(np.int64)
        with self.lock:
            group, made = self._group(seeds.shape[0])
            stale = np.ones(len(tokens), bool) if made else (tokens != group.last_out) & (tokens != group.last_in)
            if stale.all():
                record = Record.reset_step(group.envs.reset(seeds.reshape(-1)))
            else:
                record = group.envs.step(actions.reshape(-1))
                if stale.any():
                    mask = np.repeat(stale, n)
                    record = record.where(mask, Record.reset_step(group.envs.reset(seeds.reshape(-1), mask)))
            out = np.where(stale, _tokens(seeds), tokens)
            group.last_in, group.last_out = tokens, out
        return (*(array.reshape(*batch, n, -1) for array in record.packed()), out.reshape(batch))
