"""The record that crosses module boundaries."""

import jax
from flax import struct


@struct.dataclass
class Transition:
    """One environment transition, or a batch of them along leading axes.

    `next_obs` is the observation the action led to: on a time-limit truncation it is
    the pre-reset final observation, so the learner can bootstrap through it.
    `terminated` is true only for a natural end of the episode, never for a time limit.
    """

    obs: jax.Array  # (..., obs_dim) float32
    action: jax.Array  # (...,) int32
    reward: jax.Array  # (...,) float32
    next_obs: jax.Array  # (..., obs_dim) float32
    terminated: jax.Array  # (...,) bool
