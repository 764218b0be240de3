"""EnvPool's environments (`envpool:ID`), stepped inside the compiled loop.

EnvPool (C++ environments on a thread pool) has an XLA interface: its step is a custom
call that a `jax.jit`-compiled program runs like any other operation, so a population
trains on EnvPool's CartPole or Atari in the same compiled `lax.scan` as on gymnax.

Three things are EnvPool's own and handled here:

* Next-step auto-reset: the step that ends an episode returns its final observation;
  the step after it ignores the action and returns the new episode's first observation.
  That reset step is not a transition: `next_obs_known` false (never learned from),
  `first` true, score 0, and it ends nothing. A fresh pool's first step is such a step too.
* One pool per population: the custom call has no batching rule, so the step is a
  `jax.custom_batching.custom_vmap` function whose rule folds the member axis into the
  env axis: `members` members of `num_envs` envs step one pool of `members * num_envs`
  envs in one call (member m owns envs m * num_envs ...). A pool is built for each size
  the first time a program of that size is traced, and lives as long as the process.
* Seeds: EnvPool seeds its envs when a pool is built (env i of a pool: SEED + i), never
  later. The pool is built while JAX traces, before any member key exists, so the
  environments' randomness (CartPole's start states, Atari's no-op starts) does not
  come from the member keys; everything else (network, exploration, replay) does. A
  pool's envs step deterministically, so a run in a fresh process repeats exactly; a
  second run of the same program in one process continues the pool's random streams.

Atari ids get DQN's preprocessing (Mnih et al. 2015): 84x84 gray frames, 4 stacked,
4 frames skipped (max-pooled over the last two), up to 30 no-ops at the start, FIRE to
start, a lost life ends the learning episode, rewards clipped to their sign, no sticky
actions, 27,000 steps (108,000 frames) at most. Returns report the game's own score over
whole games (`EnvStep.score`, `game_over`). Frames stay uint8, vectors of 28,224 bytes,
stored as bytes in the replay buffer.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from qlax.core.errors import short
from qlax.core.types import Transition
from qlax.envs.base import EnvError, EnvSpec, EnvStep, VecEnv

SEED = 0  # env i of a pool is seeded SEED + i
# DQN's Atari preprocessing, in EnvPool's words (its defaults, but for the two DQN used).
ATARI = dict(episodic_life=True, reward_clip=True, noop_max=30, frame_skip=4, stack_num=4,
             img_height=84, img_width=84, gray_scale=True, use_fire_reset=True,
             repeat_action_probability=0.0)


def _envpool():
    try:
        import envpool
    except ImportError:
        raise EnvError("env 'envpool:...' needs envpool: pip install 'qlax[envpool]'") from None
    return envpool


@contextlib.contextmanager
def _quiet():
    """EnvPool's float64 bounds make Gymnasium warn as it builds the spaces: nothing to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32", category=UserWarning)
        yield


@functools.lru_cache(maxsize=None)
def _options(env_id: str) -> tuple:
    """EnvPool's settings for `env_id`, as (key, value) pairs: DQN's for Atari, its own otherwise."""
    envpool = _envpool()
    if env_id not in envpool.list_all_envs():
        close = difflib.get_close_matches(env_id[:100], envpool.list_all_envs(), n=1)
        hint = f" (did you mean 'envpool:{close[0]}'?)" if close else " (envpool.list_all_envs() lists them)"
        raise EnvError(f"env = {short('envpool:' + env_id)}: EnvPool has no environment {short(env_id, 60)}{hint}")
    with _quiet():
        is_atari = hasattr(envpool.make_spec(env_id).config, "episodic_life")
    return tuple(ATARI.items()) if is_atari else ()


@functools.lru_cache(maxsize=None)
def spec(env_id: str) -> EnvSpec:
    """Shapes, bounds and threshold of EnvPool's `env_id`, read from its spec (no envs built)."""
    with _quiet():
        raw = _envpool().make_spec(env_id, **dict(_options(env_id)))
        obs_space, action_space = raw.observation_space, raw.action_space
    name = f"envpool:{env_id}"
    if getattr(action_space, "n", None) is None or getattr(action_space, "shape", ()) != ():
        raise EnvError(f"env = '{name}': its action space is {short(action_space)}; Q-learning needs a "
                       f"discrete action space")
    if not hasattr(obs_space, "low") or getattr(obs_space, "n", None) is not None:
        raise EnvError(f"env = '{name}': its observations are {short(obs_space)}; qlax takes EnvPool's "
                       f"environments with one Box of observations")
    shape = tuple(int(d) for d in obs_space.shape)
    size = math.prod(shape)
    limit = getattr(raw.config, "max_episode_steps", None)
    return EnvSpec(
        id=name,
        obs_shape=shape,
        obs_dim=size,
        num_actions=int(action_space.n),
        max_episode_steps=int(limit) if limit else None,
        obs_low=np.broadcast_to(np.asarray(obs_space.low, np.float32), shape).reshape(-1),
        obs_high=np.broadcast_to(np.asarray(obs_space.high, np.float32), shape).reshape(-1),
        solve_threshold=None if raw.reward_threshold is None else float(raw.reward_threshold),
        host=True,  # the envs' states live in EnvPool, outside any checkpoint
        obs_dtype="uint8" if np.dtype(obs_space.dtype) == np.uint8 else "float32",  # frames stay bytes
    )


class _Raw(NamedTuple):
    """What one pool step gives, leaves with a leading axis of the pool's envs."""

    obs: jax.Array
    reward: jax.Array  # as learned from (Atari: clipped)
    terminated: jax.Array
    truncated: jax.Array
    elapsed: jax.Array  # steps of the current game; 0 on a reset step that starts one
    score: jax.Array  # the game's own reward
    game_over: jax.Array  # the game ended (Atari: no lives left, not a lost life)


class _Pool(NamedTuple):
    env: object  # EnvPool's object
    handle: np.ndarray  # its handle's bytes (the XLA calls carry the pool's address as a constant)
    recv: object  # its XLA functions
    step: object


class _Pools:
    """The pools of one `VecEnv`, by size, each built the first time a program of that size
    is traced; and the functions that step and reset them, batching-aware."""

    def __init__(self, env_id: str):
        self.env_id = env_id
        self.pools: dict[int, _Pool] = {}

    def pool(self, size: int) -> _Pool:
        """The pool of `size` envs, built on first use."""
        if size not in self.pools:
            with _quiet():
                env = _envpool().make(self.env_id, env_type="gymnasium", num_envs=size, batch_size=size,
                                      seed=SEED, **dict(_options(self.env_id)))
                env.observation_space, env.action_space  # built (and kept) here, where their warnings are quiet
            handle, recv, _, step = env.xla()
            self.pools[size] = _Pool(env, np.asarray(handle), recv, step)
        return self.pools[size]

    @functools.lru_cache(maxsize=None)
    def step(self, size: int):
        """step(token, action (size,)) -> (token, _Raw) on the pool of `size` envs; under
        `vmap` with M members, the same on the pool of M * size envs."""
        @jax.custom_batching.custom_vmap
        def step(token, action):
            token, out = self.pool(size).step(token, action.astype(jnp.int32))
            return token, self._raw(out)

        @step.def_vmap
        def batched(axis_size, in_batched, token, action):
            if not in_batched[1]:
                action = jnp.broadcast_to(action, (axis_size, *action.shape))
            token = token[0] if in_batched[0] else token  # the token only orders the calls
            token, raw = self.step(axis_size * size)(token, action.reshape(-1))
            return self._unfold(axis_size, token, raw)

        return step

    @functools.lru_cache(maxsize=None)
    def reset(self, size: int):
        """reset(key) -> (token, _Raw): every env of the pool starts a new episode (a host
        call asks EnvPool for the resets, the compiled program receives them). The key is
        not read: it only carries the member axis of a vmapped call to the batching rule."""
        @jax.custom_batching.custom_vmap
        def reset(key):
            pool = self.pool(size)

            def ask(_):
                pool.env.async_reset()
                return pool.handle

            token = io_callback(ask, jax.ShapeDtypeStruct(pool.handle.shape, pool.handle.dtype), key)
            token, out = pool.recv(token)
            return token, self._raw(out)

        @reset.def_vmap
        def batched(axis_size, in_batched, key):
            token, raw = self.reset(axis_size * size)(key[0] if in_batched[0] else key)
            return self._unfold(axis_size, token, raw)

        return reset

    @staticmethod
    def _unfold(axis_size: int, token, raw):
        """A pool's result as `axis_size` members' results."""
        raw = jax.tree.map(lambda x: x.reshape(axis_size, -1, *x.shape[1:]), raw)
        token = jnp.broadcast_to(token, (axis_size, *token.shape))
        return (token, raw), (True, jax.tree.map(lambda _: True, raw))

    @staticmethod
    def _raw(out) -> _Raw:
        obs, reward, terminated, truncated, info = out
        done = terminated | truncated
        if "lives" in info:  # Atari: the game's reward, and the end of the game rather than of a life
            score, game_over = info["reward"], done & (info["terminated"].astype(bool) | truncated)
        else:
            score, game_over = reward, done
        return _Raw(obs, reward.astype(jnp.float32), terminated, truncated, info["elapsed_step"],
                    score.astype(jnp.float32), game_over)


class EnvState(NamedTuple):
    token: jax.Array  # orders the calls on the pool (EnvPool's handle; its value is not read)
    ended: jax.Array  # (num_envs,) bool: the last step ended the episode, so the next one resets
    elapsed: jax.Array  # (num_envs,) int32: EnvPool's step count of each env's game


def make(env_id: str, num_envs: int) -> VecEnv:
    """`num_envs` envs of EnvPool's `env_id` (per member of a population) as a `VecEnv`."""
    env_spec = spec(env_id)
    pools = _Pools(env_id)

    def flat(obs):
        return jnp.reshape(obs, (num_envs, -1)).astype(env_spec.obs_dtype)

    def reset(key):
        # EnvPool seeds when a pool is built (module docstring): the key is not read.
        bits = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        token, raw = pools.reset(num_envs)(bits)
        return flat(raw.obs), EnvState(token, jnp.zeros(num_envs, bool), raw.elapsed)

    def step(key, state: EnvState, obs, action):
        del key
        token, raw = pools.step(num_envs)(state.token, action)
        # A step that does not continue the state's episode by one step is no transition: the
        # step after an end (it resets), a fresh pool's first (a resumed run's, in a new
        # process), or a pool that moved on since the state was saved (started afresh here).
        resets = state.ended | (raw.elapsed != state.elapsed + 1)
        done = (raw.terminated | raw.truncated) & ~resets
        transition = Transition(obs=obs, action=action.astype(jnp.int32), reward=raw.reward,
                                next_obs=flat(raw.obs), terminated=raw.terminated & ~resets)
        return EnvStep(obs=flat(raw.obs), env_state=EnvState(token, done, raw.elapsed), transition=transition,
                       done=done,
                       next_obs_known=~resets, first=resets, score=jnp.where(resets, 0.0, raw.score),
                       game_over=raw.game_over & ~resets)

    def restart(state: EnvState) -> EnvState:
        """Every env's next step is a reset step: in a new process a fresh pool's first step
        resets it; in the same process the pool's games go on as new episodes."""
        return state._replace(ended=jnp.ones_like(state.ended))

    return VecEnv(spec=env_spec, num_envs=num_envs, reset=reset, step=step, restart=restart)
