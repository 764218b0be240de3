"""One Gymnasium environment in rgb_array mode, and the frames of a greedy episode in it."""

from __future__ import annotations

import numpy as np

from qlax.core.errors import reason, short
from qlax.envs import jax_adapter
from qlax.envs.base import EnvError
from qlax.envs.gymnasium_adapter.observations import flat, stack
from qlax.envs.gymnasium_adapter.source import Source, gymnasium_module
from qlax.envs.gymnasium_adapter.vector import GAME_OVER_KEY


def renderer(name: str):
    """One environment of `gymnasium:ID` or of a Gymnasium object name that renders rgb_array:
    Gymnasium makes an id in that mode; an object made without a render mode is made again
    from its spec in that mode; a factory's environment must be in it."""
    if jax_adapter.is_object_name(name):
        source = Source.of_object(name, jax_adapter.registered_object(name))
    else:
        source = Source.parse(name.partition(":")[2])
    if source.vector_factory:
        raise EnvError(f"env = {short(name)}: its factory builds a vector env; qlax render draws one "
                       f"environment's render() (a factory of one, made with render_mode='rgb_array')")
    if source.env is None and source.factory is None:
        try:
            env = gymnasium_module().make(source.target, render_mode="rgb_array")
        except Exception as err:  # noqa: BLE001 (an environment without that mode, in one line)
            raise EnvError(f"env = {short(name)}: Gymnasium cannot make it to render rgb_array "
                           f"({reason(err, 120)})") from None
    else:
        env = source.one()
        if env.render_mode is None and source.env is not None and env.spec is not None and \
                "rgb_array" in env.metadata.get("render_modes", ()):
            env.close()  # the object's own spec, wrappers included, in the mode qlax draws by
            env = gymnasium_module().make(env.spec, render_mode="rgb_array")
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
            frames.append(np.asarray(_drawn(env)))
            action = int(policy(flat(parts, stack([obs]), 1)[0]))
            obs, _, terminated, truncated, info = env.step(action)
            if info.get(GAME_OVER_KEY, terminated or truncated):
                break
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    return frames


def _drawn(env):
    """`env.render()`; its failure (a drawing package not installed, an error of its own) in one line."""
    try:
        return env.render()
    except Exception as err:  # noqa: BLE001 (the environment's own drawing code, reported in one line)
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise EnvError(f"env '{name}': its render() failed: {reason(err, 160)}") from None
