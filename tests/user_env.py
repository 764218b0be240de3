"""A user's own JAX environment, written to qlax's protocol and registered nowhere.

Corridor: positions 0..length-1, start at 0; action 1 steps right, action 0 left; reaching
the last position pays 1 and terminates; episodes are cut after `max_episode_steps`.
The observation is the position (a Discrete space, fed one-hot). A greedy policy that
always steps right returns 1.
"""

from typing import NamedTuple

import jax.numpy as jnp

from qlax.envs import Discrete, TimeStep


class CorridorState(NamedTuple):
    position: jnp.ndarray


class Corridor:
    name = "Corridor"
    solve_threshold = 1.0

    def __init__(self, length: int = 5, max_episode_steps: int = 12):
        self.length = length
        self.max_episode_steps = max_episode_steps
        self.observation_space = Discrete(length)
        self.action_space = Discrete(2)

    def reset(self, key):
        return jnp.int32(0), CorridorState(jnp.int32(0))

    def step(self, key, state, action):
        position = jnp.clip(state.position + 2 * action - 1, 0, self.length - 1).astype(jnp.int32)
        at_end = position == self.length - 1
        return TimeStep(position, CorridorState(position), at_end.astype(jnp.float32), at_end, jnp.bool_(False))


def corridor():
    """The factory `--set env=user_env:corridor` names."""
    return Corridor()
