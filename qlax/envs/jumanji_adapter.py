"""Jumanji environments, `jumanji:ID`, as qlax JAX environments (qlax[jumanji]).

Each Jumanji environment is wrapped into qlax's JAX-environment protocol and vectorized
by `jax_adapter`, which adds auto-reset and keeps final observations:

- the environment is used bare, without Jumanji's AutoResetWrapper, so a last timestep's
  observation is the true final one;
- a last timestep with discount 0 is a termination, one with discount > 0 a truncation.
  Jumanji decides which: Maze, for one, ends at its time limit with discount 0 (its
  observation holds the step count, so the end is part of the state it shows);
- the observation (a NamedTuple of arrays, e.g. a grid, positions and an action mask) is
  flattened into one float vector: every field, in the order JAX flattens the
  observation, booleans as 0/1, with the bounds the observation spec gives (a field
  without bounds is standardized by qlax's running statistics). `qlax.envs.jumanji_adapter
  .fields(ID)` lists the fields with their slices of the vector;
- the observation's `action_mask` field (one boolean per action) is the environment's
  action mask (`EnvSpec.action_mask`): acting, targets and greedy play choose among the
  legal actions only (docs/environments/action-masks.md);
- the time limit is the environment's `time_limit` where it has one.

Only environments acted on with one discrete integer (a `DiscreteArray` action spec) are
accepted; multi-agent and combinatorial ones with `MultiDiscreteArray` actions, and
continuous ones, are refused.

The `knapsack-pqn` preset solves Knapsack-v1 (a mean greedy value of 19.0, 95% of the
optimum's 20.05; random legal play packs 13.6): `qlax train knapsack-pqn` solved 8 of
8 seeds in 952 s on a 2-core CPU shared with other jobs, every seed stopping after
passing a greedy check, at 1.4 to 2.9 million env steps (docs/results.md, Environment sources).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from qlax.core.errors import short
from qlax.envs import jax_adapter
from qlax.envs.base import EnvError, EnvSpec, VecEnv

PREFIX = "jumanji:"


def _jumanji():
    try:
        import jumanji
    except ImportError:
        raise EnvError("env 'jumanji:...' needs jumanji: pip install 'qlax[jumanji]'") from None
    return jumanji


def _leaf_specs(observation_spec, name: str) -> list[tuple[str, object]]:
    """(field path, leaf spec) of every array in an observation, in JAX's leaf order (which
    is not always the spec's order)."""
    value = observation_spec.generate_value()
    found = []
    for path, _ in jax.tree_util.tree_flatten_with_path(value)[0]:
        leaf = observation_spec
        for key in path:
            field = getattr(key, "name", getattr(key, "key", None))
            leaf = getattr(leaf, "_specs", {}).get(field)
            if leaf is None:
                raise EnvError(f"env '{name}': its observation spec has no entry for {jax.tree_util.keystr(path)}")
        found.append((jax.tree_util.keystr(path).lstrip("."), leaf))
    return found


def _bounds(leaf) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (low, high) of one leaf spec: its minimum and maximum, 0/1 for booleans,
    none (inf) otherwise."""
    shape = tuple(leaf.shape)
    if np.dtype(leaf.dtype) == np.bool_:
        low, high = 0.0, 1.0
    elif hasattr(leaf, "minimum") and hasattr(leaf, "maximum"):
        low, high = np.asarray(leaf.minimum, np.float32), np.asarray(leaf.maximum, np.float32)
    else:
        low, high = -np.inf, np.inf
    return (np.broadcast_to(np.asarray(low, np.float32), shape).reshape(-1),
            np.broadcast_to(np.asarray(high, np.float32), shape).reshape(-1))


class JumanjiEnv:
    """A Jumanji `Environment` in qlax's JAX-environment protocol: observations flattened;
    the state is Jumanji's own (`jax_adapter.vectorize` keeps any state as its arrays)."""

    def __init__(self, env, name: str):
        self.env = env
        self.name = name
        action = env.action_spec
        if type(action).__name__ != "DiscreteArray":
            nvec = getattr(action, "num_values", None)
            if nvec is not None:
                choices = f"{type(action).__name__} {short(np.asarray(nvec).tolist(), 40)}"
                what = f"several discrete choices at once ({choices})"
            elif np.issubdtype(np.dtype(action.dtype), np.integer):
                what = f"several discrete choices at once (integers of shape {tuple(action.shape)})"
            else:
                what = f"continuous (of shape {tuple(action.shape)})"
            raise EnvError(f"env '{name}': its actions are {what}; Q-learning here needs one discrete action "
                           f"(a DiscreteArray action spec)")
        self.action_space = jax_adapter.Discrete(int(action.num_values))
        leaves = _leaf_specs(env.observation_spec, name)
        sizes = [math.prod(leaf.shape) for _, leaf in leaves]
        starts = np.cumsum([0, *sizes]).tolist()
        self.fields = {path: slice(start, start + size) for (path, _), start, size in zip(leaves, starts, sizes)}
        mask = self.fields.get("action_mask")
        # Jumanji's `action_mask` field, one boolean per action, is the mask qlax acts by.
        self.action_mask = (mask.start, mask.stop) if mask is not None and \
            mask.stop - mask.start == self.action_space.n and \
            dict(leaves)["action_mask"].dtype == np.bool_ else None
        low, high = (np.concatenate(parts) for parts in zip(*(_bounds(leaf) for _, leaf in leaves)))
        self.observation_space = jax_adapter.Box(shape=(sum(sizes),), low=low, high=high)
        limit = getattr(env, "time_limit", None)
        self.max_episode_steps = int(limit) if limit is not None else None

    @staticmethod
    def _flat(observation) -> jax.Array:
        return jnp.concatenate([jnp.reshape(leaf, (-1,)).astype(jnp.float32)
                                for leaf in jax.tree.leaves(observation)])

    def reset(self, key):
        state, timestep = self.env.reset(key)
        return self._flat(timestep.observation), state

    def step(self, key, state, action):
        """Jumanji's step (its randomness comes from the key in its state); the discount of a
        last timestep tells a termination from a truncation."""
        state, timestep = self.env.step(state, action)
        last = timestep.last()
        stops = jnp.asarray(timestep.discount) == 0
        return (self._flat(timestep.observation), state, jnp.asarray(timestep.reward, jnp.float32),
                last & stops, last & ~stops)


@functools.lru_cache(maxsize=None)
def wrapped(env_id: str) -> JumanjiEnv:
    """The Jumanji environment `env_id` in qlax's protocol (built once per process)."""
    jumanji = _jumanji()
    env = jax_adapter.from_suite("jumanji", "Jumanji", env_id, jumanji.registered_environments(),
                                 lambda: jumanji.make(env_id), "jumanji.registered_environments()")
    return JumanjiEnv(env, PREFIX + env_id)


def fields(env_id: str) -> dict[str, slice]:
    """Which slice of the flattened observation each field of the Jumanji observation fills."""
    return dict(wrapped(env_id).fields)


def spec(env_id: str) -> EnvSpec:
    return jax_adapter.spec_of(wrapped(env_id), PREFIX + env_id)


def make(env_id: str, num_envs: int) -> VecEnv:
    env = wrapped(env_id)
    return jax_adapter.vectorize(env, jax_adapter.spec_of(env, env.name), num_envs)
