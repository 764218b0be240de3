"""Named configurations shipped as YAML files beside this module.

A preset file is a flat mapping of `TrainConfig` settings plus a `description` line. It
may start from another preset with `base: NAME` (a shipped preset, or a path, relative
to the file that names it) and change a few settings; without `base`, the settings it
leaves out take `TrainConfig`'s defaults.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from qlax.config import ConfigError, TrainConfig, from_dict, load_yaml

DEFAULT = "cartpole-rbf"


def names() -> list[str]:
    """The shipped presets, sorted."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str) -> tuple[str, dict]:
    """(an identity for cycle checks, the file's mapping) of a shipped preset or a YAML path."""
    if name_or_path in names():
        identity, text = name_or_path, resources.files(__name__).joinpath(f"{name_or_path}.yaml").read_text()
    elif name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        try:
            identity, text = str(path.resolve()), path.read_bytes()
        except OSError as err:
            raise ConfigError(f"preset '{name_or_path}': cannot read it ({err.strerror})") from None
    else:
        close = difflib.get_close_matches(name_or_path, names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown preset '{name_or_path}'{hint}; available: {', '.join(names())} "
                          f"(or a path to a .yaml file)")
    data = load_yaml(text, f"preset '{name_or_path}'") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{name_or_path}' must be a mapping of setting: value")
    return identity, data


def _settings(name_or_path: str, chain: tuple[tuple[str, str], ...] = ()) -> dict:
    """The settings of a preset: those of its `base` chain, each file's over its base's."""
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
    return {**_settings(base, (*chain, (identity, name_or_path))), **data}


def description(name: str) -> str:
    return str(_read(name)[1].get("description", ""))


def load(name_or_path: str = DEFAULT) -> TrainConfig:
    """The validated `TrainConfig` of a shipped preset, or of a YAML file at a path."""
    return from_dict(_settings(name_or_path))
