"""What `gymnasium:TARGET[@MODE]` (or a Gymnasium object) names, and the environments it builds:
one copy, a vector env of copies, and what a copy's spaces and limits are."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from typing import Any

from qlax.core.errors import reason, short
from qlax.envs import jax_adapter
from qlax.envs.base import EnvError


MODES = ("sync", "async")


def gymnasium_module():
    """The gymnasium package, imported when first needed, at a version with the vector API (>= 1.0)."""
    try:
        import gymnasium
    except ImportError:
        raise EnvError("env 'gymnasium:...' needs gymnasium: pip install 'qlax[gymnasium]'") from None
    if int(gymnasium.__version__.split(".")[0]) < 1:
        raise EnvError(f"env 'gymnasium:...' needs gymnasium >= 1.0 (its vector API); found "
                       f"{gymnasium.__version__}: pip install -U 'qlax[gymnasium]'")
    return gymnasium


@dataclasses.dataclass(frozen=True)
class Source:
    """What `gymnasium:TARGET[@MODE]` names: a Gymnasium id or a `module:factory`, and how to run it."""

    name: str  # the whole qlax name, for messages
    target: str
    mode: str  # sync | async as named; "" where the name names none (sync, or compiled: `tables`)
    env: Any = None  # a gymnasium.Env handed over from Python (`object:NAME`), copied for each copy

    @staticmethod
    def of_object(name: str, env) -> Source:
        """The source of an environment object registered as `name`."""
        gymnasium = gymnasium_module()
        if isinstance(env, gymnasium.vector.VectorEnv):
            raise EnvError(f"env = {short(name)}: a gymnasium.vector.VectorEnv has a fixed number of copies "
                           f"({env.num_envs}), qlax needs members x num_envs to train and others to evaluate: pass "
                           f"one gymnasium.Env, or name a factory taking num_envs as gymnasium:module:factory")
        return Source(name, "", "", env)

    @staticmethod
    def parse(env_id: str) -> Source:
        name = f"gymnasium:{env_id}"
        target, _, mode = env_id.partition("@")
        if mode not in ("", *MODES) or not target:
            raise EnvError(f"env = {short(name)}: write gymnasium:ID, gymnasium:ID@sync or gymnasium:ID@async "
                           f"(ID a Gymnasium id or module:factory)")
        source = Source(name, target, mode)
        if mode == "async" and source.vector_factory:
            raise EnvError(f"env = {short(name)}: {short(target, 60)} builds its own vector env (it takes num_envs); "
                           f"choose sync or async inside it, not with @async")
        return source

    @property
    def factory(self):
        """The callable of `module:factory`; None for a Gymnasium id (`module:id` included)."""
        return _factory(self.target, self.name)

    @property
    def vector_factory(self) -> bool:
        """Whether the factory builds the whole vector env: it takes `num_envs`."""
        factory = self.factory
        try:
            return factory is not None and "num_envs" in inspect.signature(factory).parameters
        except (TypeError, ValueError):  # a callable without a signature Python can read
            return False

    def one(self):
        """One environment."""
        if self.env is not None:
            return _copy(self.env, self.name)
        gymnasium, factory = gymnasium_module(), self.factory
        try:
            env = factory() if factory is not None else gymnasium.make(self.target)
        except gymnasium.error.DependencyNotInstalled as err:
            extra = "box2d" if "box2d" in str(err).lower() else None
            advice = f"pip install 'qlax[{extra}]'" if extra else "install what it names"
            raise EnvError(f"env = {short(self.name)}: {short(self.target, 60)} needs a package that is not installed "
                           f"({reason(err, 120)}): {advice}") from None
        except gymnasium.error.Error as err:
            raise EnvError(f"env = {short(self.name)}: Gymnasium cannot make {short(self.target, 60)} "
                           f"({short(err, 160)})") from None
        except Exception as err:  # noqa: BLE001 (the user's factory, reported in one line)
            raise EnvError(f"env = {short(self.name)}: building it failed: {short(err, 160)}") from None
        if not isinstance(env, gymnasium.Env):
            raise EnvError(f"env = {short(self.name)}: the factory returned {short(env, 60)}, not a gymnasium.Env; "
                           f"a factory of a whole vector env takes a num_envs parameter")
        return env

    def vector(self, num_envs: int):
        """A Gymnasium vector env of `num_envs` copies, synchronous (qlax's SAME_STEP, or the factory's own)."""
        gymnasium = gymnasium_module()
        if self.vector_factory:
            try:
                venv = self.factory(num_envs=num_envs)
            except Exception as err:  # noqa: BLE001
                raise EnvError(f"env = {short(self.name)}: building its vector env failed: {short(err, 160)}") \
                    from None
            if not isinstance(venv, gymnasium.vector.VectorEnv) or venv.num_envs != num_envs:
                raise EnvError(f"env = {short(self.name)}: factory(num_envs={num_envs}) must return a "
                               f"gymnasium.vector.VectorEnv of {num_envs} copies; it returned {short(venv, 80)}")
            return venv
        return gymnasium.vector.SyncVectorEnv([self.one] * num_envs,
                                              autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP)


def _copy(env, name: str):
    """A fresh copy of a Gymnasium environment object: a deep copy (the object as it stands,
    its wrappers and attributes), else Gymnasium's re-make from its spec (its id, arguments
    and the wrappers that record theirs: what cannot be deep-copied, a Box2D world, a window)."""
    gymnasium = gymnasium_module()
    try:
        return copy.deepcopy(env)
    except Exception as err:  # noqa: BLE001 (whatever the object holds that Python cannot copy)
        why = f"deepcopy failed ({reason(err, 100)})"
    if env.spec is None:
        why += " and it has no spec to re-make it from"
    else:
        try:
            return gymnasium.make(env.spec)
        except Exception as err:  # noqa: BLE001
            why += f" and re-making it from its spec failed ({reason(err, 100)})"
    raise EnvError(f"env = {short(name)}: qlax cannot copy this Gymnasium environment: {why}; pass a factory "
                   f"instead, env='gymnasium:module:factory'")


@functools.lru_cache(maxsize=None)
def _factory(target: str, name: str):
    """The callable `module:attribute` names, the module imported; None if it names none."""
    if ":" not in target:
        return None
    found = jax_adapter.imported_attribute(target, name)
    return found if callable(found) else None  # else Gymnasium's `module:id`, registered by the import


def _time_limit(env) -> int | None:
    """The episode length Gymnasium cuts at: the env's spec, else a TimeLimit wrapper's."""
    if env.spec is not None and env.spec.max_episode_steps is not None:
        return int(env.spec.max_episode_steps)
    while isinstance(env, gymnasium_module().Wrapper):
        if isinstance(env, gymnasium_module().wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return None


@functools.lru_cache(maxsize=None)
def described(source: Source) -> tuple[Any, Any, int | None, float | None]:
    """(observation space, action space, time limit, reward threshold) of one copy, read from a
    copy built and closed."""
    if source.vector_factory:
        venv = source.vector(1)
        first = getattr(venv, "envs", [None])[0]  # a SyncVectorEnv's first copy tells its limit
        found = (venv.single_observation_space, venv.single_action_space,
                 _time_limit(first) if first is not None else None,
                 first.spec.reward_threshold if first is not None and first.spec is not None else None)
        venv.close()
        return found
    env = source.one()  # an object's copy too: one it cannot make is refused before anything compiles
    found = (env.observation_space, env.action_space, _time_limit(env),
             env.spec.reward_threshold if env.spec is not None else None)
    env.close()
    return found


def source_of(env_id: str, env) -> Source:
    """The source of `gymnasium:env_id`, or of the object `env` registered as `env_id`."""
    return Source.parse(env_id) if env is None else Source.of_object(env_id, env)
