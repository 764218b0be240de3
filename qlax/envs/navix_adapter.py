"""navix (MiniGrid in JAX) environments, `navix:ID`, as qlax JAX environments (qlax[navix]).

Each navix environment is wrapped into qlax's JAX-environment protocol and vectorized by
`jax_adapter`, which adds auto-reset and keeps final observations:

- steps go through navix's non-resetting `Environment._step` (its `step` resets an ended
  episode itself and would hide the final observation);
- `terminated` and `truncated` are navix's step types (TERMINATION: the goal, lava, ...;
  TRUNCATION: `max_steps`, navix.make's default of 100 steps);
- the observation is navix's `symbolic` grid (MiniGrid's encoding of every cell: entity
  tag, colour, and direction or door state), height x width x 3, fully observed, so a
  feed-forward Q-network sees a Markov state. Its bounds are navix's value ranges per
  channel (navix's own space declares 0..8 for all three, which the tags exceed);
- the rendering cache navix keeps in its state (sprites for RGB observations) is dropped,
  so neither the compiled loop's state nor the resets carry it.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

from qlax.envs import jax_adapter
from qlax.envs.base import EnvError, EnvSpec, VecEnv

PREFIX = "navix:"
# The largest value of each channel of navix's symbolic observation: the entity tag
# (EntityIds.PLAYER = 10), the colour (PALETTE.GREY = 5), and the direction (0..3) or a
# door's state (0..2).
SYMBOL_HIGH = (10.0, 5.0, 3.0)


def _navix():
    try:
        import navix
    except ImportError:
        raise EnvError("env 'navix:...' needs navix: pip install 'qlax[navix]'") from None
    return navix


class NavixEnv:
    """A navix `Environment` in qlax's JAX-environment protocol; its state is navix's
    `Timestep` without the rendering cache."""

    def __init__(self, env, name: str):
        self.env = env
        self.name = name
        shape = (env.height, env.width, 3)
        self.observation_space = jax_adapter.Box(shape=shape, low=0.0, high=np.broadcast_to(SYMBOL_HIGH, shape))
        self.action_space = jax_adapter.Discrete(len(env.action_set))
        self.max_episode_steps = int(env.max_steps)

    @staticmethod
    def _light(timestep):
        return timestep.replace(state=timestep.state.replace(cache=None))

    def reset(self, key):
        timestep = self.env.reset(key)
        return timestep.observation, self._light(timestep)

    def step(self, key, timestep, action):
        """navix's step without its auto-reset; its randomness comes from the key in its state."""
        timestep = self.env._step(timestep, action)
        return (timestep.observation, self._light(timestep), jnp.asarray(timestep.reward, jnp.float32),
                timestep.is_termination(), timestep.is_truncation())


@functools.lru_cache(maxsize=None)
def wrapped(env_id: str) -> NavixEnv:
    """The navix environment `env_id` in qlax's protocol (built once per process)."""
    navix = _navix()
    env = jax_adapter.from_suite("navix", "navix", env_id, navix.registry(),
                                 lambda: navix.make(env_id, observation_fn=navix.observations.symbolic),
                                 "navix.registry()")
    return NavixEnv(env, PREFIX + env_id)


def spec(env_id: str) -> EnvSpec:
    return jax_adapter.spec_of(wrapped(env_id), PREFIX + env_id)


def make(env_id: str, num_envs: int) -> VecEnv:
    env = wrapped(env_id)
    return jax_adapter.vectorize(env, jax_adapter.spec_of(env, env.name), num_envs)
