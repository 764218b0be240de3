"""A population's members: every setting of a grid of dynamic values, times seeds.

A grid maps dynamic settings (`config.DYNAMIC_SETTINGS`) to the values to try; its
settings are their full product, in the order given. Member m trains setting
m // seeds with seed m % seeds, and seed i draws from fold_in(PRNGKey(config.seed), i)
in every setting, so settings are compared on the same seeds. A plain run is the grid
with no keys: one setting, `config.seeds` members.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from qlax.settings.config import (DYNAMIC_SETTINGS, ConfigError, HParams, TrainConfig, check_setting, field_names,
                                  short, unknown_key_message)

MAX_SETTINGS = 10_000  # settings in one sweep: the product of the grid's value counts


def seed_key(base_seed: int, seed: int) -> jax.Array:
    """The PRNG key of seed `seed`: fold_in(PRNGKey(base_seed), seed)."""
    return jax.random.fold_in(jax.random.PRNGKey(base_seed), seed)


@dataclass(frozen=True)
class Members:
    """The members of a run: `settings` (dicts of swept values) times `config.seeds` seeds."""

    config: TrainConfig
    grid: tuple[tuple[str, tuple], ...] = ()  # (setting, values) in the order given

    @staticmethod
    def of(config: TrainConfig, grid: dict[str, list] | None = None) -> Members:
        """Members of `config` swept over `grid`: its size, then every key and value checked first."""
        grid = dict(grid or {})
        for key, values in grid.items():
            if key not in field_names():
                raise ConfigError(unknown_key_message(key))
            if key not in DYNAMIC_SETTINGS:
                raise ConfigError(
                    f"--grid {key}: a static setting (it fixes shapes or code paths, so each value "
                    f"would need its own compiled program); settings that can be swept: "
                    f"{', '.join(DYNAMIC_SETTINGS)}")
            if not isinstance(values, (list, tuple)) or not values:
                raise ConfigError(f"--grid {key}: needs at least one value, e.g. --grid {key}=a,b")
        check_grid_size({key: len(values) for key, values in grid.items()})
        members = Members(config, tuple((k, tuple(check_setting(k, v) for v in values)) for k, values in grid.items()))
        for setting in members.settings:
            config.replace(**setting)  # every combination validated
        return members

    @property
    def keys(self) -> list[str]:
        """The swept settings' names."""
        return [key for key, _ in self.grid]

    @functools.cached_property
    def settings(self) -> list[dict[str, Any]]:
        """Each combination of swept values, as {setting: value}."""
        return [dict(zip(self.keys, combo)) for combo in itertools.product(*(values for _, values in self.grid))]

    @property
    def seeds(self) -> int:
        return self.config.seeds

    @property
    def count(self) -> int:
        return len(self.settings) * self.seeds

    def setting_of(self, member: int) -> int:
        return member // self.seeds

    def seed_of(self, member: int) -> int:
        return member % self.seeds

    def member(self, setting: int, seed: int) -> int:
        return setting * self.seeds + seed

    def config_of(self, setting: int) -> TrainConfig:
        """The full config of one setting."""
        return self.config.replace(**self.settings[setting])

    def rng_keys(self, stream: int | None = None) -> np.ndarray:
        """One PRNG key per member, (count, 2); `stream` folds in a tag for a separate stream."""
        seeds = np.tile(np.arange(self.seeds), len(self.settings))
        keys = jax.vmap(lambda i: seed_key(self.config.seed, i))(seeds)
        if stream is not None:
            keys = jax.vmap(lambda k: jax.random.fold_in(k, stream))(keys)
        return np.asarray(keys)

    def hparams(self) -> HParams:
        """Every member's dynamic settings, leaves (count,)."""
        per_setting = [self.config_of(s).hparams() for s in range(len(self.settings))]
        return HParams.stack([per_setting[self.setting_of(m)] for m in range(self.count)])

    def label(self, setting: int) -> str:
        """'lr=0.001 gamma=0.99' for a setting; the empty string for a plain run."""
        return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in self.settings[setting].items())


def check_grid_size(counts: dict[str, int]) -> None:
    """Refuse a grid of more than MAX_SETTINGS settings, from its value counts alone."""
    settings = math.prod(counts.values())
    if settings > MAX_SETTINGS:
        sizes = " x ".join(f"{short(key, 24)} ({n:,} values)" for key, n in list(counts.items())[:4])
        total = f"{settings:,}" if settings < 10**12 else "over 10^12"
        raise ConfigError(f"--grid: {sizes}{' x ...' if len(counts) > 4 else ''} make {total} settings; "
                          f"a sweep trains at most {MAX_SETTINGS:,} settings (each with --seeds members)")


def setting_table(members: Members, eval_means: np.ndarray, solved: np.ndarray) -> list[dict[str, Any]]:
    """One row per setting: its values, the mean greedy return across its seeds with the
    standard error of that mean (None for one seed), and the fraction of seeds solved."""
    rows = []
    for s, setting in enumerate(members.settings):
        own = slice(members.member(s, 0), members.member(s, members.seeds))
        means = np.asarray(eval_means[own], np.float64)
        stderr = float(np.std(means, ddof=1) / math.sqrt(len(means))) if len(means) > 1 else None
        rows.append({"setting": s, **setting, "seeds": members.seeds, "mean_return": round(float(means.mean()), 3),
                     "stderr_return": None if stderr is None else round(stderr, 3),
                     "solved_fraction": float(np.mean(solved[own]))})
    return rows
