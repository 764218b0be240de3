"""The record that crosses module boundaries."""

import jax
from flax import struct


@struct.dataclass
class Transition:
    """One environment transition, or a batch of them along leading axes.

    `next_obs` is the observation the action led to: on a time-limit truncation it is
    the pre-reset final observation, so the learner can bootstrap through it.
    `terminated` is true only for a natural end of the episode, never for a time limit.
    `discount` is the bootstrap factor when it is not the plain gamma: an n-step
    transition that took k steps carries gamma^k. None (no leaf) for one-step transitions.
    """

    obs: jax.Array  # (..., obs_dim) float32, or uint8 for pixel frames
    action: jax.Array  # (...,) int32
    reward: jax.Array  # (...,) float32; for n steps, the discounted sum
    next_obs: jax.Array  # (..., obs_dim) like obs
    terminated: jax.Array  # (...,) bool
    discount: jax.Array | None = None  # (...,) float32
