"""Per-environment episode returns and lengths, and a rolling record of the last completed episodes.

Kept inside the compiled state, so the host never has to watch individual steps.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

WINDOW = 100  # completed episodes in the rolling average, as in Gym's "solved" rule


@struct.dataclass
class EpisodeStats:
    running_return: jax.Array  # (num_envs,) float32: return of each env's current episode
    running_length: jax.Array  # (num_envs,) int32: steps of each env's current episode
    recent_returns: jax.Array  # (WINDOW,) float32: ring of the last completed returns
    recent_lengths: jax.Array  # (WINDOW,) float32: ring of their lengths, in the same slots
    episodes: jax.Array  # int32 (): episodes completed so far


def init(num_envs: int) -> EpisodeStats:
    return EpisodeStats(
        running_return=jnp.zeros((num_envs,), jnp.float32),
        running_length=jnp.zeros((num_envs,), jnp.int32),
        recent_returns=jnp.zeros((WINDOW,), jnp.float32),
        recent_lengths=jnp.zeros((WINDOW,), jnp.float32),
        episodes=jnp.int32(0),
    )


def update(stats: EpisodeStats, reward: jax.Array, done: jax.Array, reset_step: jax.Array) -> EpisodeStats:
    """Add one vector step's rewards; record the returns and lengths of the episodes that ended.

    reward, done, reset_step: (num_envs,). A reset step (an env starting its next episode
    after an end, `envs.VecEnv`) is no step of any episode, so it adds nothing to the
    length. Finished episodes go into the rings in env order; if more than WINDOW end at
    once, only the last WINDOW are kept.
    """
    returns = stats.running_return + reward
    lengths = stats.running_length + (~reset_step).astype(jnp.int32)
    rank = jnp.cumsum(done, dtype=jnp.int32) - 1  # order among this step's finished episodes
    finished = rank[-1] + 1
    keep = done & (rank >= finished - WINDOW)
    slots = jnp.where(keep, (stats.episodes + rank) % WINDOW, WINDOW)  # WINDOW: dropped
    return EpisodeStats(
        running_return=jnp.where(done, 0.0, returns),
        running_length=jnp.where(done, 0, lengths),
        recent_returns=stats.recent_returns.at[slots].set(returns, mode="drop"),
        recent_lengths=stats.recent_lengths.at[slots].set(lengths.astype(jnp.float32), mode="drop"),
        episodes=stats.episodes + finished,
    )


def _window_mean(ring: jax.Array, stats: EpisodeStats) -> jax.Array:
    """Mean of the last min(episodes, WINDOW) entries of `ring` (its other slots hold 0); NaN before the first."""
    count = jnp.minimum(stats.episodes, WINDOW)
    return jnp.where(count > 0, jnp.sum(ring) / jnp.maximum(count, 1), jnp.nan)


def average_return(stats: EpisodeStats) -> jax.Array:
    """Mean of the last min(episodes, WINDOW) completed returns; NaN before the first."""
    return _window_mean(stats.recent_returns, stats)


def average_length(stats: EpisodeStats) -> jax.Array:
    """Mean length of the last min(episodes, WINDOW) completed episodes; NaN before the first."""
    return _window_mean(stats.recent_lengths, stats)


def window_full(stats: EpisodeStats) -> jax.Array:
    return stats.episodes >= WINDOW


def unknown_lengths(episodes: np.ndarray) -> np.ndarray:
    """The length ring, (*episodes.shape, WINDOW) float32, of records saved before lengths
    were kept (`episodes`: each record's count): NaN in the slots that hold an episode,
    0 in those never written. The average length is NaN until the episodes that finish
    next have replaced every unknown one (at most WINDOW of them)."""
    held = np.arange(WINDOW) < np.asarray(episodes)[..., None]
    return np.where(held, np.float32(np.nan), np.float32(0.0)).astype(np.float32)
