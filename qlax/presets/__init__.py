"""Named configurations shipped as YAML files beside this module.

A preset file is a flat mapping of `TrainConfig` settings plus a `description` line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from qlax.config import ConfigError, TrainConfig, from_dict

DEFAULT = "cartpole-rbf"


def names() -> list[str]:
    """The shipped presets, sorted."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml"))


def _read(name_or_path: str) -> dict:
    if name_or_path in names():
        text = resources.files(__name__).joinpath(f"{name_or_path}.yaml").read_text()
    elif name_or_path.endswith((".yaml", ".yml")) and Path(name_or_path).is_file():
        text = Path(name_or_path).read_text()
    else:
        raise ConfigError(f"unknown preset '{name_or_path}'; available: {', '.join(names())} "
                          f"(or a path to a .yaml file)")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset '{name_or_path}' must be a mapping of setting: value")
    return data


def description(name: str) -> str:
    return str(_read(name).get("description", ""))


def load(name_or_path: str = DEFAULT) -> TrainConfig:
    """The validated `TrainConfig` of a shipped preset, or of a YAML file at a path."""
    data = _read(name_or_path)
    data.pop("description", None)
    return from_dict(data)
