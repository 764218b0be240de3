"""The dynamic settings of a member (`HParams`): numbers the compiled program reads from the
training state, so changing them (a sweep, PBT) recompiles nothing."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from flax import struct


@struct.dataclass
class HParams:
    """The dynamic settings of one member, as traced scalars (a leading axis for a population).

    Read inside the compiled program from the training state, never baked into it.
    `max_grad_norm` is inf when gradients are not clipped.
    """

    lr: jax.Array
    gamma: jax.Array
    eps_start: jax.Array
    eps_end: jax.Array
    eps_decay: jax.Array
    eps_decay_steps: jax.Array
    ez_mu: jax.Array
    target_period: jax.Array  # int32
    tau: jax.Array
    huber_delta: jax.Array
    max_grad_norm: jax.Array
    sigma: jax.Array
    init_scale: jax.Array
    per_alpha: jax.Array
    per_beta: jax.Array
    learning_starts: jax.Array  # int32
    td_lambda: jax.Array

    @staticmethod
    def of(config: Any) -> HParams:
        """The dynamic settings of `config` (a `TrainConfig`) as numpy scalars."""
        values = {}
        for name in DYNAMIC_SETTINGS:
            value = getattr(config, name)
            if name == "max_grad_norm" and value is None:
                value = math.inf
            values[name] = np.int32(value) if name in _INTEGER_HPARAMS else np.float32(value)
        return HParams(**values)

    @staticmethod
    def stack(members: list[HParams]) -> HParams:
        """One HParams whose leaves have a leading member axis."""
        return jax.tree.map(lambda *leaves: np.stack(leaves), *members)


DYNAMIC_SETTINGS = tuple(f.name for f in dataclasses.fields(HParams))
_INTEGER_HPARAMS = ("target_period", "learning_starts")
