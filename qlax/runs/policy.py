"""A trained agent as a plain function: load one seed's greedy policy from a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from qlax.runs.rundir import load_params
from qlax.settings.config import ConfigError


def load_policy(run_dir: str | Path, seed: int = 0, setting: int = 0, best: bool = False,
                env: Any = None) -> tuple[Callable, dict]:
    """(jitted policy, parameters as numpy arrays) of seed `seed` (of setting `setting`, for
    a sweep) of the run in `run_dir`; with `best`, the parameters of that member's best
    greedy check (runs with keep_best) instead of its last ones; `env`: the run's environment
    given again (`rundir.load_members`): an object, or a factory's name.

    The policy maps one observation (obs_dim,) to an action, or a batch (n, obs_dim) to
    (n,) actions, greedily: the argmax of the (mean) Q-values, noise off.
    """
    trainer, members, params, _ = load_params(run_dir, best=best, env=env)
    if not 0 <= seed < members.seeds:
        raise ConfigError(f"seed = {seed}: out of range, the run has seeds 0..{members.seeds - 1}")
    settings = len(members.settings)
    if not 0 <= setting < settings:
        raise ConfigError(f"setting = {setting}: out of range, the run has settings 0..{settings - 1}")
    own = jax.tree.map(lambda leaf: np.asarray(leaf[members.member(setting, seed)]), params)
    q_apply = trainer.q_function.apply

    @jax.jit
    def policy(obs):
        obs = jnp.asarray(obs, jnp.float32)
        batch = obs.reshape(-1, obs.shape[-1])
        actions = jnp.argmax(q_apply(own, batch), axis=-1).astype(jnp.int32)
        return actions if obs.ndim == 2 else actions[0]

    return policy, own
