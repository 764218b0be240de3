"""A Gymnasium environment object's spec as JSON, which a run saves, and the environment
re-made from it in another process, calling only what that process registered."""

from __future__ import annotations

import dataclasses
import json
import sys

from qlax.core.errors import reason, short
from qlax.envs.base import EnvError
from qlax.envs.gymnasium_adapter.source import gymnasium_module


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
    gymnasium = gymnasium_module()
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
