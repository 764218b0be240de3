"""What every algorithm's agent does the same way, written once: its network's start from
the first observations' statistics, its exploration rate, acting through its explorer,
and the observation statistics' refresh. An algorithm keeps what is its own: what it
stores, how it learns, and when its statistics stop refreshing."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qlax.components import networks, normalization
from qlax.components.exploration import EXPLORERS, Explorer, epsilon_schedule
from qlax.settings.config import HParams, TrainConfig


class AgentParts(NamedTuple):
    """An agent's Q-function, explorer, observation scaler and epsilon schedule."""

    q_function: networks.QFunction
    explorer: Explorer
    scaler: normalization.Tracker
    schedule: Callable | None  # None for a noisy explorer: noisy nets need no epsilon

    @classmethod
    def build(cls, config: TrainConfig, spec, q_function: networks.QFunction) -> AgentParts:
        explorer = EXPLORERS[config.exploration]
        return cls(q_function=q_function, explorer=explorer, scaler=networks.observation_scaler(config, spec),
                   schedule=None if explorer.noisy else epsilon_schedule(config.eps_schedule))

    def init_params(self, key: jax.Array, hp: HParams, obs: jax.Array) -> tuple[dict, object]:
        """(initial parameters, observation statistics): the statistics of the first
        observations, and the network scaled to them."""
        obs_stats = self.scaler.init(obs)
        return self.scaler.rescale(self.q_function.init(key, hp), obs_stats), obs_stats

    def scheduled_epsilon(self, hp: HParams, vector_steps: jax.Array) -> jax.Array:
        """The epsilon schedule's rate at `vector_steps`; 0 for a noisy explorer."""
        if self.schedule is None:
            return jnp.float32(0.0)
        return self.schedule(vector_steps, hp.eps_start, hp.eps_end, hp.eps_decay, hp.eps_decay_steps)

    def act(self, params: dict, explore, obs: jax.Array, first: jax.Array, key: jax.Array, noise: jax.Array | None,
            eps: jax.Array, hp: HParams, active: jax.Array, explorer: Explorer | None = None):
        """(actions, explorer state) from the Q-values of `params` at `obs` (`noise`: a noisy
        network's key), through `explorer` (this agent's own if None). The explorer state
        stays as it was where `active` is false."""
        q = self.q_function.act_values(params, obs, noise)
        actions, new = (explorer or self.explorer).act(key, q, eps, explore, first, hp, self.q_function.legal(obs))
        return actions, jax.tree.map(lambda n, o: jnp.where(active, n, o), new, explore)

    def refresh_stats(self, learner_state, obs_stats, obs: jax.Array, when: jax.Array):
        """(learner state, observation statistics) with `obs` counted where `when` holds, and
        the parameters and target parameters rescaled to the new statistics."""
        obs_stats = self.scaler.refresh(obs_stats, obs, when)
        if self.scaler.tracks:
            learner_state = learner_state.replace(params=self.scaler.rescale(learner_state.params, obs_stats),
                                                  target_params=self.scaler.rescale(learner_state.target_params,
                                                                                    obs_stats))
        return learner_state, obs_stats
