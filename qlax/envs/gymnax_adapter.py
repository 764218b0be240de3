"""gymnax environments (a registered id, or a gymnax `Environment` object) as `VecEnv`s.

gymnax >= 1.0 auto-resets inside `step`, returns `terminated` and `truncated` apart, and
keeps the pre-reset observation in `info["final_observation"]`; a `Transition` stores
that final observation as `next_obs`, so a time limit is bootstrapped through.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np

from qlax.core.errors import short
from qlax.core.types import Transition
from qlax.envs.base import EnvError, EnvSpec, VecEnv, env_step

# Returns that count as solved (Gymnasium's reward thresholds).
SOLVE_THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0}


# Modules gymnax imports at import time only for its own renderers, which qlax never calls
# (qlax.tools.render draws with PIL): loaded lazily, they cost nothing until used; eagerly, they
# were 1.3 s of every start on a 2-core machine.
RENDERING_ONLY = ("seaborn", "matplotlib.pyplot")


def _gymnax():
    """gymnax, imported on first use: importing it starts JAX's backends (some of its
    environments build arrays at import), which must wait for `jax.distributed.initialize`
    in a multi-process run and for qlax's choice of CPU devices."""
    if "gymnax" not in sys.modules:
        defer_rendering_modules()
    import gymnax

    return gymnax


def defer_rendering_modules() -> None:
    """Let the modules gymnax imports only for its renderers (`RENDERING_ONLY`) load on first
    use, for whatever imports gymnax next in this process."""
    for name in RENDERING_ONLY:
        _import_lazily(name)


class _Deferred(types.ModuleType):
    """Stands in for a module until one of its attributes is used, then imports it."""

    def __getattr__(self, attribute):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def _import_lazily(name: str) -> None:
    """Put a stand-in for `name` in sys.modules, unless it is imported already or missing. It
    carries the module's `__file__`, so tools that only look where each module lives (such as
    hypothesis's pytest plugin, which reads every module's) leave it unloaded."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None:
        stand_in = _Deferred(name)
        stand_in.__file__ = spec.origin
        sys.modules[name] = stand_in


def is_gymnax_env(env) -> bool:
    """Whether `env` is a gymnax `Environment` object (with its own auto-reset)."""
    return isinstance(env, _gymnax().environments.environment.Environment)


def registered(env_id: str) -> bool:
    return env_id in _gymnax().registered_envs


def make(env_id: str):
    """(env, params) of gymnax's registered `env_id`, refused clearly where qlax cannot train on it."""
    gymnax = _gymnax()
    if env_id not in gymnax.registered_envs:
        close = difflib.get_close_matches(env_id[:100], gymnax.registered_envs, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else \
            " (`qlax envs` lists gymnax's; gymnasium:ID, atari:GAME, envpool:ID, navix:ID, jumanji:ID and " \
            "module:factory name others)"
        raise EnvError(f"env = {short(env_id)}: unknown environment id{hint}")
    try:
        return gymnax.make(env_id)
    except OSError as err:  # e.g. MNISTBandit downloads its data set when built
        raise EnvError(f"env = '{env_id}': gymnax could not build it here ({err}); "
                       f"it needs data it downloads on first use") from None


def spec_of(env, params, name: str) -> EnvSpec:
    """Shapes, bounds and threshold of a gymnax env, without building a vectorized one."""
    spaces = _gymnax().environments.spaces
    if not isinstance(env.action_space(params), spaces.Discrete):
        raise EnvError(f"env = '{name}': its action space is continuous; "
                       f"Q-learning needs a discrete action space")
    space = env.observation_space(params)
    if isinstance(space, spaces.Discrete):  # a state index, fed to Q-functions one-hot
        obs_dim, low, high = int(space.n), np.zeros(space.n, np.float32), np.ones(space.n, np.float32)
    else:
        obs_dim = int(np.prod(space.shape))
        low = np.broadcast_to(np.asarray(space.low, np.float32), space.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32), space.shape).reshape(-1)
    return EnvSpec(
        id=name,
        obs_shape=tuple(int(d) for d in space.shape),
        obs_dim=obs_dim,
        num_actions=int(env.action_space(params).n),
        max_episode_steps=int(params.max_steps_in_episode),
        obs_low=low,
        obs_high=high,
        solve_threshold=SOLVE_THRESHOLDS.get(name),
        one_hot=np.full(obs_dim, True) if isinstance(space, spaces.Discrete) else None,
    )


def supported() -> tuple[list[EnvSpec], dict[str, str]]:
    """(specs of every gymnax id qlax can train on, {unsupported id: why})."""
    specs, refused = [], {}
    for env_id in _gymnax().registered_envs:
        try:
            specs.append(spec_of(*make(env_id), env_id))
        except EnvError as err:
            refused[env_id] = str(err).split(": ", 1)[1]
    return specs, refused


def vectorize(env, params, spec: EnvSpec, num_envs: int) -> VecEnv:
    """`num_envs` vmapped copies of a gymnax env, observations flattened to vectors
    (images and grids flattened; a discrete state index one-hot encoded)."""
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
        return env_step(flat(next_obs), state, transition, done, known)

    return VecEnv(spec=spec, num_envs=num_envs, reset=reset, step=step)
