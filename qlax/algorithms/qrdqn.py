"""QR-DQN: quantile regression distributional Q-learning (Dabney et al. 2018) on DQN's plumbing.

Each action's return is described by `num_quantiles` quantiles at the midpoints
tau_i = (2i + 1) / 2N, learned with the quantile Huber loss (kappa = `huber_delta`).
Everything else (replay, n-step, double Q, dueling, noisy networks, prioritized replay
with the per-sample loss as priority) comes from `dqn.build`.
"""

from __future__ import annotations

import jax.numpy as jnp

from qlax.algorithms import dqn
from qlax.components import losses
from qlax.components.contract import Algorithm
from qlax.settings.config import ConfigError, TrainConfig


def values(config: TrainConfig) -> dqn.Values:
    def loss(forward: dqn.Forward, batch, hp):
        per_sample = losses.quantile_loss(forward.outputs, batch.action, batch.reward,
                                          dqn.bootstrap_discount(batch, hp), forward.next_outputs,
                                          forward.next_selector, hp.huber_delta)
        return per_sample, per_sample

    return dqn.Values(outputs_per_action=config.num_quantiles,
                      q_values=lambda quantiles: jnp.mean(quantiles, axis=-1), loss=loss,
                      double_q=config.double_q, loss_pairs=config.num_quantiles ** 2)


SETTINGS = (*dqn.FAMILY_SETTINGS, "num_quantiles", "huber_delta")  # what QR-DQN reads (`config.owners`)


def check(config: TrainConfig) -> None:
    dqn.check(config)
    if config.q_function == "linear_rbf":
        raise ConfigError("algorithm 'qrdqn' needs a network: set q_function to 'mlp' or 'conv'")


def make(config: TrainConfig, env) -> Algorithm:
    return dqn.build(config, env, values(config))
