"""A trained agent as a plain function: load one seed's greedy policy from a run."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qlax.experiment import load_final_params


def load_policy(run_dir: str | Path, seed: int = 0) -> tuple[Callable, dict]:
    """(jitted policy, parameters as numpy arrays) of seed `seed` of the run in `run_dir`.

    The policy maps one observation (obs_dim,) to an action, or a batch (n, obs_dim) to
    (n,) actions, greedily.
    """
    trainer, params = load_final_params(run_dir)
    seeds = trainer.config.seeds
    if not 0 <= seed < seeds:
        from qlax.config import ConfigError

        raise ConfigError(f"seed = {seed}: out of range, the run has seeds 0..{seeds - 1}")
    own = jax.tree.map(lambda leaf: np.asarray(leaf[seed]), params)
    q_apply = trainer.q_function.apply

    @jax.jit
    def policy(obs):
        obs = jnp.asarray(obs, jnp.float32)
        batch = obs.reshape(-1, obs.shape[-1])
        actions = jnp.argmax(q_apply(own, batch), axis=-1).astype(jnp.int32)
        return actions if obs.ndim == 2 else actions[0]

    return policy, own
