"""Observations scaled to about [-1, 1] before features or networks see them.

One mechanism for every environment: a dimension with finite bounds (from a setting or
from the observation space) maps [low, high] onto [-1, 1]; a dimension without them is
standardized by a running mean and standard deviation estimated inside the compiled
loop, mean +- SPREAD standard deviations onto [-1, 1] (`obs_scaling: statistics`
standardizes the bounded ones too). A standardized dimension keeps a scale of at least
1 / LIMIT of its reach: its mean's magnitude (at least 1), or the distance from its mean
to its farther bound where that is shorter. So a grid cell that random play never set
(standard deviation 0) reaches the network at LIMIT once set, where it reached 500,000,
and a dimension whose bounds are far looser than its values is still scaled by its
spread (a floor that followed the bounds alone compressed such dimensions: at LIMIT 10 it
did that to LunarLander's velocities, and it learned far worse). The shift and scale in
use live in the Q-function's parameters (`params["obs_scale"]`, never trained), so
whatever holds the parameters (evaluation, checkpoints, `load_policy`) scales alike.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

SPREAD = 2.0  # standard deviations on each side that map onto [-1, 1]
LIMIT = 100.0  # the reach over the smallest scale: a [0, 1] grid cell's values stay within +-LIMIT


@struct.dataclass
class ObsStats:
    """Running moments of the observations seen (Chan et al.'s parallel update)."""

    count: jax.Array  # float32 ()
    mean: jax.Array  # (obs_dim,)
    m2: jax.Array  # (obs_dim,): sum of squared deviations from the mean


def bounded(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Which dimensions have usable finite bounds, (obs_dim,) bool."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return (np.abs(low) < 1e30) & (np.abs(high) < 1e30) & (high > low)


def fixed_scale(low: np.ndarray, high: np.ndarray) -> dict:
    """{"shift", "scale"}: [low, high] onto [-1, 1] where bounded; the identity elsewhere
    until statistics replace it."""
    known = bounded(low, high)
    low, high = np.where(known, low, -1.0), np.where(known, high, 1.0)
    return {"shift": jnp.asarray((high + low) / 2.0, jnp.float32),
            "scale": jnp.asarray((high - low) / 2.0, jnp.float32)}


def pixel_scale(obs_dim: int) -> dict:
    """{"shift", "scale"} that divide bytes by 255: pixels onto [0, 1], as the Nature DQN reads them."""
    return {"shift": jnp.zeros(obs_dim, jnp.float32), "scale": jnp.full(obs_dim, 255.0, jnp.float32)}


def apply(obs_scale: dict, obs: jax.Array) -> jax.Array:
    """obs (..., obs_dim), float32 or bytes, scaled to float32; the shift and scale are held
    fixed (no gradient)."""
    shift, scale = jax.lax.stop_gradient(obs_scale["shift"]), jax.lax.stop_gradient(obs_scale["scale"])
    return (obs - shift) / scale


def init_stats(obs_dim: int) -> ObsStats:
    return ObsStats(count=jnp.float32(0.0), mean=jnp.zeros(obs_dim, jnp.float32), m2=jnp.zeros(obs_dim, jnp.float32))


def update_stats(stats: ObsStats, batch: jax.Array) -> ObsStats:
    """The moments with a batch (n, obs_dim) of observations merged in."""
    n = jnp.float32(batch.shape[0])
    batch_mean = jnp.mean(batch, axis=0)
    batch_m2 = jnp.sum((batch - batch_mean) ** 2, axis=0)
    count = stats.count + n
    delta = batch_mean - stats.mean
    return ObsStats(count=count, mean=stats.mean + delta * n / count,
                    m2=stats.m2 + batch_m2 + delta**2 * stats.count * n / count)


def with_stats(obs_scale: dict, stats: ObsStats, standardized: np.ndarray, low: np.ndarray,
               high: np.ndarray) -> dict:
    """`obs_scale` with its `standardized` dimensions scaled by `stats`: mean +- SPREAD
    standard deviations onto [-1, 1], the scale at least reach / LIMIT (see the module)."""
    std = jnp.sqrt(stats.m2 / jnp.maximum(stats.count, 1.0))
    magnitude = jnp.maximum(jnp.abs(stats.mean), 1.0)
    to_bound = jnp.maximum(high - stats.mean, stats.mean - low)  # to the farther bound
    reach = jnp.where(bounded(low, high), jnp.minimum(to_bound, magnitude), magnitude)
    return {"shift": jnp.where(standardized, stats.mean, obs_scale["shift"]),
            "scale": jnp.where(standardized, jnp.maximum(SPREAD * std, reach / LIMIT), obs_scale["scale"])}


class Tracker(NamedTuple):
    """The running statistics of the `standardized` dimensions, for an algorithm to keep.

    With no such dimension (`tracks` false) there is nothing to keep: the stats are ().
    """

    standardized: np.ndarray  # (obs_dim,) bool
    low: np.ndarray  # (obs_dim,) the bounds the Q-function was given (`bounded` says which are finite)
    high: np.ndarray

    @property
    def tracks(self) -> bool:
        return bool(self.standardized.any())

    def init(self, obs: jax.Array) -> ObsStats | tuple:
        return update_stats(init_stats(self.standardized.shape[0]), obs) if self.tracks else ()

    def refresh(self, stats, obs: jax.Array, when: jax.Array):
        """`stats` with the batch `obs` merged in where `when`."""
        if not self.tracks:
            return stats
        return jax.tree.map(lambda new, old: jnp.where(when, new, old), update_stats(stats, obs), stats)

    def rescale(self, params: dict, stats) -> dict:
        """Q parameters whose standardized dimensions are scaled by `stats`."""
        if not self.tracks:
            return params
        return {**params, "obs_scale": with_stats(params["obs_scale"], stats, self.standardized, self.low, self.high)}


def tracker(low: np.ndarray, high: np.ndarray, scaling: str, fixed: np.ndarray | None = None) -> Tracker:
    """The dimensions scaled by running statistics: all of them (`statistics`), none (`none`),
    or those without finite bounds (`bounds`); never the `fixed` ones (bool, like `low`)."""
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    if scaling == "none":
        return Tracker(np.zeros(low.shape, bool), low, high)
    tracked = np.ones(low.shape, bool) if scaling == "statistics" else ~bounded(low, high)
    return Tracker(tracked & ~np.asarray(fixed, bool) if fixed is not None else tracked, low, high)
