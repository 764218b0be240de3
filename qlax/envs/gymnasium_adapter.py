"""Gymnasium environments stepped on the host from inside the compiled trainer.

    gymnasium:CartPole-v1           any id Gymnasium makes; its copies in one SyncVectorEnv
    gymnasium:CartPole-v1@async     the copies spread over worker processes, one per CPU core
    gymnasium:my.module:factory     `factory()` builds one environment; a factory with a
                                    `num_envs` parameter builds the whole vector env itself
                                    (any autoreset mode, Gymnasium's AsyncVectorEnv, ...)
    qlax.train(config, env=obj)     a `gymnasium.Env` object (`object:NAME`): its copies are
                                    deep copies of it, wrappers and attributes as they stand,
                                    else re-made from its `env.spec`; stepped in this process

The object itself is never stepped. A `gymnasium.vector.VectorEnv` object is refused: its
number of copies is fixed, while qlax needs members x num_envs of them to train and other
counts to evaluate (a factory taking `num_envs` builds a vector env of any size).

Acting, learning and the replay buffer stay compiled on the device. Each vector step is one
host call (`jax.pure_callback`, batched over the population with vmap_method
"broadcast_all"), which steps every member's environments at once as one Gymnasium vector
env of members x num_envs copies: seeds train as one larger vector environment. Each
`make` owns its host copies (the greedy evaluation's are not the training ones), one vector
env per population size, made on first use.

Autoreset: qlax builds its vector envs in SAME_STEP mode (the ended copy's final observation
comes in `info["final_obs"]`, the observation returned is already the next episode's), the
cheapest. A vector env built by a factory may use any mode:
  NEXT_STEP  the step after an end resets the copy and ignores its action: that step is no
             transition (next_obs_known false, done false, reward and score 0) and its
             observation is a new episode's first;
  SAME_STEP  the final observation comes from info["final_obs"] where info["_final_obs"];
  DISABLED   qlax resets the ended copies itself, reset(options={"reset_mask": ended}).
Either way the learner sees the true final observation as next_obs, termination apart from
a time limit. A wrapper that learns from something else than it reports (Atari's clipped
rewards, a lost life as an end) puts the game's reward in info[SCORE_KEY] and the game's
end in info[GAME_OVER_KEY]; returns count those.

Seeds: each reset seeds its copies with integers drawn from the reset key, so one config
and seed give the same run. The device holds only a token per member naming the host's
episodes; a checkpoint cannot hold a host environment, so a resumed run (`VecEnv.restart`)
starts fresh episodes: its first vector step is a reset step, as in NEXT_STEP.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import logging
import multiprocessing
import multiprocessing.connection
import signal
import sys
import threading
import weakref
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qlax.core.errors import reason, short
from qlax.core.types import Transition
from qlax.envs import jax_adapter
from qlax.envs.base import EnvError, EnvSpec, EnvStep, VecEnv

SCORE_KEY = "qlax_score"  # info key: the reward as the game scores it, where learning sees another
GAME_OVER_KEY = "qlax_game_over"  # info key: the game ended, where learning sees other ends
MODES = ("sync", "async")


def _gymnasium():
    try:
        import gymnasium
    except ImportError:
        raise EnvError("env 'gymnasium:...' needs gymnasium: pip install 'qlax[gymnasium]'") from None
    if int(gymnasium.__version__.split(".")[0]) < 1:
        raise EnvError(f"env 'gymnasium:...' needs gymnasium >= 1.0 (its vector API); found "
                       f"{gymnasium.__version__}: pip install -U 'qlax[gymnasium]'")
    return gymnasium


@dataclasses.dataclass(frozen=True)
class _Source:
    """What `gymnasium:TARGET[@MODE]` names: a Gymnasium id or a `module:factory`, and how to run it."""

    name: str  # the whole qlax name, for messages
    target: str
    mode: str  # sync | async
    env: Any = None  # a gymnasium.Env handed over from Python (`object:NAME`), copied for each copy

    @staticmethod
    def of_object(name: str, env) -> _Source:
        """The source of an environment object registered as `name`."""
        gymnasium = _gymnasium()
        if isinstance(env, gymnasium.vector.VectorEnv):
            raise EnvError(f"env = {short(name)}: a gymnasium.vector.VectorEnv has a fixed number of copies "
                           f"({env.num_envs}), qlax needs members x num_envs to train and others to evaluate: pass "
                           f"one gymnasium.Env, or name a factory taking num_envs as gymnasium:module:factory")
        return _Source(name, "", "sync", env)

    @staticmethod
    def parse(env_id: str) -> _Source:
        name = f"gymnasium:{env_id}"
        target, _, mode = env_id.partition("@")
        mode = mode or "sync"
        if mode not in MODES or not target:
            raise EnvError(f"env = {short(name)}: write gymnasium:ID, gymnasium:ID@sync or gymnasium:ID@async "
                           f"(ID a Gymnasium id or module:factory)")
        source = _Source(name, target, mode)
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
        gymnasium, factory = _gymnasium(), self.factory
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
        gymnasium = _gymnasium()
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
    gymnasium = _gymnasium()
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


def spec_json(env) -> str | None:
    """What re-makes a Gymnasium environment object in another process: its spec as JSON (its
    id, arguments and the wrappers that record theirs); None where it has no spec, where JSON
    cannot hold it (a callable entry point, an argument that is an object), or where another
    process could not follow it (a class of the script itself, `__main__:`, or a wrapper
    that does not record its arguments)."""
    if env.spec is None:
        return None
    try:
        text = env.spec.to_json()
    except Exception:  # noqa: BLE001 (Gymnasium refuses what JSON cannot hold, each in its own words)
        return None
    recipe = json.loads(text)
    parts = [recipe, *(recipe.get("additional_wrappers") or ())]
    if any(str(part.get("entry_point")).startswith("__main__:") or part.get("kwargs") is None for part in parts):
        return None
    return text


def from_spec_json(text: str, name: str):
    """The environment `gymnasium.make` builds from a spec `spec_json` wrote, importing and
    calling nothing the spec chooses: its id must be one Gymnasium has registered in this
    process, built by that registration's own entry point, and its wrappers Gymnasium's own.
    Anything else is refused in one line that says to pass the environment again."""
    gymnasium = _gymnasium()
    again = "pass the environment again, e.g. qlax.resume(run_dir, env=my_env) or evaluate_run(run_dir, env=my_env)"
    try:
        saved = json.loads(text)
    except ValueError:
        saved = None
    if not isinstance(saved, dict) or not isinstance(saved.get("id"), str):
        raise EnvError(f"env = {short(name)}: the run's env_spec.json is not a Gymnasium spec qlax wrote; {again}")
    registered = gymnasium.registry.get(saved["id"])
    if registered is None:
        raise EnvError(f"env = {short(name)}: the run's env_spec.json names id {short(saved['id'], 60)}, which "
                       f"Gymnasium has not registered in this process (qlax imports no module a run's files name: "
                       f"register it first, e.g. import its package), or {again}")
    if saved.get("entry_point") != registered.entry_point:
        raise EnvError(f"env = {short(name)}: the run's env_spec.json builds {short(saved['id'], 60)} with entry point "
                       f"{short(saved.get('entry_point'), 80)}, not the registered {short(registered.entry_point, 80)}; "
                       f"qlax calls only what this process registered: {again}")
    try:
        wrappers = tuple(_safe_wrapper(part, gymnasium) for part in saved.get("additional_wrappers") or ())
        spec = dataclasses.replace(registered, kwargs=_mapping(saved.get("kwargs", {}), "kwargs"),
                                   max_episode_steps=saved.get("max_episode_steps"),
                                   order_enforce=bool(saved.get("order_enforce", True)),
                                   disable_env_checker=bool(saved.get("disable_env_checker", False)),
                                   additional_wrappers=wrappers)
        return gymnasium.make(spec)
    except Exception as err:  # noqa: BLE001 (a refused part, or the registered env's own failure)
        raise EnvError(f"env = {short(name)}: re-making it from the run's saved spec failed ({reason(err, 160)}); "
                       f"{again}") from None


def _mapping(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{what} = {short(value, 60)} is not a mapping")
    return value


_UNSAFE_WRAPPERS = ("RecordVideo", "HumanRendering")  # they write where their arguments say, or open a window


def _safe_wrapper(part, gymnasium):
    """A saved wrapper's spec, accepted only where it names one of Gymnasium's own wrapper
    classes, already imported (`gymnasium.wrappers.*:Class`), and not one that writes files
    or opens windows (`_UNSAFE_WRAPPERS`)."""
    entry = part.get("entry_point") if isinstance(part, dict) else None
    module_name, _, attribute = str(entry).partition(":")
    module = sys.modules.get(module_name) if module_name.startswith("gymnasium.wrappers") and \
        attribute not in _UNSAFE_WRAPPERS else None
    wrapper = getattr(module, attribute, None) if module is not None else None
    if not (isinstance(wrapper, type) and issubclass(wrapper, gymnasium.Wrapper)):
        raise ValueError(f"wrapper {short(entry, 80)} is not one of gymnasium.wrappers; qlax applies only those")
    return gymnasium.envs.registration.WrapperSpec(name=str(part.get("name", attribute)), entry_point=entry,
                                                   kwargs=_mapping(part.get("kwargs", {}), "a wrapper's kwargs"))


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
    while isinstance(env, _gymnasium().Wrapper):
        if isinstance(env, _gymnasium().wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return None


@functools.lru_cache(maxsize=None)
def _described(source: _Source) -> tuple[Any, Any, int | None, float | None]:
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


def _source(env_id: str, env) -> _Source:
    """The source of `gymnasium:env_id`, or of the object `env` registered as `env_id`."""
    return _Source.parse(env_id) if env is None else _Source.of_object(env_id, env)


def spec(env_id: str, env=None) -> EnvSpec:
    """Spaces, time limit and reward threshold of `gymnasium:env_id` (of the Gymnasium
    environment object `env`, registered as env_id), checked for Q-learning."""
    source = _source(env_id, env)
    obs_space, action_space, limit, threshold = _described(source)
    found = jax_adapter.spaces_spec(source.name, obs_space, action_space, limit, threshold, host=True)
    return dataclasses.replace(found, obs_dtype=_obs_dtype(obs_space).name)


def _obs_dtype(obs_space) -> np.dtype:
    """uint8 for one Box of bytes (pixel frames: bytes from the environment to the replay
    buffer, a quarter of float32's traffic), float32 for every other observation."""
    frames = getattr(obs_space, "spaces", None) is None and getattr(obs_space, "dtype", None) == np.uint8
    return np.dtype(np.uint8 if frames else np.float32)


class _Record(NamedTuple):
    """One vector step of n copies as qlax reads it (numpy, leading axis n)."""

    obs: np.ndarray  # (n, obs_dim) of the observations' dtype (`_obs_dtype`): acted on next
    next_obs: np.ndarray  # (n, obs_dim) likewise: the transition's, the final observation at an end
    reward: np.ndarray  # float32
    terminated: np.ndarray  # bool
    done: np.ndarray  # bool
    known: np.ndarray  # bool
    first: np.ndarray  # bool
    score: np.ndarray  # float32
    game_over: np.ndarray  # bool

    @staticmethod
    def reset_step(obs: np.ndarray) -> _Record:
        """A step that only reset the copies: no transition, obs a new episode's first."""
        n = obs.shape[0]
        no, zero = np.zeros(n, bool), np.zeros(n, np.float32)
        return _Record(obs, obs, zero, no, no, no, np.ones(n, bool), zero, no)

    def where(self, mask: np.ndarray, other: _Record) -> _Record:
        return _Record(*(np.where(mask.reshape(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(self, other)))

    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """Two arrays for the device, as few as a callback can return (each costs time): the
        bytes of obs, next_obs (in their own dtype) and of reward and score (float32), (n,
        `_packed_width`) uint8; and (n, 5) bool of the flags."""
        n = len(self.reward)
        as_bytes = lambda a: np.ascontiguousarray(a).view(np.uint8).reshape(n, -1)  # noqa: E731
        numbers = np.stack([self.reward, self.score], axis=1).astype(np.float32)
        return (np.concatenate([as_bytes(self.obs), as_bytes(self.next_obs), as_bytes(numbers)], axis=1),
                np.stack([self.terminated, self.done, self.known, self.first, self.game_over], axis=1))

    @staticmethod
    def unpacked(values: jax.Array, flags: jax.Array, obs_dim: int, dtype: np.dtype) -> _Record:
        """The inverse of `packed`, on the device (any leading axes)."""
        width = obs_dim * dtype.itemsize
        numbers = _from_bytes(values[..., 2 * width:], np.float32)
        return _Record(_from_bytes(values[..., :width], dtype), _from_bytes(values[..., width:2 * width], dtype),
                       numbers[..., 0], *(flags[..., i] for i in range(4)), numbers[..., 1], flags[..., 4])


def _packed_width(obs_dim: int, dtype: np.dtype) -> int:
    """Bytes per copy of `_Record.packed`'s first array."""
    return 2 * obs_dim * dtype.itemsize + 2 * 4


def _from_bytes(data: jax.Array, dtype: np.dtype) -> jax.Array:
    """(..., k * itemsize) uint8 -> (..., k) of `dtype`, the bytes reinterpreted (no conversion)."""
    if np.dtype(dtype) == np.uint8:
        return data
    return jax.lax.bitcast_convert_type(data.reshape(*data.shape[:-1], -1, np.dtype(dtype).itemsize), dtype)


def _leaves(obs) -> list[np.ndarray]:
    """An observation's arrays in the order `observation_parts` lists its spaces."""
    if isinstance(obs, dict):
        return [leaf for key in sorted(obs) for leaf in _leaves(obs[key])]
    if isinstance(obs, (tuple, list)):
        return [leaf for child in obs for leaf in _leaves(child)]
    return [np.asarray(obs)]


def _flat(parts, obs, n: int, dtype: np.dtype = np.dtype(np.float32)) -> np.ndarray:
    """A batch of n observations -> (n, obs_dim) of `dtype` (`_obs_dtype`), discrete indices one-hot."""
    columns = []
    for leaf, part in zip(_leaves(obs), parts):
        if leaf.size != n * (1 if part.one_hot else part.size):  # observations that change shape as it runs
            raise ValueError(f"it returned observations of shape {tuple(leaf.shape[1:])}, where its "
                             f"observation_space says {part.shape}")
        if part.one_hot:
            columns.append(np.eye(part.size, dtype=dtype)[leaf.reshape(n).astype(np.int64)])
        else:
            columns.append(leaf.reshape(n, part.size).astype(dtype, copy=False))
    return columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)


def _stack(observations) -> Any:
    """Single observations (arrays, or dicts/tuples of them) stacked into one batch."""
    first = observations[0]
    if isinstance(first, dict):
        return {key: _stack([o[key] for o in observations]) for key in first}
    if isinstance(first, (tuple, list)):
        return tuple(_stack([o[i] for o in observations]) for i in range(len(first)))
    return np.stack([np.asarray(o) for o in observations])


def _from_info(info: dict, key: str, default: np.ndarray) -> np.ndarray:
    """info[key] where its mask says a copy has it, `default` elsewhere."""
    if key not in info:
        return default
    mask = np.asarray(info.get(f"_{key}", np.ones(len(default), bool)), bool)
    return np.where(mask, np.asarray(info[key]).astype(default.dtype), default)


class _Vector:
    """A Gymnasium vector env, whatever its autoreset mode, read as `_Record`s."""

    def __init__(self, venv, parts, dtype: np.dtype):
        gymnasium = _gymnasium()
        modes = gymnasium.vector.AutoresetMode
        # The attribute first: SyncVectorEnv writes its mode into the env class's shared metadata.
        mode = getattr(venv, "autoreset_mode", None) or venv.metadata.get("autoreset_mode", modes.NEXT_STEP)
        self.mode = modes(mode)
        self.venv, self.parts, self.dtype, self.n = venv, parts, dtype, venv.num_envs
        self.pending = np.zeros(self.n, bool)  # NEXT_STEP: these copies reset on their next step
        self.obs = np.zeros((self.n, sum(p.size for p in parts)), dtype)

    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """(n, obs_dim) observations after resetting the copies in `mask` (all: None) with `seeds`."""
        if mask is not None and not mask.any():
            return self.obs
        options = None if mask is None else {"reset_mask": mask}
        obs, _ = self.venv.reset(seed=[int(s) for s in seeds], options=options)
        self.pending[slice(None) if mask is None else mask] = False
        self.obs = _flat(self.parts, obs, self.n, self.dtype)
        return self.obs

    def step(self, actions: np.ndarray) -> _Record:
        modes = _gymnasium().vector.AutoresetMode
        obs, reward, terminated, truncated, info = self.venv.step(actions)
        obs = _flat(self.parts, obs, self.n, self.dtype)
        reward = np.asarray(reward, np.float32)
        terminated = np.asarray(terminated, bool)
        done = terminated | np.asarray(truncated, bool)
        score, game_over = _from_info(info, SCORE_KEY, reward), _from_info(info, GAME_OVER_KEY, done)
        next_obs, first, resetting = obs, done, None
        if self.mode == modes.SAME_STEP:
            if done.any():
                ended = np.flatnonzero(done & np.asarray(info.get("_final_obs", done), bool))
                next_obs = obs.copy()
                next_obs[ended] = _flat(self.parts, _stack(list(info["final_obs"][ended])), len(ended), self.dtype)
                final_info = info.get("final_info", {})  # the ending step's info; `info` is the reset's there
                score = np.where(done, _from_info(final_info, SCORE_KEY, reward), score)
                game_over = np.where(done, _from_info(final_info, GAME_OVER_KEY, done), game_over)
        elif self.mode == modes.NEXT_STEP:
            resetting, self.pending = self.pending, done
            first = np.zeros(self.n, bool)  # an end's observation is its final one; the reset comes next step
        elif done.any():  # DISABLED: qlax resets the ended copies
            reset_obs, _ = self.venv.reset(options={"reset_mask": done})
            obs = _flat(self.parts, reset_obs, self.n, self.dtype)
        self.obs = obs
        record = _Record(obs, next_obs, reward, terminated, done, np.ones(self.n, bool), first, score, game_over)
        if resetting is not None and resetting.any():
            record = record.where(resetting, _Record.reset_step(obs))
        return record

    def close(self) -> None:
        self.venv.close()


def _work(pipe, source: _Source, count: int, parts, dtype: np.dtype) -> None:
    """A worker process of `_Pool`: a `_Vector` of `count` copies, run by commands from the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt stops
    envs = None
    try:
        envs = _Vector(source.vector(count), parts, dtype)
        pipe.send((True, None))
        while True:
            command, args = pipe.recv()
            if command == "close":
                break
            try:
                pipe.send((True, getattr(envs, command)(*args)))
            except Exception as err:  # noqa: BLE001 (sent to the parent, which raises it)
                pipe.send((False, f"{type(err).__name__}: {err}"))
    except EOFError:  # the parent is gone
        pass
    except Exception as err:  # noqa: BLE001
        pipe.send((False, f"{type(err).__name__}: {err}"))
    finally:
        if envs is not None:
            envs.close()


def _close_pool(pipes, processes) -> None:
    for pipe in pipes:
        try:
            pipe.send(("close", ()))
        except OSError:
            pass
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()


class _Pool:
    """`n` copies over `workers` processes, each stepping a SyncVectorEnv of its share, read as
    `_Record`s like `_Vector`. Gymnasium's AsyncVectorEnv takes a process per copy; a
    population has members x num_envs copies, so qlax groups them, one process per core."""

    def __init__(self, source: _Source, n: int, workers: int, parts, dtype: np.dtype):
        context = multiprocessing.get_context("spawn")  # no fork of a process running JAX's threads
        self.slices = [slice(int(s[0]), int(s[-1]) + 1) for s in np.array_split(np.arange(n), workers)]
        self.pipes, self.processes = [], []
        for part in self.slices:
            parent, child = context.Pipe()
            process = context.Process(target=_work, args=(child, source, part.stop - part.start, parts, dtype),
                                      daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self.name = source.name
        self._finalizer = weakref.finalize(self, _close_pool, self.pipes, self.processes)
        self._gather()

    def _gather(self) -> list:
        """Each worker's answer; a worker that died is an error, however its pipe ends (closed,
        reset, or open with nothing more to come)."""
        results = []
        for pipe, process in zip(self.pipes, self.processes):
            try:
                if pipe not in multiprocessing.connection.wait([pipe, process.sentinel]):
                    raise EOFError
                ok, value = pipe.recv()
            except (EOFError, OSError):
                process.join(timeout=1)
                ok, value = False, f"the worker process died (exit code {process.exitcode})"
            if not ok:
                raise EnvError(f"env '{self.name}': a worker process failed: {value}")
            results.append(value)
        return results

    def _ask(self, command: str, parts_args) -> list:
        """Send each worker its command, then gather the answers (a dead worker's pipe may
        refuse the command: `_gather` names the death)."""
        for pipe, args in zip(self.pipes, parts_args):
            try:
                pipe.send((command, args))
            except OSError:
                pass
        return self._gather()

    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        return np.concatenate(self._ask("reset", [(seeds[part], None if mask is None else mask[part])
                                                  for part in self.slices]))

    def step(self, actions: np.ndarray) -> _Record:
        answers = self._ask("step", [(actions[part],) for part in self.slices])
        return _Record(*(np.concatenate(fields) for fields in zip(*answers)))

    def close(self) -> None:
        self._finalizer()


class _Group:
    """One vector env of members x num_envs copies, and each member's episode token."""

    def __init__(self, envs, members: int):
        self.envs = envs
        self.last_in = np.zeros(members, np.uint32)  # the tokens the last call brought
        self.last_out = np.zeros(members, np.uint32)  # and those it returned


def _tokens(seeds: np.ndarray) -> np.ndarray:
    """A member's episode token: from its first copy's seed, never 0 (0: restart)."""
    return seeds[:, 0] | np.uint32(1)


_failure: EnvError | None = None  # the last host call's failure (`take_failure`)


def take_failure() -> EnvError | None:
    """The one-line failure of a host environment that a compiled program's error stands
    for, if one failed since the last call (then forgotten)."""
    global _failure
    failure, _failure = _failure, None
    return failure


class _HostFailures(logging.Filter):
    """Keeps JAX from logging a traceback for a host environment's failure: qlax reports it
    in one line (`take_failure`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], EnvError))


logging.getLogger("jax._src.callback").addFilter(_HostFailures())


class _Host:
    """The host side of one `VecEnv`: a vector env per batch size (members x num_envs), made
    on first use, reset and stepped by the device's callbacks.

    A member whose token is neither the one the host returned last (it trains on) nor the
    one it brought last (it is frozen: stopped, or already ended in an evaluation) has lost
    its episodes (a resumed checkpoint, `restart`): its copies are reset with the step's
    seeds and the step is a reset step for it.
    """

    def __init__(self, source: _Source, num_envs: int):
        self.source, self.num_envs = source, num_envs
        obs_space = _described(source)[0]
        self.parts = jax_adapter.observation_parts(obs_space, source.name)
        self.dtype = _obs_dtype(obs_space)
        self.groups: dict[int, _Group] = {}
        self.lock = threading.Lock()

    def _group(self, members: int) -> tuple[_Group, bool]:
        """(the vector env of `members` members, whether it was just made)."""
        if members in self.groups:
            return self.groups[members], False
        n, parts = members * self.num_envs, self.parts
        if self.source.mode == "async":
            from qlax.core.devices import cpu_cores

            envs = _Pool(self.source, n, min(cpu_cores(), n), parts, self.dtype)
        else:
            envs = _Vector(self.source.vector(n), parts, self.dtype)
        self.groups[members] = group = _Group(envs, members)
        weakref.finalize(self, envs.close)
        return group, True

    def _failed(self, method: str, err: BaseException) -> EnvError:
        """The one line for a host environment that failed inside a compiled step, kept for
        `take_failure` (the program itself fails with JAX's error)."""
        global _failure
        _failure = EnvError(f"env = {short(self.source.name)}: {method} on the host failed: {reason(err)}")
        return _failure

    def reset(self, seeds):
        try:
            return self._reset(seeds)
        except Exception as err:  # noqa: BLE001 (the user's environment, in one line)
            raise self._failed("reset", err) from None

    def step(self, seeds_actions, tokens):
        try:
            return self._step(seeds_actions, tokens)
        except Exception as err:  # noqa: BLE001
            raise self._failed("step", err) from None

    def _reset(self, seeds):
        batch, n = seeds.shape[:-1], self.num_envs
        seeds = np.asarray(seeds).reshape(-1, n)
        with self.lock:
            group, _ = self._group(seeds.shape[0])
            obs = group.envs.reset(seeds.reshape(-1))
            group.last_in = group.last_out = _tokens(seeds)
        return obs.reshape(*batch, n, -1), group.last_out.reshape(batch)

    def _step(self, seeds_actions, tokens):
        """seeds_actions (..., num_envs, 2) uint32, tokens (...) -> (values, flags, tokens), packed."""
        batch, n = seeds_actions.shape[:-2], self.num_envs
        seeds_actions, tokens = np.asarray(seeds_actions).reshape(-1, n, 2), np.asarray(tokens).reshape(-1)
        seeds, actions = seeds_actions[..., 0], seeds_actions[..., 1].astype(np.int64)
        with self.lock:
            group, made = self._group(seeds.shape[0])
            stale = np.ones(len(tokens), bool) if made else (tokens != group.last_out) & (tokens != group.last_in)
            if stale.all():
                record = _Record.reset_step(group.envs.reset(seeds.reshape(-1)))
            else:
                record = group.envs.step(actions.reshape(-1))
                if stale.any():
                    mask = np.repeat(stale, n)
                    record = record.where(mask, _Record.reset_step(group.envs.reset(seeds.reshape(-1), mask)))
            out = np.where(stale, _tokens(seeds), tokens)
            group.last_in, group.last_out = tokens, out
        return (*(array.reshape(*batch, n, -1) for array in record.packed()), out.reshape(batch))


def renderer(name: str):
    """One environment of `gymnasium:ID` or of a Gymnasium object name that renders rgb_array:
    Gymnasium makes an id in that mode; an object made without a render mode is made again
    from its spec in that mode; a factory's environment must be in it."""
    if jax_adapter.is_object_name(name):
        source = _Source.of_object(name, jax_adapter.registered_object(name))
    else:
        source = _Source.parse(name.partition(":")[2])
    if source.vector_factory:
        raise EnvError(f"env = {short(name)}: its factory builds a vector env; qlax render draws one "
                       f"environment's render() (a factory of one, made with render_mode='rgb_array')")
    if source.env is None and source.factory is None:
        try:
            env = _gymnasium().make(source.target, render_mode="rgb_array")
        except Exception as err:  # noqa: BLE001 (an environment without that mode, in one line)
            raise EnvError(f"env = {short(name)}: Gymnasium cannot make it to render rgb_array "
                           f"({reason(err, 120)})") from None
    else:
        env = source.one()
        if env.render_mode is None and source.env is not None and env.spec is not None and \
                "rgb_array" in env.metadata.get("render_modes", ()):
            env.close()  # the object's own spec, wrappers included, in the mode qlax draws by
            env = _gymnasium().make(env.spec, render_mode="rgb_array")
    modes = list(env.metadata.get("render_modes", ()))
    if env.render_mode != "rgb_array" or "rgb_array" not in modes:
        env.close()
        raise EnvError(f"env = {short(name)}: qlax render draws a Gymnasium environment by its render() in "
                       f"rgb_array mode; this one has render_mode={env.render_mode!r} (render modes {modes})"
                       + (": make it with render_mode='rgb_array'" if "rgb_array" in modes else ""))
    return env


def rendered_episode(env, policy, seed: int, limit: int) -> list[np.ndarray]:
    """The rgb frames one episode of `env` (a `renderer`) shows, one per step (the state acted
    on), played by `policy` (flat observation -> action) from reset(seed=seed): to the game's
    end where the environment reports one (GAME_OVER_KEY, a learning episode's end then
    resets it), at most `limit` steps. The environment is closed."""
    parts = jax_adapter.observation_parts(env.observation_space, "render")
    obs, _ = env.reset(seed=seed)
    frames = []
    try:
        for _ in range(limit):
            frames.append(np.asarray(env.render()))
            action = int(policy(_flat(parts, _stack([obs]), 1)[0]))
            obs, _, terminated, truncated, info = env.step(action)
            if info.get(GAME_OVER_KEY, terminated or truncated):
                break
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return frames


def _seeds(key: jax.Array, num_envs: int) -> jax.Array:
    """Integer seeds for the copies' resets, drawn from `key`."""
    return jax.random.bits(key, (num_envs,), jnp.uint32)


def make(env_id: str, num_envs: int, env=None) -> VecEnv:
    """`num_envs` copies per member (of the object `env`, registered as env_id), stepped on the
    host by one callback per vector step."""
    source = _source(env_id, env)
    env_spec = spec(env_id, env)
    if jax.process_count() > 1:
        raise EnvError(f"env = {short(source.name)}: Gymnasium environments are stepped on this host; a run "
                       f"of several processes cannot step them")
    host = _Host(source, num_envs)
    obs_dtype = host.dtype  # the spec's too: frames travel as bytes
    obs = jax.ShapeDtypeStruct((num_envs, env_spec.obs_dim), obs_dtype)
    token = jax.ShapeDtypeStruct((), jnp.uint32)
    packed = (jax.ShapeDtypeStruct((num_envs, _packed_width(env_spec.obs_dim, obs_dtype)), jnp.uint8),
              jax.ShapeDtypeStruct((num_envs, 5), jnp.bool_))

    def reset(key):
        return jax.pure_callback(host.reset, (obs, token), _seeds(key, num_envs), vmap_method="broadcast_all")

    def step(key, env_state, obs_now, action):
        action = action.astype(jnp.int32)
        seeds_actions = jnp.stack([_seeds(key, num_envs), action.astype(jnp.uint32)], axis=-1)
        values, flags, new_token = jax.pure_callback(host.step, (*packed, token), seeds_actions, env_state,
                                                     vmap_method="broadcast_all")
        record = _Record.unpacked(values, flags, env_spec.obs_dim, obs_dtype)
        transition = Transition(obs=obs_now, action=action, reward=record.reward, next_obs=record.next_obs,
                                terminated=record.terminated)
        return EnvStep(record.obs, new_token, transition, record.done, record.known, record.first,
                       record.score, record.game_over)

    return VecEnv(spec=env_spec, num_envs=num_envs, reset=reset, step=step, restart=jnp.zeros_like)
