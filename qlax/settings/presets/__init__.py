"""Named configurations shipped as YAML files beside this module.

A preset file is a flat mapping of `TrainConfig` settings plus a `description` line. It
may start from another preset with `base: NAME` (a shipped preset, or a path, relative
to the file that names it) and change a few settings; without `base`, the settings it
leaves out take `TrainConfig`'s defaults.

A preset is data: an env built by code (`module:factory`) is taken from the file the
person names, never from a base file it points to.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from qlax import envs
from qlax.settings.config import MAX_YAML_CHARS, ConfigError, TrainConfig, from_dict, given_win, load_yaml, short

DEFAULT = "cartpole-rbf"
MAX_BASE_CHAIN = 32  # presets deep through `base:`


def names() -> list[str]:
    """The shipped presets, sorted."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str) -> tuple[str, dict]:
    """(an identity for cycle checks, the file's mapping) of a shipped preset or a YAML path."""
    if name_or_path in names():
        identity, text = name_or_path, resources.files(__name__).joinpath(f"{name_or_path}.yaml").read_text()
    elif name_or_path.endswith((".yaml", ".yml")):
        identity, text = _read_file(Path(name_or_path))
    else:
        close = difflib.get_close_matches(name_or_path, names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown preset '{name_or_path}'{hint}; available: {', '.join(names())} "
                          f"(or a path to a .yaml file)")
    data = load_yaml(text, f"preset '{name_or_path}'") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{name_or_path}' must be a mapping of setting: value")
    return identity, data


def _read_file(path: Path) -> tuple[str, bytes]:
    """(resolved path, contents) of a preset file: a regular file (not a FIFO or a device,
    which could block or never end) no larger than a YAML document qlax reads."""
    try:
        if path.exists() and not path.is_file():
            raise ConfigError(f"preset '{short(str(path))[1:-1]}': not a regular file; name a .yaml file")
        with path.open("rb") as file:
            text = file.read(MAX_YAML_CHARS + 1)
        return str(path.resolve()), text
    except OSError as err:
        raise ConfigError(f"preset '{short(str(path))[1:-1]}': cannot read it ({err.strerror})") from None


def _settings(name_or_path: str, chain: tuple[tuple[str, str], ...] = ()) -> dict:
    """The settings of a preset: those of its `base` chain, each file's over its base's."""
    if len(chain) >= MAX_BASE_CHAIN:
        raise ConfigError(f"preset '{chain[0][1]}': its base chain is over {MAX_BASE_CHAIN} presets deep")
    identity, data = _read(name_or_path)
    shown = [name for _, name in chain] + [name_or_path]
    if identity in (seen for seen, _ in chain):
        raise ConfigError(f"preset '{shown[0]}': its base chain loops: {' -> '.join(shown)}")
    data = {k: v for k, v in data.items() if k != "description"}
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"preset '{name_or_path}': base = {base!r}: expected a preset name or a path to a .yaml file")
    if base.endswith((".yaml", ".yml")) and name_or_path not in names():
        base = str(Path(name_or_path).parent / base)  # a path is relative to the file that names it
    inherited = _settings(base, (*chain, (identity, name_or_path)))
    env = inherited.get("env")
    if "env" not in data and base not in names() and isinstance(env, str) and envs.needs_code(env):
        raise ConfigError(f"preset '{name_or_path}': env = {short(env)} comes from its base {short(base)}; qlax "
                          f"imports code only where you name it: set env in {short(name_or_path)} itself")
    return _over(inherited, data)


def _over(inherited: dict, data: dict) -> dict:
    """A file's settings over its base's. A setting the file gives wins over the base's
    `by_observation` too, and the file's `by_observation` adds to the base's, kind by kind."""
    merged = {**inherited, **data}
    kinds, own_kinds = given_win(inherited.get("by_observation"), data), data.get("by_observation", {})
    if not isinstance(kinds, dict) or not isinstance(own_kinds, dict):
        return merged  # no kinds to merge, or malformed ones: refused by the settings' check as written
    for kind, settings in own_kinds.items():
        base = kinds.get(kind)
        kinds[kind] = {**base, **settings} if isinstance(base, dict) and isinstance(settings, dict) else settings
    return {**merged, "by_observation": kinds}


def description(name: str) -> str:
    return str(_read(name)[1].get("description", ""))


def load(name_or_path: str = DEFAULT) -> TrainConfig:
    """The validated `TrainConfig` of a shipped preset, or of a YAML file at a path."""
    return from_dict(_settings(name_or_path))
