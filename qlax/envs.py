"""Vectorized gymnax environments that emit `Transition`s.

gymnax >= 1.0 auto-resets inside `step`, returns `terminated` and `truncated` apart, and
keeps the pre-reset observation in `info["final_observation"]`; a `Transition` stores
that final observation as `next_obs`, so a time limit is bootstrapped through.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qlax.config import short
from qlax.types import Transition

# Returns that count as solved (Gymnasium's reward thresholds).
SOLVE_THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0}


class EnvError(ValueError):
    """An unknown or unsupported environment id."""


@dataclass(frozen=True)
class EnvSpec:
    id: str
    obs_shape: tuple  # as gymnax emits it; () for a discrete state index
    obs_dim: int  # the flattened (or one-hot) size the Q-functions see
    num_actions: int
    max_episode_steps: int
    obs_low: np.ndarray  # (obs_dim,) the observation space's bounds, inf where it has none
    obs_high: np.ndarray
    solve_threshold: float | None


class EnvStep(NamedTuple):
    """One vector step: what the agent sees next and the transitions that led there."""

    obs: jax.Array  # (num_envs, obs_dim): after auto-reset, the first observation of a new episode
    env_state: object
    transition: Transition
    done: jax.Array  # (num_envs,) bool: the episode ended (terminated or truncated)
    next_obs_known: jax.Array  # (num_envs,) bool: transition.next_obs is the true next observation


class VecEnv(NamedTuple):
    """`num_envs` copies of one environment, vmapped, with auto-reset.

    reset(key) -> (obs (num_envs, obs_dim), env_state)
    step(key, env_state, obs, action (num_envs,)) -> EnvStep
    """

    spec: EnvSpec
    num_envs: int
    reset: Callable
    step: Callable


def _gymnax():
    """gymnax, imported on first use: importing it starts JAX's backends (some of its
    environments build arrays at import), which must wait for `jax.distributed.initialize`
    in a multi-process run and for qlax's choice of CPU devices."""
    import gymnax

    return gymnax


def _make_gymnax(env_id: str):
    gymnax = _gymnax()
    if env_id not in gymnax.registered_envs:
        close = difflib.get_close_matches(env_id[:100], gymnax.registered_envs, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else " (`qlax envs` lists the ones qlax supports)"
        raise EnvError(f"env = {short(env_id)}: unknown environment id{hint}")
    try:
        env, params = gymnax.make(env_id)
    except OSError as err:  # e.g. MNISTBandit downloads its data set when built
        raise EnvError(f"env = '{env_id}': gymnax could not build it here ({err}); "
                       f"it needs data it downloads on first use") from None
    if not isinstance(env.action_space(params), gymnax.environments.spaces.Discrete):
        raise EnvError(f"env = '{env_id}': its action space is continuous; "
                       f"Q-learning needs a discrete action space")
    return env, params


def env_spec(env_id: str) -> EnvSpec:
    """Shapes, bounds and threshold of `env_id`, without building a vectorized env."""
    env, params = _make_gymnax(env_id)
    space = env.observation_space(params)
    if isinstance(space, _gymnax().environments.spaces.Discrete):  # a state index, fed to Q-functions one-hot
        obs_dim, low, high = int(space.n), np.zeros(space.n, np.float32), np.ones(space.n, np.float32)
    else:
        obs_dim = int(np.prod(space.shape))
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape).reshape(-1)
    return EnvSpec(
        id=env_id,
        obs_shape=tuple(int(d) for d in space.shape),
        obs_dim=obs_dim,
        num_actions=int(env.action_space(params).n),
        max_episode_steps=int(params.max_steps_in_episode),
        obs_low=low,
        obs_high=high,
        solve_threshold=SOLVE_THRESHOLDS.get(env_id),
    )


def supported() -> tuple[list[EnvSpec], dict[str, str]]:
    """(specs of every gymnax id qlax can train on, {unsupported id: why})."""
    specs, refused = [], {}
    for env_id in _gymnax().registered_envs:
        try:
            specs.append(env_spec(env_id))
        except EnvError as err:
            refused[env_id] = str(err).split(": ", 1)[1]
    return specs, refused


def make_env(env_id: str, num_envs: int) -> VecEnv:
    """`num_envs` vmapped copies of gymnax's `env_id`, observations flattened to vectors
    (images and grids flattened; a discrete state index one-hot encoded)."""
    env, params = _make_gymnax(env_id)
    spec = env_spec(env_id)

    if isinstance(env.observation_space(params), _gymnax().environments.spaces.Discrete):
        def flat(obs):
            return jax.nn.one_hot(obs, spec.obs_dim, dtype=jnp.float32)
    else:
        def flat(obs):
            return jnp.reshape(obs, (num_envs, -1)).astype(jnp.float32)

    def reset(key):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)
        return flat(obs), state

    def step(key, state, obs, action):
        keys = jax.random.split(key, num_envs)
        next_obs, state, reward, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        if "final_observation" in info:
            final, known = info["final_observation"], jnp.ones(num_envs, bool)
        else:  # an environment that does not say where a cut episode ended: after a time limit
            final, known = next_obs, ~(truncated & ~terminated)  # next_obs is a reset observation
        transition = Transition(
            obs=obs,
            action=action.astype(jnp.int32),
            reward=reward.astype(jnp.float32),
            next_obs=flat(final),
            terminated=terminated.astype(bool),
        )
        return EnvStep(flat(next_obs), state, transition, done, known)

    return VecEnv(spec=spec, num_envs=num_envs, reset=reset, step=step)
