"""Per-environment episode returns and a rolling record of the last completed episodes.

Kept inside the compiled state, so the host never has to watch individual steps.
"""

import jax
import jax.numpy as jnp
from flax import struct

WINDOW = 100  # completed episodes in the rolling average, as in Gym's "solved" rule


@struct.dataclass
class EpisodeStats:
    running_return: jax.Array  # (num_envs,) float32: return of each env's current episode
    running_length: jax.Array  # (num_envs,) int32
    recent_returns: jax.Array  # (WINDOW,) float32: ring of the last completed returns
    episodes: jax.Array  # int32 (): episodes completed so far


def init(num_envs: int) -> EpisodeStats:
    return EpisodeStats(
        running_return=jnp.zeros((num_envs,), jnp.float32),
        running_length=jnp.zeros((num_envs,), jnp.int32),
        recent_returns=jnp.zeros((WINDOW,), jnp.float32),
        episodes=jnp.int32(0),
    )


def update(stats: EpisodeStats, reward: jax.Array, done: jax.Array) -> EpisodeStats:
    """Add one vector step's rewards; record the returns of the episodes that ended.

    reward, done: (num_envs,). Finished returns go into the ring in env order; if more
    than WINDOW end at once, only the last WINDOW are kept.
    """
    returns = stats.running_return + reward
    rank = jnp.cumsum(done, dtype=jnp.int32) - 1  # order among this step's finished episodes
    finished = rank[-1] + 1
    keep = done & (rank >= finished - WINDOW)
    slots = jnp.where(keep, (stats.episodes + rank) % WINDOW, WINDOW)  # WINDOW: dropped
    return EpisodeStats(
        running_return=jnp.where(done, 0.0, returns),
        running_length=jnp.where(done, 0, stats.running_length + 1),
        recent_returns=stats.recent_returns.at[slots].set(returns, mode="drop"),
        episodes=stats.episodes + finished,
    )


def average_return(stats: EpisodeStats) -> jax.Array:
    """Mean of the last min(episodes, WINDOW) completed returns; NaN before the first."""
    count = jnp.minimum(stats.episodes, WINDOW)
    return jnp.where(count > 0, jnp.sum(stats.recent_returns) / jnp.maximum(count, 1), jnp.nan)


def window_full(stats: EpisodeStats) -> jax.Array:
    return stats.episodes >= WINDOW
