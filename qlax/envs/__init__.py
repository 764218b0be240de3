"""Environments by name, from every source qlax trains on, as one `VecEnv` protocol.

    CartPole-v1           gymnax's registry
    gymnasium:ID          any id Gymnasium knows, stepped on the host (qlax[gymnasium])
    atari:GAME            an Atari game with the standard DQN preprocessing, on the host (qlax[atari])
    envpool:ID            EnvPool, stepped inside the compiled loop (qlax[envpool])
    navix:ID, jumanji:ID  those JAX suites (qlax[navix], qlax[jumanji])
    module.path:factory   a JAX environment that `factory()` builds (imported only when named)
    object:NAME           an environment object handed to `qlax.train(config, env=...)`: a JAX
                          environment, or a gymnasium.Env (stepped on the host like gymnasium:)

A source's module is imported only when one of its names is used.

Names that import code (`module.path:factory`, `gymnasium:module:factory`) are trusted only
where the person names them in this process: training a config names its env, and a run
read back from disk names one only when given again (`trust`). A run directory's files
are data: `needs_code` names what they may not bring in by themselves.
"""

from __future__ import annotations

import importlib
import sys

from qlax.core.errors import short
from qlax.envs import gymnax_adapter, jax_adapter
from qlax.envs.base import EnvError, EnvSpec, EnvStep, VecEnv
from qlax.envs.jax_adapter import Box, Discrete, TimeStep, is_object_name, is_registered, register, registered_object

__all__ = ["Box", "Discrete", "EnvError", "EnvSpec", "EnvStep", "TimeStep", "VecEnv", "env_spec", "is_object_name", "is_registered",
           "is_trusted", "make_env", "needs_code", "recipe", "register", "registered_object", "remake", "supported",
           "source_of", "task_id", "trust", "drawing_hook"]

# prefix -> the adapter module, which gives spec(id) -> EnvSpec and make(id, num_envs) -> VecEnv.
SOURCES = {
    "gymnasium": "qlax.envs.gymnasium_adapter",
    "atari": "qlax.envs.atari",
    "envpool": "qlax.envs.envpool_adapter",
    "navix": "qlax.envs.navix_adapter",
    "jumanji": "qlax.envs.jumanji_adapter",
}


def _source(name: str):
    """(adapter module, id within it) for a prefixed name; (None, name) for the others."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix in SOURCES:
        if not rest:
            raise EnvError(f"env = {short(name)}: name the environment after '{prefix}:'")
        return importlib.import_module(SOURCES[prefix]), rest
    return None, name


def task_id(name: str) -> str:
    """The task a name means, whichever source steps it: `gymnasium:CartPole-v1@async`,
    `CartPole-v1` and the object `gymnasium.make("CartPole-v1")` (unwrapped beyond what its
    id makes) are all CartPole-v1 (a preset's bounds for the one hold for the others)."""
    gym_env = _gymnasium_object(name) if is_registered(name) else None  # a run's name, read before its object
    if gym_env is not None and gym_env.spec is not None and not gym_env.spec.additional_wrappers:
        return gym_env.spec.id
    prefix, sep, rest = name.partition(":")
    return (rest if sep and prefix in SOURCES else name).partition("@")[0]


def source_of(name: str) -> str:
    """Which source steps environment `name`: gymnax, gymnasium (ids, factories and objects),
    atari, envpool, navix, jumanji, or jax (a JAX environment: a factory or an object)."""
    prefix, sep, _ = name.partition(":")
    if sep and prefix in SOURCES:
        return prefix
    if is_registered(name) and _gymnasium_object(name) is not None:
        return "gymnasium"
    return "gymnax" if _is_gymnax_id(name) else "jax"


def drawing_hook(name: str):
    """A JAX environment's own drawing, `env.draw(obs) -> (height, width, 3) uint8 image` of
    one flattened observation, where the object behind `name` (an `object:` or a
    `module:factory`) has one; None otherwise."""
    if _source(name)[0] is not None or _is_gymnax_id(name) or _gymnasium_object(name) is not None:
        return None
    draw = getattr(_jax_env(name), "draw", None)
    return draw if callable(draw) else None


def needs_code(name: str) -> bool:
    """Whether building `name` imports a module that the name itself chooses: a JAX
    environment's `module.path:factory`, or Gymnasium's `module:factory` / `module:id`
    (qlax's own sources and gymnax ids import only what qlax names)."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix == "gymnasium":
        return ":" in rest.partition("@")[0]
    if sep and prefix in SOURCES or is_object_name(name):
        return False
    return not _is_gymnax_id(name)


_TRUSTED: set[str] = set()


def trust(name: str) -> None:
    """Record that the person named environment `name` in this process (a config they train,
    an env they pass again to read a run): its code may be imported."""
    _TRUSTED.add(name)


def is_trusted(name: str) -> bool:
    """Whether `name` may be built from a run directory's files: it imports no code of its
    own choosing, or the person named it in this process."""
    return not needs_code(name) or name in _TRUSTED


def _jax_env(name: str):
    """The environment object behind an `object:` or `module:factory` name."""
    if is_object_name(name):
        return jax_adapter.registered_object(name)
    return jax_adapter.from_factory(name)


def _is_gymnasium(env) -> bool:
    """Whether `env` is a Gymnasium environment or vector env (Gymnasium not imported: it is not)."""
    gymnasium = sys.modules.get("gymnasium")
    return gymnasium is not None and isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv))


def _gymnasium_object(name: str):
    """The Gymnasium environment object behind an `object:` name; None for any other name or object."""
    if not is_object_name(name):
        return None
    env = jax_adapter.registered_object(name)
    return env if _is_gymnasium(env) else None


def recipe(env) -> str | None:
    """Text that re-makes the environment object `env` in another process (a run saves it, so
    the command line can evaluate, render and resume the run): a Gymnasium environment's spec
    as JSON; None for other objects and for specs JSON cannot hold."""
    return importlib.import_module(f"{SOURCES['gymnasium']}.saved_spec").spec_json(env) if _is_gymnasium(env) else None


def remake(name: str, recipe_text: str):
    """The environment object of `object:` name `name`, re-made from its `recipe`."""
    return importlib.import_module(f"{SOURCES['gymnasium']}.saved_spec").from_spec_json(recipe_text, name)


def _is_gymnax_id(name: str) -> bool:
    return ":" not in name or gymnax_adapter.registered(name)


def env_spec(name: str) -> EnvSpec:
    """Shapes, bounds and threshold of environment `name`, its protocol checked; nothing compiled."""
    adapter, env_id = _source(name)
    if adapter is not None:
        return adapter.spec(env_id)
    if (gym_env := _gymnasium_object(name)) is not None:
        return importlib.import_module(SOURCES["gymnasium"]).spec(name, gym_env)
    if _is_gymnax_id(name):
        return gymnax_adapter.spec_of(*gymnax_adapter.make(name), name)
    return jax_adapter.spec_of(_jax_env(name), name)


def make_env(name: str, num_envs: int) -> VecEnv:
    """`num_envs` copies of environment `name` with auto-reset, as the trainer steps them."""
    adapter, env_id = _source(name)
    if adapter is not None:
        return adapter.make(env_id, num_envs)
    if (gym_env := _gymnasium_object(name)) is not None:
        return importlib.import_module(SOURCES["gymnasium"]).make(name, num_envs, gym_env)
    if _is_gymnax_id(name):
        env, params = gymnax_adapter.make(name)
        return gymnax_adapter.vectorize(env, params, gymnax_adapter.spec_of(env, params, name), num_envs)
    env = _jax_env(name)
    return jax_adapter.vectorize(env, jax_adapter.spec_of(env, name), num_envs)


def host_failure() -> EnvError | None:
    """The one-line failure of a host (Gymnasium) environment inside a compiled step, if one
    failed: the program's own error then stands for it."""
    module = sys.modules.get(f"{SOURCES['gymnasium']}.host")
    return None if module is None else module.take_failure()


def non_finite_output(name: str, vector_steps: int = 200, num_envs: int = 4) -> str | None:
    """What of environment `name` is NaN or infinite over `vector_steps` steps of uniformly
    random actions ("observations", "rewards"), or None: a run whose every member
    diverged asks this, so its message blames the environment where that is the cause."""
    import jax
    import jax.numpy as jnp

    env = make_env(name, num_envs)

    def step(carry, key):
        obs, env_state = carry
        k_action, k_step = jax.random.split(key)
        action = jax.random.randint(k_action, (num_envs,), 0, env.spec.num_actions)
        out = env.step(k_step, env_state, obs, action)
        bad_obs = jnp.issubdtype(out.obs.dtype, jnp.floating) & ~jnp.all(jnp.isfinite(out.obs))
        return (out.obs, out.env_state), (bad_obs, ~jnp.all(jnp.isfinite(out.transition.reward)))

    @jax.jit
    def check(key):
        obs, env_state = env.reset(key)
        first_bad = jnp.issubdtype(obs.dtype, jnp.floating) & ~jnp.all(jnp.isfinite(obs))
        _, (bad_obs, bad_reward) = jax.lax.scan(step, (obs, env_state), jax.random.split(key, vector_steps))
        return first_bad | jnp.any(bad_obs), jnp.any(bad_reward)

    bad_obs, bad_reward = (bool(b) for b in check(jax.random.PRNGKey(0)))
    found = [what for what, bad in (("observations", bad_obs), ("rewards", bad_reward)) if bad]
    return " and ".join(found) or None


supported = gymnax_adapter.supported
