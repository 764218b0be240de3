"""Any JAX environment: qlax's environment protocol, its checks, and auto-reset.

A JAX environment is an object with

    observation_space   Box (shape, low, high), Discrete (n), or a Dict/Tuple of them
    action_space        Discrete (n)
    reset(key) -> (obs, state)
    step(key, state, action) -> (obs, state, reward, terminated, truncated)

and optionally `max_episode_steps` (qlax then cuts episodes there), `solve_threshold`,
`name`, and `action_mask`: (start, stop), the entries of the flattened observation that
say which actions are legal (num_actions of them, nonzero: legal). An observation Dict
with an "action_mask" key of num_actions entries needs no attribute: that key is the
mask. `step` does not reset: its `obs` is the true next observation, which qlax keeps as
the transition's `next_obs` before resetting an ended episode itself. Spaces are read
by their attributes, so gymnax's and Gymnasium's space classes work as well as
`qlax.envs.Box` and `qlax.envs.Discrete`. A gymnax `Environment` object is taken as it is.

Everything is checked with `jax.eval_shape` before anything compiles; a break of the
protocol gets one line that names it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qlax.core.errors import reason, short
from qlax.core.types import Transition
from qlax.envs import gymnax_adapter
from qlax.envs.base import EnvError, EnvSpec, VecEnv, env_step


class TimeStep(NamedTuple):
    """What `step` returns (a plain 5-tuple in this order works too)."""

    obs: Any
    state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array


@dataclass(frozen=True)
class Discrete:
    """n actions (or observed states) 0 .. n-1."""

    n: int


@dataclass(frozen=True)
class Box:
    """Real-valued observations of `shape` between `low` and `high` (scalars or arrays; +-inf for none)."""

    shape: tuple[int, ...]
    low: Any = -np.inf
    high: Any = np.inf


class _Part(NamedTuple):
    """One leaf space of an observation: its shape as emitted and its flattened size."""

    shape: tuple[int, ...]
    size: int
    one_hot: bool  # a discrete index, fed one-hot
    low: np.ndarray
    high: np.ndarray


def observation_parts(space, name: str, where: str = "observation_space") -> list[_Part]:
    """The leaf spaces of an observation space, in the order qlax flattens them (a dict's
    keys sorted, as JAX orders a dict's leaves); refused in one line unless Box, Discrete,
    or Dict/Tuple spaces of them."""
    children = getattr(space, "spaces", None)
    if isinstance(children, dict):
        return [p for key in sorted(children) for p in observation_parts(children[key], name, f"{where}[{key!r}]")]
    if isinstance(children, (tuple, list)):
        return [p for i, child in enumerate(children) for p in observation_parts(child, name, f"{where}[{i}]")]
    n = getattr(space, "n", None)
    shape = getattr(space, "shape", None)
    if n is not None and not shape and np.ndim(n) == 0:  # Discrete (gymnax's, Gymnasium's, qlax's)
        if int(getattr(space, "start", 0)) != 0:
            raise EnvError(f"env '{name}': {where} is a Discrete space starting at {space.start}; qlax one-hot "
                           f"encodes indices from 0")
        n = _count(n, name, f"{where}.n")
        return [_Part((), n, True, np.zeros(n, np.float32), np.ones(n, np.float32))]
    if shape is not None and hasattr(space, "low") and hasattr(space, "high") and n is None:  # Box
        shape = tuple(_count(d, name, f"{where}.shape") for d in shape)
        if math.prod(shape) > MAX_OBS_ENTRIES:
            raise EnvError(f"env '{name}': {where} has shape {shape}, {math.prod(shape):,} entries; qlax flattens "
                           f"an observation into at most {MAX_OBS_ENTRIES:,}")
        low, high = (_bound(space, side, shape, name, where) for side in ("low", "high"))
        return [_Part(shape, math.prod(shape), False, low, high)]
    raise EnvError(f"env '{name}': {where} is {short(space)}; qlax trains on Box and Discrete observations, "
                   f"and on Dict or Tuple spaces of them (flattened)")


def _bound(space, side: str, shape: tuple[int, ...], name: str, where: str) -> np.ndarray:
    """A Box's `low` or `high`, flattened: a number, or an array of the space's shape (or one
    that broadcasts to it); refused in one line otherwise."""
    value = getattr(space, side)
    try:
        return np.broadcast_to(np.asarray(value, np.float32), shape).reshape(-1)
    except (TypeError, ValueError):
        raise EnvError(f"env '{name}': {where}.{side} = {short(value, 80)}: expected a number or an array of the "
                       f"space's shape {shape}") from None


def action_count(space, name: str) -> int:
    """n of a Discrete action space from 0; refused in one line otherwise."""
    n = getattr(space, "n", None)
    if n is None or np.ndim(n) != 0 or getattr(space, "shape", ()) not in ((), None):
        raise EnvError(f"env '{name}': action_space is {short(space)}; Q-learning needs a discrete action space "
                       f"(one integer action from 0 to n-1)")
    if int(getattr(space, "start", 0)) != 0:
        raise EnvError(f"env '{name}': action_space starts at {space.start}; qlax's actions run from 0 to n-1")
    return _count(n, name, "action_space.n")


MAX_OBS_ENTRIES = 2**28  # a flattened observation's entries: 1 GiB of float32 for one copy


def _count(value, name: str, what: str) -> int:
    """A space's size that must be a whole number >= 1 (Discrete(2.7), True, -3 and 0 are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise EnvError(f"env '{name}': {what} = {short(value)}: expected a whole number >= 1")
    return int(value)


def _flatten(parts: list[_Part], batch: int):
    """obs (a pytree with a leading batch axis) -> (batch, obs_dim) float32."""
    def flat(obs):
        leaves = jax.tree.leaves(obs)
        return jnp.concatenate([
            jax.nn.one_hot(leaf, part.size, dtype=jnp.float32) if part.one_hot
            else jnp.reshape(leaf, (batch, part.size)).astype(jnp.float32)
            for leaf, part in zip(leaves, parts)], axis=-1)
    return flat


def _check(env, name: str, parts: list[_Part]) -> None:
    """The protocol, checked on shapes only (`jax.eval_shape`): one clear line per break."""
    for method in ("reset", "step"):
        if not callable(getattr(env, method, None)):
            raise EnvError(f"env '{name}': has no {method}() method; a JAX environment needs reset(key) -> "
                           f"(obs, state) and step(key, state, action) -> (obs, state, reward, terminated, "
                           f"truncated)")
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    try:
        out = jax.eval_shape(env.reset, key)
    except USER_CODE_FAILURES as err:  # any failure of the user's code is reported, in one line
        raise EnvError(f"env '{name}': reset(key) failed: {reason(err)}") from None
    if not isinstance(out, tuple) or len(out) != 2:
        raise EnvError(f"env '{name}': reset(key) must return (obs, state); it returned {short(out, 120)}")
    obs, state = out
    _check_obs(obs, parts, name, "reset")
    action = jax.ShapeDtypeStruct((), jnp.int32)
    try:
        out = jax.eval_shape(env.step, key, state, action)
    except USER_CODE_FAILURES as err:
        raise EnvError(f"env '{name}': step(key, state, action) failed: {reason(err)}") from None
    if not isinstance(out, tuple) or len(out) != 5:
        count = len(out) if isinstance(out, tuple) else "not a tuple of"
        raise EnvError(f"env '{name}': step must return (obs, state, reward, terminated, truncated), terminated "
                       f"and truncated apart; it returned {count} values")
    next_obs, next_state, reward, terminated, truncated = out
    _check_obs(next_obs, parts, name, "step")
    for what, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if not hasattr(value, "shape") or value.shape != ():
            raise EnvError(f"env '{name}': step's {what} must be a scalar; it is {short(value, 120)}")
    same = jax.tree.structure(state) == jax.tree.structure(next_state) and all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(next_state)))
    if not same:
        raise EnvError(f"env '{name}': step returns a state of another structure, shape or dtype than reset's; "
                       f"the two must match for the compiled loop")


def _check_obs(obs, parts: list[_Part], name: str, method: str) -> None:
    shapes = [tuple(leaf.shape) for leaf in jax.tree.leaves(obs)]
    expected = [part.shape for part in parts]
    if shapes != expected:
        raise EnvError(f"env '{name}': {method} returns observations of shape {shapes if len(shapes) != 1 else shapes[0]}; "
                       f"observation_space says {expected if len(expected) != 1 else expected[0]}")
    complex_leaves = [leaf.dtype for leaf in jax.tree.leaves(obs) if jnp.issubdtype(leaf.dtype, jnp.complexfloating)]
    if complex_leaves:
        raise EnvError(f"env '{name}': {method} returns {complex_leaves[0]} observations; qlax trains on real numbers "
                       f"(split a complex value into its real and imaginary parts)")


def spec_of(env, name: str) -> EnvSpec:
    """The spec of a protocol environment, its protocol checked; a gymnax object's own spec."""
    if gymnax_adapter.is_gymnax_env(env):
        return gymnax_adapter.spec_of(env, env.default_params, name)
    read = {attribute: _attribute(env, attribute, name) for attribute in PROTOCOL_ATTRIBUTES}
    for attribute in ("observation_space", "action_space"):
        if read[attribute] is None:
            raise EnvError(f"env '{name}': has no {attribute}; a JAX environment names its spaces "
                           f"(qlax.envs.Box, qlax.envs.Discrete, or gymnax's or Gymnasium's)")
    spec = spaces_spec(name, read["observation_space"], read["action_space"], read["max_episode_steps"],
                       read["solve_threshold"], action_mask=read["action_mask"])
    _check(env, name, observation_parts(read["observation_space"], name))
    return spec


PROTOCOL_ATTRIBUTES = ("observation_space", "action_space", "max_episode_steps", "solve_threshold", "action_mask")


def _attribute(env, attribute: str, name: str):
    """`env.attribute`, None where it has none; one line naming it where reading it fails."""
    try:
        return getattr(env, attribute, None)
    except USER_CODE_FAILURES as err:  # a property of the user's that raises
        raise EnvError(f"env '{name}': reading its {attribute} failed: {reason(err)}") from None


def mask_slice(observation_space, name: str, num_actions: int, action_mask=None) -> tuple[int, int] | None:
    """(start, stop) of the action mask in the flattened observation: `action_mask` as given,
    else a Dict observation's "action_mask" key; checked to be num_actions entries of 0/1."""
    children = getattr(observation_space, "spaces", None)
    if action_mask is None and isinstance(children, dict) and "action_mask" in children:
        start = sum(p.size for key in sorted(children) if key < "action_mask"
                    for p in observation_parts(children[key], name))
        action_mask = (start, start + sum(p.size for p in observation_parts(children["action_mask"], name)))
    if action_mask is None:
        return None
    parts = observation_parts(observation_space, name)
    low, high = np.concatenate([p.low for p in parts]), np.concatenate([p.high for p in parts])
    try:
        start, stop = (int(i) for i in action_mask)
    except (TypeError, ValueError):
        start, stop = -1, -1
    if not (0 <= start and stop - start == num_actions and stop <= len(low)) or \
            np.any(low[start:stop] < 0) or np.any(high[start:stop] > 1):
        raise EnvError(f"env '{name}': action_mask = {short(action_mask)}: expected (start, stop) of the "
                       f"{num_actions} entries (one per action, 0 or 1) of the {len(low)} of its flattened "
                       f"observation that say which actions are legal")
    return start, stop


def spaces_spec(name: str, observation_space, action_space, max_episode_steps=None, solve_threshold=None,
                host: bool = False, action_mask=None) -> EnvSpec:
    """The spec of an environment with these spaces (read by their attributes), time limit,
    threshold and action mask (`mask_slice`)."""
    parts = observation_parts(observation_space, name)
    num_actions = action_count(action_space, name)
    mask = mask_slice(observation_space, name, num_actions, action_mask)
    limit = max_episode_steps
    if limit is not None and (isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, np.integer))
                              or limit < 1):
        raise EnvError(f"env '{name}': max_episode_steps = {short(limit)}: expected a positive integer or None")
    return EnvSpec(
        id=name,
        obs_shape=parts[0].shape if len(parts) == 1 and not parts[0].one_hot else
        (() if len(parts) == 1 else (sum(p.size for p in parts),)),
        obs_dim=sum(p.size for p in parts),
        num_actions=num_actions,
        max_episode_steps=None if limit is None else int(limit),
        obs_low=np.concatenate([p.low for p in parts]),
        obs_high=np.concatenate([p.high for p in parts]),
        solve_threshold=_threshold(solve_threshold, name),
        host=host,
        action_mask=mask,
        one_hot=np.concatenate([np.full(p.size, p.one_hot) for p in parts]) if any(p.one_hot for p in parts)
        else None,
    )


def _threshold(value, name: str) -> float | None:
    """solve_threshold: None or a real number (not a bool, a string or a list)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EnvError(f"env '{name}': solve_threshold = {short(value, 80)}: expected a number, or None for none")
    return float(value)


class _Limited(NamedTuple):
    """A protocol env's state and its episode's steps, for qlax's own time limit. The state
    is kept as the tuple of its arrays, so a checkpoint can hold a state of any class."""

    inner: tuple
    steps: jax.Array


def vectorize(env, spec: EnvSpec, num_envs: int) -> VecEnv:
    """`num_envs` vmapped copies with auto-reset: an ended episode's final observation is
    kept as `next_obs`, then the copy resets; `max_episode_steps` cuts an episode as a
    truncation."""
    if gymnax_adapter.is_gymnax_env(env):
        return gymnax_adapter.vectorize(env, env.default_params, spec, num_envs)
    flat = _flatten(observation_parts(env.observation_space, spec.id), num_envs)
    limit = spec.max_episode_steps
    state_structure = jax.tree.structure(jax.eval_shape(env.reset, jax.ShapeDtypeStruct((2,), jnp.uint32))[1])

    def reset_all(key):
        obs, inner = jax.vmap(env.reset)(jax.random.split(key, num_envs))
        return obs, _Limited(tuple(jax.tree.leaves(inner)), jnp.zeros(num_envs, jnp.int32))

    def reset(key):
        obs, state = reset_all(key)
        return flat(obs), state

    def step(key, state: _Limited, obs, action):
        k_step, k_reset = jax.random.split(key)
        next_obs, inner, reward, terminated, truncated = jax.vmap(env.step)(
            jax.random.split(k_step, num_envs), jax.tree.unflatten(state_structure, state.inner),
            action.astype(jnp.int32))
        steps = state.steps + 1
        terminated = jnp.asarray(terminated).astype(bool)
        truncated = jnp.asarray(truncated).astype(bool) & ~terminated
        if limit is not None:
            truncated = truncated | ((steps >= limit) & ~terminated)
        done = terminated | truncated
        reset_obs, reset_state = reset_all(k_reset)
        after = jax.tree.map(lambda new, old: jnp.where(done.reshape(done.shape + (1,) * (new.ndim - 1)), new, old),
                             (reset_obs, reset_state), (next_obs, _Limited(tuple(jax.tree.leaves(inner)), steps)))
        transition = Transition(obs=obs, action=action.astype(jnp.int32),
                                reward=jnp.asarray(reward, jnp.float32), next_obs=flat(next_obs),
                                terminated=terminated)
        return env_step(flat(after[0]), after[1], transition, done, jnp.ones(num_envs, bool))

    return VecEnv(spec=spec, num_envs=num_envs, reset=reset, step=step)


# Environment objects handed over from Python (`qlax.train(config, env=...)`), by name.
_OBJECTS: dict[str, Any] = {}
OBJECT_PREFIX = "object:"


def register(env, name: str | None = None) -> str:
    """The name `env` (an environment object) trains under: `object:NAME`, unique to the
    object in this process; `name` reuses a saved run's name (resume, evaluation)."""
    if name is None:
        # A Gymnasium env by its id, else its innermost class, not its outermost wrapper's
        label = (getattr(env, "name", None) or getattr(getattr(env, "spec", None), "id", None)
                 or type(getattr(env, "unwrapped", env)).__name__)
        base = f"{OBJECT_PREFIX}{label}"
        name, suffix = base, 1
        while name in _OBJECTS and _OBJECTS[name] is not env:
            suffix += 1
            name = f"{base}-{suffix}"
    _OBJECTS[name] = env
    return name


def is_object_name(name: str) -> bool:
    """Whether `name` names an environment object handed over from Python (`object:NAME`)."""
    return name.startswith(OBJECT_PREFIX)


def is_registered(name: str) -> bool:
    """Whether this process holds the environment object of `object:` name `name`."""
    return name in _OBJECTS


def registered_object(name: str):
    if name not in _OBJECTS:
        raise EnvError(f"env = {short(name)}: this run trained on an environment object passed from Python that "
                       f"it cannot re-make (only a Gymnasium env with a spec JSON can hold is saved with the run); "
                       f"pass it again, e.g. qlax.resume(run_dir, env=my_env) or evaluate_run(run_dir, env=my_env)")
    return _OBJECTS[name]


# How a user's module or factory can fail: an error, or sys.exit() and KeyboardInterrupt raised
# by its own code (a real Ctrl-C reaches qlax's signal handler, not this).
USER_CODE_FAILURES = (Exception, SystemExit, KeyboardInterrupt)

# The qlax command's module, and its path before qlax was packages by layer (an older
# install on the Python path still resolves it).
COMMAND_MODULES = ("qlax.tools.cli", "qlax.cli")


def imported_attribute(target: str, name: str):
    """The attribute that `module.path:attribute` names (None if the module has none), the
    module imported (found on the path, or in the working directory); `name` is the env
    name for the error line."""
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:  # as `python -m` does: your own module beside you imports (after installed ones)
        sys.path.append(os.getcwd())
    if module_name in COMMAND_MODULES:  # its main() would run the command again, from inside itself
        raise EnvError(f"env = {short(name)}: {module_name} is the qlax command, not an environment factory; name "
                       f"your own module.path:factory, or an id from `qlax envs`")
    try:
        module = importlib.import_module(module_name)
    except USER_CODE_FAILURES as err:  # ImportError, or the module's own failure
        raise EnvError(f"env = {short(name)}: cannot import module {short(module_name, 60)} "
                       f"({reason(err, 120)}); is it on the Python path?") from None
    return getattr(module, attribute, None)


@functools.lru_cache(maxsize=None)
def from_factory(name: str):
    """The environment that `module.path:factory` builds: the module is imported, then
    `factory()` called (once per process)."""
    module_name, _, attribute = name.partition(":")
    factory = imported_attribute(name, name)
    if not callable(factory):
        raise EnvError(f"env = {short(name)}: module {short(module_name, 60)} has no callable {short(attribute, 60)}")
    try:
        return factory()
    except USER_CODE_FAILURES as err:
        raise EnvError(f"env = {short(name)}: {short(attribute, 60)}() failed: {reason(err)}") from None


def from_suite(prefix: str, suite: str, env_id: str, registered, make, listing: str):
    """`make()`, the environment `env_id` of a JAX suite (navix, Jumanji), named
    `prefix:env_id`, once its id is known to be `registered`; an unknown id gets a "did you
    mean", a failed build one line."""
    name = f"{prefix}:{env_id}"
    if env_id not in registered:
        close = difflib.get_close_matches(env_id[:100], sorted(registered), n=1)
        hint = f" (did you mean '{prefix}:{close[0]}'?)" if close else f" ({listing} lists them)"
        raise EnvError(f"env = {short(name)}: {suite} has no such environment{hint}")
    try:
        return make()
    except Exception as err:  # noqa: BLE001 (any failure of the suite's constructor, in one line)
        raise EnvError(f"env = '{name}': {suite} could not build it here ({reason(err)})") from None
