"""IQN: implicit quantile networks (Dabney et al. 2018) on DQN's plumbing.

The network takes a quantile fraction tau as an input: the state's features are
multiplied by an embedding of tau (a dense layer over cos(pi i tau), i <
`quantile_embedding`), and the head gives each action's tau-quantile of the return. Each
learning pass samples its own `num_quantiles` fractions uniformly: the online quantiles
at obs are regressed with the quantile Huber loss (kappa = `huber_delta`) onto the target
network's quantiles at freshly sampled fractions of next_obs (`losses.quantile_loss`).
Acting and evaluation use the mean over the fractions' midpoints, so the greedy policy is
deterministic. Replay, n-step, double Q, dueling heads, noisy networks and prioritized
replay come from `dqn.build`.
"""

from __future__ import annotations

import jax.numpy as jnp

from qlax.algorithms import dqn
from qlax.components import losses
from qlax.components.contract import Algorithm
from qlax.settings.config import ConfigError, TrainConfig


def values(config: TrainConfig) -> dqn.Values:
    def loss(forward: dqn.Forward, batch, hp):
        (quantiles, taus), (next_quantiles, _) = forward.outputs, forward.next_outputs
        per_sample = losses.quantile_loss(quantiles, batch.action, batch.reward, dqn.bootstrap_discount(batch, hp),
                                          next_quantiles, forward.next_selector, hp.huber_delta, taus)
        return per_sample, per_sample

    return dqn.Values(outputs_per_action=1, q_values=lambda outputs: jnp.mean(outputs[0], axis=-1), loss=loss,
                      double_q=config.double_q, fractions=config.num_quantiles,
                      loss_pairs=config.num_quantiles ** 2)


SETTINGS = (*dqn.FAMILY_SETTINGS, "num_quantiles", "quantile_embedding", "huber_delta")  # `config.owners`


def check(config: TrainConfig) -> None:
    dqn.check(config)
    if config.q_function == "linear_rbf":
        raise ConfigError("algorithm 'iqn' needs a network: set q_function to 'mlp', 'conv' or 'nature'")


def make(config: TrainConfig, env) -> Algorithm:
    return dqn.build(config, env, values(config))
